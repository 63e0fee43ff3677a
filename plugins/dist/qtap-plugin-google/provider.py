"""Google Gemini through the Generative Language API (v1beta), streamed with ``?alt=sse``.

Gemini's quirks handled here: the key travels in the ``x-goog-api-key`` header (never ``?key=``, which
ends up in access logs), a bad key is a 400 ``INVALID_ARGUMENT`` whose details say ``API_KEY_INVALID``,
the assistant role is ``model``, usage comes as running totals on every chunk, the stream has no end
marker (the last chunk carries ``finishReason``), and a blocked prompt is a 200 with
``promptFeedback.blockReason`` and no candidates.

Reasoning: ``generationConfig.thinkingConfig`` takes a ``thinkingLevel`` (Gemini 3.x, from the effort) or a
``thinkingBudget`` (2.5, from the budget) — never both; which one a model takes is in the manifest's
``modelRules``. Thoughts arrive as parts marked ``thought: true``. An opaque ``thoughtSignature`` may ride on
any part (2.5: the first answer part; 3.x: a trailing empty text part): every signed part is kept as
received, with the length of answer text before it, and goes back in the model turn, where it came, on the
next request. ``thoughtsTokenCount`` is outside ``candidatesTokenCount`` and billed as output.

Tools: a ``functionCall`` part arrives whole (``args`` an object) and is one ``ToolCall`` at once, its ``id`` the
call's own or, from models that send none, one made from its place in the reply and the reply's ``responseId``.
Its part, signed or not, is kept in the state like the signed ones, so the next model turn carries it exactly as
received (Gemini 3 refuses a call part without its ``thoughtSignature``); results go back as ``functionResponse``
parts (tools.py).
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
    ProviderState,
    ReasoningDelta,
    ReasoningOptions,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import error_for_status, extract_error, parse_retry_after
from providers.http import iter_sse, sse_json
from providers.tool_mapping import call_from_object, called_names, fallback_call_id

from .tools import function_response, given_ids, tool_fields, with_calls

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

# The effort levels Gemini 3.x names (the manifest's modelRules say which a model takes).
THINKING_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
# 2.5 Flash-Lite takes a budget of 0 (off) or 512 and up: a gap a range in the manifest cannot say.
_BUDGET_GAPS: tuple[tuple[re.Pattern[str], int], ...] = ((re.compile(r"gemini-2\.5-flash-lite"), 512),)

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
    signed = signed_model_parts(message.content, message.provider_state) if message.role == "assistant" else None
    own = signed if signed is not None else ([{"text": message.content}] if message.content else [])
    if message.role == "assistant":
        own = with_calls(own, message)
    return parts + own


def signed_model_parts(text: str, state: Any) -> list[dict[str, Any]] | None:
    """The model turn rebuilt from its text and the signed parts of its state, each part back where it came
    (``offset``: the answer text before it), exactly as received. None when the state does not fit the text
    (an edited reply): the turn then goes back as plain text, its signatures dropped."""
    entries = state.get("parts") if isinstance(state, dict) else None
    if not isinstance(entries, list) or not entries:
        return None
    parts: list[dict[str, Any]] = []
    cursor = 0
    for entry in entries:
        offset, part = (entry.get("offset"), entry.get("part")) if isinstance(entry, dict) else (None, None)
        if not isinstance(offset, int) or not isinstance(part, dict) or not cursor <= offset <= len(text):
            return None
        if offset > cursor:
            parts.append({"text": text[cursor:offset]})
        parts.append(part)
        cursor = offset
        if not part.get("thought"):
            own = part.get("text") or ""
            if not isinstance(own, str) or text[offset : offset + len(own)] != own:
                return None
            cursor = offset + len(own)
    if cursor < len(text):
        parts.append({"text": text[cursor:]})
    return parts


def build_contents(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Turns with roles ``user`` / ``model``, consecutive turns of one role merged: a tool loop's results, one
    ``functionResponse`` part each, in order, make the user turn after the model turn that called them."""
    contents: list[dict[str, Any]] = []
    names = called_names(conversation)
    ids: set[str] = set()  # the call ids Gemini gave, which its functionResponse parts echo
    for message in conversation:
        if message.role == "tool":
            parts = [function_response(message, names, ids)]
        else:
            parts = _parts(message)
            ids |= given_ids(parts)
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
    """Output includes the thoughts: they are generated, and billed, as output tokens (``candidatesTokenCount``
    counts the visible answer only). ``promptTokenCount`` includes the cached tokens; the tool-use prompt is
    input too."""
    consumed = [metadata[key] for key in ("promptTokenCount", "toolUsePromptTokenCount") if key in metadata]
    produced = [metadata[key] for key in ("candidatesTokenCount", "thoughtsTokenCount") if key in metadata]
    return Usage(
        sum(consumed) if consumed else None,
        sum(produced) if produced else None,
        cached_input_tokens=metadata.get("cachedContentTokenCount"),
        reasoning_tokens=metadata.get("thoughtsTokenCount"),
    )


class GoogleProvider(GeminiHTTP):
    model_page_size: ClassVar[int] = MODEL_PAGE_SIZE

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": build_contents(request.conversation)}
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        config: dict[str, Any] = request.sampling(
            temperature="temperature", top_p="topP", max_tokens="maxOutputTokens", stop="stopSequences"
        )
        if (thinking := self.thinking_config(request)) is not None:
            config["thinkingConfig"] = thinking
        if config:
            body["generationConfig"] = config
        body |= tool_fields(request, self.provider)
        return body

    def thinking_config(self, request: ChatRequest) -> dict[str, Any] | None:
        """``thinkingLevel`` from the effort or ``thinkingBudget`` from the budget (the host has checked them
        against the model's rule, which offers one or the other), and whether the thoughts come back."""
        rule = self.config.rule_for(request.model)
        knob = rule.reasoning if rule is not None else None
        if knob is None:
            return None  # a model that does not think refuses to be asked for its thoughts
        options = request.reasoning or ReasoningOptions()
        config: dict[str, Any] = {}
        if knob.summary:
            config["includeThoughts"] = options.summary
        if options.effort is not None:
            if options.effort not in THINKING_LEVELS:
                raise errors.InvalidRequestError(
                    self.provider, f"Gemini has no thinking level for a reasoning effort of {options.effort!r}."
                )
            config["thinkingLevel"] = THINKING_LEVELS[options.effort]
        elif options.budget_tokens is not None:
            budget = options.budget_tokens
            for pattern, least in _BUDGET_GAPS:
                if pattern.search(request.model) and 0 < budget < least and knob.budget_tokens is not None:
                    raise errors.InvalidRequestError(
                        self.provider,
                        f"The model {request.model!r} takes a thinking budget of 0 (off) or {least} to "
                        f"{knob.budget_tokens.max} tokens, not {budget}.",
                    )
            config["thinkingBudget"] = budget
        return config or None

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        self.require_key()
        body = self.build_body(request)  # refuses what the model cannot take before any request
        path = f"{model_path(request.model)}:streamGenerateContent"
        reason: str | None = None
        usage: Mapping[str, Any] | None = None
        calls = 0  # functionCall parts so far: the place a call without an id is named by
        answered = 0  # characters of answer text so far: where a signed part sits in the turn
        signed: list[dict[str, Any]] = []
        async with self.open("POST", path, params={"alt": "sse"}, json_body=body) as response:
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
                        if not isinstance(part, dict):
                            continue  # not a part this plugin knows: ignored, as new part types must be
                        if "thoughtSignature" in part or "functionCall" in part:
                            signed.append({"offset": answered, "part": part})
                        if isinstance(call := part.get("functionCall"), dict):
                            name = str(call.get("name") or "")
                            reply = str(chunk.get("responseId") or "")
                            call_id = str(call.get("id") or fallback_call_id(calls, name, reply))
                            yield call_from_object(call_id, name, call.get("args"))
                            calls += 1
                        text = part.get("text")
                        if text and isinstance(text, str):
                            if part.get("thought"):
                                yield ReasoningDelta(text)
                            else:
                                answered += len(text)
                                yield TextDelta(text)
                    reason = candidate.get("finishReason") or reason
        # No end marker: the response ends after the chunk that carries finishReason.
        if reason is None:
            raise errors.ProtocolError(self.provider, "the stream ended without a finish reason")
        if signed:
            yield ProviderState({"parts": signed})
        if usage:
            yield usage_from(usage)
        yield Finish(finish_reason(reason, called_function=calls > 0))

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
