"""Request and response mapping for the OpenAI Chat Completions dialect: pure functions, no I/O.

May import: ``providers.contract``, ``providers.errors``, ``providers.openai_format.tool_stream``,
``providers.openai_format.tools`` (no HTTP machinery: nothing here does I/O).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from providers import errors
from providers.contract import (
    Attachment,
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
from providers.errors import UpstreamError, error_for_status, extract_error, parse_retry_after
from providers.openai_format.tool_stream import ChatToolCalls, finish_with_calls
from providers.openai_format.tools import chat_calls, chat_tool_result, chat_tools

# OpenAI's reasoning models reject ``max_tokens`` and want ``max_completion_tokens``.
_REASONING_MODEL = re.compile(r"^(?:openai/)?(?:o\d|gpt-5)(?:[-.:]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Dialect:
    """How one provider bends the dialect."""

    # Use ``max_completion_tokens`` for OpenAI reasoning models (o1/o3/o4/gpt-5).
    completion_tokens_param: bool = False
    # Ask for a final usage chunk (``stream_options.include_usage``).
    include_usage: bool = True
    # A stream that ends cleanly without a finish_reason or [DONE] counts as finished.
    lenient_end: bool = False
    # xAI reports reasoning tokens outside ``completion_tokens``; add them to the output count.
    reasoning_outside_completion: bool = False
    # The request's reasoning effort goes out as ``reasoning_effort`` (OpenAI and xAI reasoning models).
    reasoning_effort: bool = False
    # The Responses API's ``strict`` on each function tool (None: not sent). OpenAI reads a missing one as
    # true and then holds the schema to its strict subset, which most tools' schemas are not written in.
    tool_strict: bool | None = None


# ---- request ------------------------------------------------------------------------------------


def _attachment_part(attachment: Attachment) -> dict[str, Any]:
    if attachment.mime_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": data_url(attachment)}}
    if attachment.mime_type == "application/pdf":
        return {"type": "file", "file": {"filename": attachment.filename, "file_data": data_url(attachment)}}
    raise errors.UnsupportedAttachmentError(
        attachment.filename,
        attachment.mime_type,
        ("image/*", "application/pdf"),
        reason="the OpenAI message format has no part for this type",
    )


def data_url(attachment: Attachment) -> str:
    return f"data:{attachment.mime_type};base64,{base64.b64encode(attachment.data).decode('ascii')}"


def message_with_parts(
    message: Message, *, text_type: str, part: Callable[[Attachment], dict[str, Any]]
) -> dict[str, Any]:
    """A message as the OpenAI formats write it: plain content, or (a user message with attachments) a
    list of a ``text_type`` part and one ``part(attachment)`` per file. Both OpenAI APIs share this shape."""
    if not message.attachments:
        return {"role": message.role, "content": message.content}
    if message.role != "user":
        first = message.attachments[0]
        why = f"attachments can only be sent on user messages, not {message.role}"
        raise errors.UnsupportedAttachmentError(first.filename, first.mime_type, (), reason=why)
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": text_type, "text": message.content})
    parts.extend(part(a) for a in message.attachments)
    return {"role": "user", "content": parts}


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return chat_tool_result(message)
    sent = message_with_parts(message, text_type="text", part=_attachment_part)
    if message.tool_calls:
        sent["content"] = message.content or None  # a turn of calls alone has no text: null, not ""
        sent["tool_calls"] = chat_calls(message.tool_calls)
    return sent


def build_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages in order; the system prompt stays a ``system`` message (every server accepts it)."""
    return [_message(m) for m in messages]


def uses_completion_tokens(model: str) -> bool:
    return bool(_REASONING_MODEL.match(model))


def build_chat_body(request: ChatRequest, dialect: Dialect, *, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": build_messages(request.messages)}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.max_tokens is not None:
        wide = dialect.completion_tokens_param and uses_completion_tokens(request.model)
        body["max_completion_tokens" if wide else "max_tokens"] = request.max_tokens
    if dialect.reasoning_effort and request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    body |= chat_tools(request)
    body["stream"] = stream
    # Only with stream: some servers reject stream_options on a plain request.
    if stream and dialect.include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


# ---- stream chunks ------------------------------------------------------------------------------

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


def map_finish_reason(value: str | None) -> FinishReason:
    return _FINISH.get((value or "").lower(), "other")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# The per-chunk functions check ``dict`` rather than ``Mapping``: they run once per token on JSON
# that is always made of dicts, and the ABC check was the largest single cost in profiles.


def usage_from(data: Any, dialect: Dialect | None = None) -> Usage | None:
    """Usage from a chunk or a whole response: ``prompt_tokens`` (cached ones included), the cache reads
    and writes of ``prompt_tokens_details``, the reasoning tokens of ``completion_tokens_details``, and
    OpenRouter's ``cost``."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details")
    prompt = prompt if isinstance(prompt, dict) else {}
    completion = usage.get("completion_tokens_details")
    reasoning = _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else None
    output = _int(usage.get("completion_tokens"))
    if dialect is not None and dialect.reasoning_outside_completion and output is not None:
        output += reasoning or 0
    cost = usage.get("cost")
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=output,
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        cached_input_tokens=_int(prompt.get("cached_tokens")),
        cache_write_tokens=_int(prompt.get("cache_write_tokens")),
        reasoning_tokens=reasoning,
    )


# Error ``type``/``code`` strings → the HTTP status they would have come with.
_ERROR_STATUS = (
    ("context_length", 400),
    ("exceed_context", 400),
    ("insufficient_quota", 429),
    ("rate_limit", 429),
    ("overloaded", 529),
    ("authentication", 401),
    ("invalid_api_key", 401),
    ("permission", 403),
    ("not_found", 404),
    ("invalid_request", 400),
    ("unavailable", 503),
    ("timeout", 408),
)


def stream_error(provider: str, data: Mapping[str, Any]) -> errors.ProviderError:
    """The ProviderError for a ``data:`` JSON carrying an ``error`` key (after the first byte)."""
    upstream = extract_error(data)
    code = (upstream.code or "").lower()
    status = int(code) if code.isdigit() else 500
    if not code.isdigit():
        for hint, hinted_status in _ERROR_STATUS:
            if hint in code or hint in upstream.message.lower():
                status = hinted_status
                break
    if "content_filter" in code or "content_policy" in code:
        return errors.ContentFilterError(provider, upstream.message, status=None)
    error = error_for_status(provider, status, upstream)
    error.status = None  # the HTTP status was 200: the failure came inside the stream
    return error


def chunk_events(data: Any, provider: str) -> Iterator[TextDelta | ReasoningDelta]:
    """Text and reasoning in one chunk; raises the ProviderError of an ``error`` chunk."""
    if not isinstance(data, dict):
        raise errors.ProtocolError(provider, f"a stream chunk was not a JSON object: {str(data)[:200]!r}")
    if data.get("error"):
        raise stream_error(provider, data)
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield ReasoningDelta(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield TextDelta(content)


def completion_events(data: Any, provider: str, dialect: Dialect) -> Iterator[StreamEvent]:
    """The events of a non-streamed ``chat.completion`` body."""
    if not isinstance(data, dict):
        raise errors.ProtocolError(provider, "the completion was not a JSON object")
    if data.get("error"):
        raise stream_error(provider, data)
    choices = data.get("choices") or [{}]
    choice: dict[str, Any] = choices[0] if isinstance(choices[0], dict) else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        yield ReasoningDelta(reasoning)
    content = message.get("content")
    if isinstance(content, str) and content:
        yield TextDelta(content)
    calls = ChatToolCalls()
    calls.add({"choices": [choice]})
    yield from calls.take()
    usage = usage_from(data, dialect)
    if usage is not None:
        yield usage
    yield Finish(finish_with_calls(map_finish_reason(choice.get("finish_reason") or "stop"), calls.called))


def chunk_finish(data: Mapping[str, Any]) -> str | None:
    for choice in data.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason"):
            return str(choice["finish_reason"])
    return None


# ---- errors -------------------------------------------------------------------------------------

_BAD_KEY = ("incorrect api key", "invalid api key", "invalid_api_key", "api key not valid")


def translate_error(provider: str, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
    """Error bodies of every shape the dialect's servers send, with their quirks.

    xAI answers a bad key with 400 and ``{"code": "<grpc description>", "error": "<message>"}``;
    a content-policy refusal is a content filter whatever the status.
    """
    upstream = extract_error(body)
    metadata = _error_metadata(body)
    if metadata.get("raw") and isinstance(metadata["raw"], str):
        # OpenRouter wraps an upstream provider's failure as "Provider returned error"; say what it was.
        inner = extract_error(metadata["raw"]).message
        source = metadata.get("provider_name") or "upstream"
        upstream = UpstreamError(f"{upstream.message} ({source}: {inner})", upstream.code)
    lowered = f"{upstream.message} {upstream.code or ''}".lower()
    retry_after = parse_retry_after(headers)
    if status in (400, 403) and any(hint in lowered for hint in _BAD_KEY):
        return errors.AuthenticationError(provider, upstream.message, status=status)
    if status == 400 and ("content_policy" in lowered or "content_filter" in lowered):
        return errors.ContentFilterError(provider, upstream.message, status=status)
    if status == 403 and ("reasons" in metadata or "flagged_input" in metadata):  # OpenRouter moderation
        return errors.ContentFilterError(provider, upstream.message, status=status)
    return error_for_status(provider, status, upstream, retry_after=retry_after)


def _error_metadata(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    return metadata if isinstance(metadata, dict) else {}


# ---- models -------------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _per_mtok(value: Any) -> float | None:
    """OpenRouter prices are USD-per-token strings; "-1" means variable (router models)."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return None if price < 0 else round(price * 1_000_000, 6)


def _model_info(item: Mapping[str, Any]) -> ModelInfo | None:
    model_id = item.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    pricing = _mapping(item.get("pricing"))
    top = _mapping(item.get("top_provider"))
    architecture = _mapping(item.get("architecture"))
    meta = _mapping(item.get("meta"))
    modalities = architecture.get("input_modalities") or item.get("input_modalities")
    name = item.get("name")
    return ModelInfo(
        id=model_id,
        name=name if isinstance(name, str) and name else None,
        context_window=_int(item.get("context_length"))
        or _int(item.get("max_model_len"))
        or _int(item.get("context_window"))
        or _int(meta.get("n_ctx_train")),
        max_output_tokens=_int(top.get("max_completion_tokens")),
        supports_images=("image" in modalities) if isinstance(modalities, list) else None,
        input_price_per_mtok=_per_mtok(pricing.get("prompt")),
        output_price_per_mtok=_per_mtok(pricing.get("completion")),
    )


def models_from(body: Any, provider: str) -> list[ModelInfo]:
    """``{"data": [...]}`` (OpenAI, OpenRouter, servers) or ``{"models": [...]}`` (xAI rich lists)."""
    items = body.get("data", body.get("models")) if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise errors.ProtocolError(provider, "the model list had no data array")
    models = [m for m in (_model_info(i) for i in items if isinstance(i, Mapping)) if m is not None]
    return sorted(models, key=lambda m: m.id)


def loads(raw: bytes | str, provider: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        raise errors.ProtocolError(provider, f"malformed JSON from the server: {text[:200]!r}") from None
