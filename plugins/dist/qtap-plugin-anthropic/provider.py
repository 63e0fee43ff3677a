"""Anthropic Messages API: ``POST /v1/messages`` streamed as server-sent events.

Anthropic differs from the OpenAI dialect in ways that matter here: the system prompt is a top-level
field, ``max_tokens`` is required, events are told apart by the SSE ``event:`` name, usage comes in
two places (``message_start`` and the cumulative ``message_delta``), and an overload can arrive as an
``event: error`` after the HTTP status was already 200.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from providers import errors
from providers.base import HTTPProvider
from providers.contract import (
    ChatRequest,
    Finish,
    FinishReason,
    Message,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import extract_error, parse_retry_after
from providers.http import iter_sse, sse_json

if TYPE_CHECKING:  # pragma: no cover - typing only
    from httpx_sse import ServerSentEvent

    from providers.manifest import Manifest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
# The Claude 3 generation (not 3.5 / 3.7) cannot produce more than 4096 tokens: asking for more is a 400.
_SMALL_OUTPUT_MODELS = re.compile(r"^claude-3-(opus|sonnet|haiku)\b")
SMALL_MAX_TOKENS = 4096
MAX_TEMPERATURE = 1.0  # Anthropic's range is 0 to 1, the profile form allows up to 2
MODEL_PAGE_SIZE = 1000
MAX_MODEL_PAGES = 20

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# error.type in Anthropic's error bodies and ``event: error`` payloads → our error classes.
ERROR_TYPES: dict[str, type[errors.ProviderError]] = {
    "authentication_error": errors.AuthenticationError,
    "permission_error": errors.PermissionDeniedError,
    "billing_error": errors.QuotaExceededError,
    "not_found_error": errors.ModelNotFoundError,
    "rate_limit_error": errors.RateLimitError,
    "request_too_large": errors.InvalidRequestError,
    "invalid_request_error": errors.InvalidRequestError,
    "api_error": errors.ProviderUnavailableError,
    "overloaded_error": errors.OverloadedError,
    "timeout_error": errors.ProviderTimeoutError,
}


def default_max_tokens(model: str) -> int:
    return SMALL_MAX_TOKENS if _SMALL_OUTPUT_MODELS.match(model) else DEFAULT_MAX_TOKENS


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    """Attachments first (Anthropic recommends images before the question), then the text."""
    blocks: list[dict[str, Any]] = []
    for attachment in message.attachments:
        source = {
            "type": "base64",
            "media_type": attachment.mime_type,
            "data": base64.b64encode(attachment.data).decode("ascii"),
        }
        kind = "document" if attachment.mime_type == "application/pdf" else "image"
        blocks.append({"type": kind, "source": source})
    if message.content.strip():  # the API refuses empty text blocks
        blocks.append({"type": "text", "text": message.content})
    return blocks


def build_messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages in the API's shape, consecutive turns of one role merged into one turn."""
    turns: list[dict[str, Any]] = []
    for message in conversation:
        blocks = _content_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": message.role, "content": blocks})
    # A final assistant turn is a prefill; the API refuses one that ends in whitespace.
    if turns and turns[-1]["role"] == "assistant":
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            last["text"] = last["text"].rstrip()
    return turns


def error_from_body(provider: str, data: Any, *, status: int | None, retry_after: float | None) -> errors.ProviderError:
    """An Anthropic error object (HTTP body or ``event: error`` data) as a ProviderError."""
    upstream = extract_error(data)
    error_class = ERROR_TYPES.get(upstream.code or "")
    if error_class is None:
        return errors.ProviderError(provider, upstream.message, status=status, retry_after=retry_after)
    if error_class is errors.InvalidRequestError and "prompt is too long" in upstream.message.lower():
        error_class = errors.ContextLengthError
    return error_class(provider, upstream.message, status=status, retry_after=retry_after)


class AnthropicProvider(HTTPProvider):
    default_read_timeout: ClassVar[float | None] = 120.0
    model_page_size: ClassVar[int] = MODEL_PAGE_SIZE

    def __init__(self, manifest: Manifest, *, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(manifest, base_url=base_url, **kwargs)
        # Paths carry the /v1 themselves; a base URL pasted with it would double it.
        self.base_url = self.base_url.removesuffix("/v1")

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def translate_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
        upstream = extract_error(body)
        retry_after = parse_retry_after(headers)
        if upstream.code in ERROR_TYPES:
            return error_from_body(self.provider, body, status=status, retry_after=retry_after)
        return super().translate_error(status, headers, body)

    # -- request ------------------------------------------------------------------------------

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or default_max_tokens(request.model),
            "messages": build_messages(request.conversation),
            "stream": True,
        }
        if request.system_prompt:
            body["system"] = request.system_prompt
        # Current Claude models refuse temperature and top_p together; temperature is the one
        # people set on purpose, so it wins and top_p is sent only on its own.
        if request.temperature is not None:
            body["temperature"] = min(request.temperature, MAX_TEMPERATURE)
            if request.top_p is not None:
                self.logger.debug("top_p dropped: Anthropic takes temperature or top_p, not both")
        elif request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        return body

    # -- stream -------------------------------------------------------------------------------

    def event_data(self, sse: ServerSentEvent) -> dict[str, Any]:
        data = sse_json(sse, provider=self.provider)
        if not isinstance(data, dict):
            raise errors.ProtocolError(self.provider, f"unexpected {sse.event} event: {sse.data[:200]!r}")
        return data

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.require_key()
        input_tokens: int | None = None
        output_tokens: int | None = None
        stop_reason: str | None = None
        async with self.open("POST", "/v1/messages", json_body=self.build_body(request)) as response:
            async for sse in iter_sse(response, provider=self.provider):
                name = sse.event
                if name == "ping":
                    continue
                if name == "error":
                    data = self.event_data(sse)
                    raise error_from_body(self.provider, data, status=None, retry_after=None)
                if name == "content_block_delta":
                    delta = self.event_data(sse).get("delta") or {}
                    kind = delta.get("type")
                    if kind == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                    elif kind == "thinking_delta" and delta.get("thinking"):
                        yield ReasoningDelta(delta["thinking"])
                    # signature_delta, input_json_delta, citations: nothing to show
                elif name == "message_start":
                    usage = (self.event_data(sse).get("message") or {}).get("usage") or {}
                    input_tokens = _total_input(usage, input_tokens)
                    output_tokens = usage.get("output_tokens", output_tokens)
                elif name == "message_delta":
                    data = self.event_data(sse)
                    stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                    usage = data.get("usage") or {}
                    input_tokens = _total_input(usage, input_tokens)
                    output_tokens = usage.get("output_tokens", output_tokens)  # cumulative
                elif name == "message_stop":
                    if input_tokens is not None or output_tokens is not None:
                        yield Usage(input_tokens, output_tokens)
                    # No return: reading on to the end of the body hands the connection back to the pool.
                    yield Finish(STOP_REASONS.get(stop_reason or "", "other"))
                # content_block_start/stop and event types added later are ignored, as the API asks

    # -- models and keys ----------------------------------------------------------------------

    async def fetch_models(self) -> list[ModelInfo]:
        self.require_key()
        models: list[ModelInfo] = []
        params = {"limit": str(self.model_page_size)}
        for _ in range(MAX_MODEL_PAGES):
            page = await self.get_json("/v1/models", params=params)
            for item in page.get("data") or []:
                capabilities = item.get("capabilities") or {}
                image = (capabilities.get("image_input") or {}).get("supported")
                models.append(
                    ModelInfo(
                        id=item["id"],
                        name=item.get("display_name"),
                        context_window=item.get("max_input_tokens"),
                        max_output_tokens=item.get("max_tokens"),
                        supports_images=image if isinstance(image, bool) else None,
                    )
                )
            if not page.get("has_more") or not page.get("last_id"):
                break
            params = {"limit": str(self.model_page_size), "after_id": page["last_id"]}
        return models

    async def validate_key(self) -> None:
        self.require_key()
        await self.get_json("/v1/models", params={"limit": "1"})


def _total_input(usage: Mapping[str, Any], current: int | None) -> int | None:
    """Input tokens including the cached ones: all of them were read by the model."""
    if "input_tokens" not in usage:
        return current
    return sum(
        int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
