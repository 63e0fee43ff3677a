"""Google Gemini through the Generative Language API (v1beta), streamed with ``?alt=sse``.

Gemini's quirks handled here: the key travels in the ``x-goog-api-key`` header (never ``?key=``, which
ends up in access logs), a bad key is a 400 ``INVALID_ARGUMENT`` whose details say ``API_KEY_INVALID``,
the assistant role is ``model``, usage comes as running totals on every chunk, the stream has no end
marker (the last chunk carries ``finishReason``), and a blocked prompt is a 200 with
``promptFeedback.blockReason`` and no candidates.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

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
from providers.errors import error_for_status, extract_error, parse_retry_after
from providers.http import iter_sse, sse_json

if TYPE_CHECKING:  # pragma: no cover - typing only
    from providers.manifest import Manifest

GOOGLE_HOST = "generativelanguage.googleapis.com"
API_VERSION = "v1beta"
MODEL_PAGE_SIZE = 1000  # the API's maximum
MAX_MODEL_PAGES = 20

FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
    }
)
FINISH_REASONS: dict[str, FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length"}

# Models that think and can return their thoughts. Asking a model that does not think for its
# thoughts is refused by the API, so the request asks only these.
_THINKING_MODELS = re.compile(r"^(gemini-(2\.5|[3-9])|gemini-(flash|flash-lite|pro)-latest)")

# google.rpc status → error class, for the statuses whose meaning does not depend on the message.
_RPC_STATUSES: dict[str, type[errors.ProviderError]] = {
    "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDeniedError,
    "FAILED_PRECONDITION": errors.PermissionDeniedError,  # region not served, billing not enabled
    "NOT_FOUND": errors.ModelNotFoundError,
    "RESOURCE_EXHAUSTED": errors.RateLimitError,
    "DEADLINE_EXCEEDED": errors.ProviderTimeoutError,
    "INTERNAL": errors.ProviderUnavailableError,
}
_CONTEXT_HINT = re.compile(r"input token count .* exceeds|exceeds the maximum number of tokens", re.IGNORECASE)


def model_path(model: str) -> str:
    """``models/{id}``; a model given with its ``models/`` prefix is accepted too."""
    return f"models/{model.removeprefix('models/')}"


def _retry_delay(details: list[Any]) -> float | None:
    """google.rpc.RetryInfo's ``retryDelay`` ("17s"): Gemini's retry hint is in the body."""
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*([0-9.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def gemini_error(
    provider: str, data: Any, *, status: int | None, headers: Mapping[str, str] | None = None
) -> errors.ProviderError:
    """A google.rpc.Status error body (or mid-stream ``{"error": …}`` chunk) as a ProviderError."""
    if isinstance(data, bytes | str):
        with contextlib.suppress(ValueError):  # not JSON: the text itself is the message
            data = json.loads(data)
    if isinstance(data, list) and data:  # the non-SSE stream wraps errors in an array
        data = data[0]
    inner = data.get("error") if isinstance(data, dict) else None
    upstream = extract_error(data)
    if not isinstance(inner, dict):
        return error_for_status(provider, status or 500, upstream)
    code = inner.get("code")
    http_status = status if status is not None else (code if isinstance(code, int) else None)
    rpc_status = str(inner.get("status") or "")
    raw_details = inner.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    retry_after = (parse_retry_after(headers) if headers else None) or _retry_delay(details)
    kwargs: dict[str, Any] = {"status": http_status, "retry_after": retry_after}
    message = upstream.message
    if "API_KEY_INVALID" in reasons or "api key not valid" in message.lower():
        return errors.AuthenticationError(provider, message, **kwargs)
    if rpc_status == "UNAVAILABLE":
        overloaded = "overload" in message.lower()
        return (errors.OverloadedError if overloaded else errors.ProviderUnavailableError)(provider, message, **kwargs)
    if rpc_status == "INVALID_ARGUMENT" and _CONTEXT_HINT.search(message):
        return errors.ContextLengthError(provider, message, **kwargs)
    if rpc_status in _RPC_STATUSES:
        return _RPC_STATUSES[rpc_status](provider, message, **kwargs)
    return error_for_status(provider, http_status or 500, upstream, retry_after=retry_after)


class GeminiHTTP(HTTPProvider):
    """What the chat and the image provider share: the key header, the error shape, the base URL."""

    def __init__(self, manifest: Manifest, *, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(manifest, base_url=base_url, **kwargs)
        # Google's own host given without an API version: the version the plugin speaks.
        url = httpx.URL(self.base_url)
        if url.host == GOOGLE_HOST and url.path in ("", "/"):
            self.base_url = f"{self.base_url}/{API_VERSION}"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    def translate_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
        return gemini_error(self.provider, body, status=status, headers=headers)


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": a.mime_type, "data": base64.b64encode(a.data).decode("ascii")}}
        for a in message.attachments
    ]
    if message.content:
        parts.append({"text": message.content})
    return parts


def build_contents(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Turns with roles ``user`` / ``model``, consecutive turns of one role merged."""
    contents: list[dict[str, Any]] = []
    for message in conversation:
        parts = _parts(message)
        if not parts:
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def finish_reason(reason: str, *, called_function: bool) -> FinishReason:
    if reason in FILTERED:
        return "content_filter"
    if reason == "STOP" and called_function:
        return "tool_calls"
    return FINISH_REASONS.get(reason, "other")


def usage_from(metadata: Mapping[str, Any]) -> Usage:
    """Output includes the thoughts: they are generated, and billed, as output tokens."""
    prompt = metadata.get("promptTokenCount")
    produced = [metadata[key] for key in ("candidatesTokenCount", "thoughtsTokenCount") if key in metadata]
    return Usage(prompt, sum(produced) if produced else None)


class GoogleProvider(GeminiHTTP):
    model_page_size: ClassVar[int] = MODEL_PAGE_SIZE

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": build_contents(request.conversation)}
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.top_p is not None:
            config["topP"] = request.top_p
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if request.stop:
            config["stopSequences"] = list(request.stop)
        if _THINKING_MODELS.match(request.model.removeprefix("models/")):
            config["thinkingConfig"] = {"includeThoughts": True}
        if config:
            body["generationConfig"] = config
        return body

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.require_key()
        path = f"{model_path(request.model)}:streamGenerateContent"
        reason: str | None = None
        usage: Mapping[str, Any] | None = None
        called_function = False
        async with self.open("POST", path, params={"alt": "sse"}, json_body=self.build_body(request)) as response:
            async for sse in iter_sse(response, provider=self.provider):
                if not sse.data:
                    continue
                chunk = sse_json(sse, provider=self.provider)
                if not isinstance(chunk, dict):
                    raise errors.ProtocolError(self.provider, f"unexpected stream chunk: {sse.data[:200]!r}")
                if "error" in chunk:
                    raise gemini_error(self.provider, chunk, status=None)
                candidates = chunk.get("candidates") or []
                blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
                if blocked and not candidates:
                    detail = chunk["promptFeedback"].get("blockReasonMessage") or ""
                    raise errors.ContentFilterError(
                        self.provider, f"the prompt was blocked ({blocked}){': ' + detail if detail else ''}"
                    )
                usage = chunk.get("usageMetadata") or usage  # running totals: the last one counts
                for candidate in candidates[:1]:
                    if not isinstance(candidate, dict):
                        raise errors.ProtocolError(self.provider, f"unexpected candidate: {str(candidate)[:200]!r}")
                    for part in (candidate.get("content") or {}).get("parts") or []:
                        called_function = called_function or "functionCall" in part
                        text = part.get("text")
                        if text:
                            yield ReasoningDelta(text) if part.get("thought") else TextDelta(text)
                    reason = candidate.get("finishReason") or reason
        # No end marker: the response ends after the chunk that carries finishReason.
        if reason is None:
            raise errors.ProtocolError(self.provider, "the stream ended without a finish reason")
        if usage:
            yield usage_from(usage)
        yield Finish(finish_reason(reason, called_function=called_function))

    # -- models and keys ----------------------------------------------------------------------

    async def fetch_models(self) -> list[ModelInfo]:
        self.require_key()
        models: list[ModelInfo] = []
        params = {"pageSize": str(self.model_page_size)}
        seen_tokens: set[str] = set()
        for _ in range(MAX_MODEL_PAGES):
            page = await self.get_json("models", params=params)
            for item in page.get("models") or []:
                if "generateContent" not in (item.get("supportedGenerationMethods") or []):
                    continue
                models.append(
                    ModelInfo(
                        id=str(item["name"]).removeprefix("models/"),
                        name=item.get("displayName"),
                        context_window=item.get("inputTokenLimit"),
                        max_output_tokens=item.get("outputTokenLimit"),
                    )
                )
            token = page.get("nextPageToken")
            if not token or token in seen_tokens:
                break
            seen_tokens.add(token)
            params = {"pageSize": str(self.model_page_size), "pageToken": token}
        return models

    async def validate_key(self) -> None:
        self.require_key()
        await self.get_json("models", params={"pageSize": "1"})
