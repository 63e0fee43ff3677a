"""Anthropic Messages API: ``POST /v1/messages`` streamed as server-sent events.

Anthropic differs from the OpenAI dialect in ways that matter here: the system prompt is a top-level
field, ``max_tokens`` is required, events are told apart by the SSE ``event:`` name, usage comes in
two places (``message_start`` and the cumulative ``message_delta``), and an overload can arrive as an
``event: error`` after the HTTP status was already 200.

Thinking (PROTOCOLS-reasoning-tools.md R3): an effort is ``output_config.effort`` with adaptive thinking, a
budget is ``thinking.budget_tokens``. The signed ``thinking`` and ``redacted_thinking`` blocks of a reply are
its provider state, exactly as they arrived; they go back first in that assistant turn on the next request,
where the API checks their signatures. With prompt caching on, ``cache_control`` breakpoints sit on a long
system prompt and on the end of the conversation before the newest user turn.

Tools (R3.3): each ``tool_use`` block's ``partial_json`` pieces are joined and parsed once, at its
``content_block_stop``, into one ``ToolCall``; several blocks in one reply are parallel calls, and
``stop_reason: tool_use`` is ``Finish("tool_calls")``. How the calls and their results go back is messages.py's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from providers import errors
from providers.base import HTTPProvider
from providers.contract import (
    ChatRequest,
    Finish,
    FinishReason,
    ModelInfo,
    ProviderState,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
    tool_call_from_text,
)
from providers.errors import extract_error, parse_retry_after
from providers.http import iter_sse, sse_json

from .messages import (
    STATE_BLOCKS,
    build_messages,
    place_breakpoints,
    refuse_forced_tools_while_thinking,
    tool_fields,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from httpx_sse import ServerSentEvent

    from providers.manifest import Manifest

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
# The Claude 3 generation (not 3.5 / 3.7) cannot produce more than 4096 tokens: asking for more is a 400.
_SMALL_OUTPUT_MODELS = re.compile(r"^claude-3-(opus|sonnet|haiku)\b")
SMALL_MAX_TOKENS = 4096
MAX_TEMPERATURE = 1.0  # Anthropic's range is 0 to 1, the profile form allows up to 2
# Thinking leaves at least this many tokens of max_tokens for the answer (the budget must be below max_tokens).
MIN_ANSWER_TOKENS = 1024
# While thinking, temperature may only be 1 and top_p only 0.95 to 1 (the API's 400s, R3.1).
THINKING_MIN_TOP_P = 0.95
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
        body |= tool_fields(request, self.provider)
        self.add_thinking(body, request)
        refuse_forced_tools_while_thinking(body, self.provider, request.model)
        caching = request.options.get("prompt_caching")  # unset (None): the manifest's default, on
        if self.config.prompt_caching and (caching is None or bool(caching)):
            place_breakpoints(body)
        return body

    def add_thinking(self, body: dict[str, Any], request: ChatRequest) -> None:
        """The reasoning options as ``thinking`` / ``output_config`` (the host already refused values the
        model's rule does not allow); what thinking rules out is refused here, before any request."""
        reasoning = request.reasoning
        if reasoning is None or (reasoning.effort is None and reasoning.budget_tokens is None):
            return
        thinking: dict[str, Any]
        if reasoning.budget_tokens is not None:
            thinking = {"type": "enabled", "budget_tokens": reasoning.budget_tokens}
            body["max_tokens"] = max(body["max_tokens"], reasoning.budget_tokens + MIN_ANSWER_TOKENS)
        else:
            thinking = {"type": "adaptive"}
        if reasoning.effort is not None:
            body["output_config"] = {"effort": reasoning.effort}
        rule = self.config.rule_for(request.model)
        if not reasoning.summary and rule is not None and rule.reasoning is not None and rule.reasoning.summary:
            thinking["display"] = "omitted"
        body["thinking"] = thinking
        if body.get("temperature", 1.0) != 1.0:
            raise errors.InvalidRequestError(
                self.provider, f"The model {request.model!r} takes only a temperature of 1 while it thinks."
            )
        if body.get("top_p", 1.0) < THINKING_MIN_TOP_P:
            raise errors.InvalidRequestError(
                self.provider,
                f"The model {request.model!r} takes a top_p of {THINKING_MIN_TOP_P} to 1 while it thinks, "
                f"not {body['top_p']}.",
            )
        if body["messages"] and body["messages"][-1]["role"] == "assistant":
            raise errors.InvalidRequestError(
                self.provider, f"The model {request.model!r} takes no assistant prefill while it thinks."
            )

    # -- stream -------------------------------------------------------------------------------

    def event_data(self, sse: ServerSentEvent) -> dict[str, Any]:
        data = sse_json(sse, provider=self.provider)
        if not isinstance(data, dict):
            raise errors.ProtocolError(self.provider, f"unexpected {sse.event} event: {sse.data[:200]!r}")
        return data

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.require_key()
        usage: dict[str, Any] = {}
        stop_reason: str | None = None
        blocks: dict[int, dict[str, Any]] = {}  # index → the thinking / redacted_thinking block being received
        calls: dict[int, dict[str, Any]] = {}  # index → the tool_use block being received, its JSON pieces
        async with self.open("POST", "/v1/messages", json_body=self.build_body(request)) as response:
            async for sse in iter_sse(response, provider=self.provider):
                name = sse.event
                if name == "ping":
                    continue
                if name == "error":
                    data = self.event_data(sse)
                    raise error_from_body(self.provider, data, status=None, retry_after=None)
                if name == "content_block_delta":
                    data = self.event_data(sse)
                    delta = data.get("delta") or {}
                    kind = delta.get("type")
                    if kind == "text_delta" and delta.get("text"):
                        yield TextDelta(delta["text"])
                    elif kind == "thinking_delta":
                        if block := blocks.get(data.get("index", -1)):
                            block["thinking"] = block.get("thinking", "") + (delta.get("thinking") or "")
                        if delta.get("thinking"):
                            yield ReasoningDelta(delta["thinking"])
                    elif kind == "signature_delta" and (block := blocks.get(data.get("index", -1))):
                        block["signature"] = block.get("signature", "") + (delta.get("signature") or "")
                    elif kind == "input_json_delta" and (call := calls.get(data.get("index", -1))):
                        call["json"].append(delta.get("partial_json") or "")
                    # citations: nothing to show
                elif name == "content_block_start":
                    data = self.event_data(sse)
                    block = data.get("content_block") or {}
                    index = data.get("index", len(blocks) + len(calls))
                    if block.get("type") in STATE_BLOCKS:  # redacted ones arrive whole, right here
                        blocks[index] = dict(block)
                    elif block.get("type") == "tool_use":
                        calls[index] = {"id": block.get("id") or "", "name": block.get("name") or "", "json": []}
                        calls[index]["input"] = block.get("input")
                elif name == "content_block_stop":
                    if (call := calls.pop(self.event_data(sse).get("index", -1), None)) is not None:
                        yield finished_call(call)
                elif name == "message_start":
                    usage |= (self.event_data(sse).get("message") or {}).get("usage") or {}
                elif name == "message_delta":
                    data = self.event_data(sse)
                    stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                    usage |= data.get("usage") or {}  # cumulative: the later figures win
                elif name == "message_stop":
                    for index in sorted(calls):  # a block the stream never closed is complete now
                        yield finished_call(calls.pop(index))
                    if "input_tokens" in usage or "output_tokens" in usage:
                        yield usage_from(usage)
                    if blocks:
                        yield ProviderState([blocks[index] for index in sorted(blocks)])
                    # No return: reading on to the end of the body hands the connection back to the pool.
                    yield Finish(STOP_REASONS.get(stop_reason or "", "other"))
                # event types added later are ignored, as the API asks

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


def finished_call(call: dict[str, Any]) -> ToolCall:
    """A ``tool_use`` block as a ToolCall: its joined ``partial_json`` parsed once (empty is no arguments;
    text that is not a JSON object is kept as the invalid arguments), or the ``input`` it started with when
    no pieces came."""
    text = "".join(call["json"])
    start = call.get("input")
    if not text.strip() and isinstance(start, dict) and start:
        return ToolCall(call["id"], call["name"], start)
    return tool_call_from_text(call["id"], call["name"], text)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def usage_from(usage: Mapping[str, Any]) -> Usage:
    """The wire's usage as ours: input counts every input token (Anthropic's ``input_tokens`` leaves out the
    ones written to and read from the cache), with the cache and thinking figures where the API sends them."""
    written = _count(usage.get("cache_creation_input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    fresh = _count(usage.get("input_tokens"))
    input_tokens = None if fresh is None else fresh + (written or 0) + (read or 0)
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, Mapping) else None
    return Usage(
        input_tokens,
        _count(usage.get("output_tokens")),
        cached_input_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=thinking,
    )
