"""What an MCP tool answered, as the text a model reads.

A tool result is a list of content blocks. Text is what the model can use, so the text blocks are
joined; anything else (an image, audio, an embedded resource, a link) is named in words with its type
and size instead of being dropped without a trace, so the model knows something came back. When a
tool answered structured content only, its JSON is the text. ``isError`` becomes ``is_error``.

May import: ``providers.contract``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from providers.contract import ToolResult


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


def describe(block: Any) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return f"[image: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, AudioContent):
        return f"[audio: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        if isinstance(resource, BlobResourceContents):
            kind = resource.mime_type or "application/octet-stream"
            return f"[resource {resource.uri}: {kind}, {_decoded_size(resource.blob)} bytes]"
    if isinstance(block, ResourceLink):
        kind = f", {block.mime_type}" if block.mime_type else ""
        return f"[link: {block.name} {block.uri}{kind}]"
    return f"[{getattr(block, 'type', type(block).__name__)} content]"


def tool_result(result: CallToolResult) -> ToolResult:
    parts = [describe(block) for block in result.content]
    text = "\n".join(part for part in parts if part)
    if not text and result.structured_content is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False)
    if not text:
        text = "The tool failed and said nothing more." if result.is_error else "(the tool answered nothing)"
    return ToolResult(text, is_error=bool(result.is_error))
