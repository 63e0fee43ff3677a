"""A provider that streams a canned reply: no network, but every rule of the contract kept."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from providers.contract import (
    ChatRequest,
    ChatResult,
    Finish,
    ModelInfo,
    ProviderPlugin,
    StreamEvent,
    TextDelta,
    Usage,
    collect,
)
from providers.errors import UnsupportedAttachmentError

logger = logging.getLogger("qtap.plugins.qtap-plugin-example")

REPLY = ("Hello", " from", " the example", " plugin.")


class ExampleProvider:
    def __init__(self, plugin: ProviderPlugin, *, api_key: str | None = None, base_url: str | None = None) -> None:
        self.manifest = plugin.manifest
        self.base_url = base_url
        self.closed = False

    def _check_attachments(self, request: ChatRequest) -> None:
        config = self.manifest.provider_config
        accepted = config.attachment_support.mime_types if config else ()
        for attachment in request.attachments:
            if config is None or not config.accepts_mime_type(attachment.mime_type):
                raise UnsupportedAttachmentError(attachment.filename, attachment.mime_type, accepted)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self._check_attachments(request)
        logger.debug("canned reply for model %s, %d messages", request.model, len(request.messages))
        for piece in REPLY:
            yield TextDelta(piece)
        yield Usage(input_tokens=sum(len(m.content.split()) for m in request.messages), output_tokens=len(REPLY))
        yield Finish("stop")

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await collect(self.stream(request), model=request.model)

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id="example-1", name="Example 1")]

    async def validate_key(self) -> None:
        return None

    async def aclose(self) -> None:
        self.closed = True
