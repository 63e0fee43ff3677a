"""Ollama's native chat API: ``POST /api/chat`` streamed as newline-delimited JSON.

Local models need no key (a Bearer token is sent only when one is configured, for ollama.com), can
take minutes to load or think (no read timeout by default), and report failures as ``{"error": "…"}``
bodies or lines, even after a 200.

Reasoning: ``think`` is a level (``low``/``medium``/``high``) for models that take levels (GPT-OSS) and
``true``/``false`` for models that think or not; the manifest's ``modelRules`` say which (a rule offering
several levels means levels; ``none`` is ``false``). Left out, the server's own default applies (thinking
models think). ``message.thinking`` arrives line by line, before or beside ``content``; the turn's thinking
is its provider state and goes back as the assistant message's ``thinking`` (templates that do not use it
drop it).

Tools (R6.2): ``tools`` in the OpenAI Chat shape; there is no ``tool_choice``, so ``none`` sends no tools and a
named tool only that one. ``message.tool_calls`` arrive whole, ``arguments`` an object, on a line before the
``done`` one; a call without an ``id`` (older servers) gets one from its place and the reply's first
``created_at``. ``done_reason`` stays ``stop``: a reply that called tools finishes as ``tool_calls``. The next
request carries the calls on the assistant message (arguments as objects) and each result as a ``role: tool``
message naming its tool.
"""

from __future__ import annotations

import base64
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
    ProviderState,
    ReasoningDelta,
    ReasoningOptions,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import error_for_status, extract_error, parse_retry_after
from providers.http import iter_ndjson
from providers.tool_mapping import call_from_object, called_names, fallback_call_id, offered_tools, result_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    from providers.manifest import Manifest

DONE_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
THINK_LEVELS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "max"}
# Suffixes people paste with the base URL: the cloud docs say https://ollama.com/api, and /v1 is the
# OpenAI-compatible mount. The native API lives under /api on the server root.
_STRIPPED_SUFFIXES = ("/api", "/v1")


class OllamaProvider(HTTPProvider):
    default_read_timeout: ClassVar[float | None] = None  # a local model may think for a long time

    def __init__(self, manifest: Manifest, *, base_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(manifest, base_url=base_url, **kwargs)
        for suffix in _STRIPPED_SUFFIXES:
            if self.base_url.endswith(suffix):
                self.base_url = self.base_url[: -len(suffix)]

    def translate_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
        upstream = extract_error(body)
        if status == 404 and "model" not in upstream.message.lower():
            # Not Ollama's "model … not found" but the HTTP server's own 404: wrong base URL.
            return errors.InvalidRequestError(
                self.provider, f"no Ollama API at {self.base_url} ({upstream.message})", status=status
            )
        return error_for_status(self.provider, status, upstream, retry_after=parse_retry_after(headers))

    def unreachable(self, error: errors.ProviderConnectionError) -> errors.ProviderConnectionError:
        return errors.ProviderConnectionError(
            self.provider, f"cannot reach Ollama: is Ollama running at {self.base_url}? ({error.message})"
        )

    # -- request ------------------------------------------------------------------------------

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        names = called_names(request.messages)
        messages = [wire_message(message, names) for message in request.messages]
        options: dict[str, Any] = request.sampling(
            temperature="temperature", top_p="top_p", max_tokens="num_predict", stop="stop"
        )
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if (think := self.think(request)) is not None:
            body["think"] = think
        if tools := offered_tools(request, self.provider):
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if options:
            body["options"] = options
        return body

    def think(self, request: ChatRequest) -> bool | str | None:
        """``think`` for the effort (the host has checked it against the model's rule); None: the default."""
        effort = request.reasoning.effort if request.reasoning is not None else None
        if effort is None:
            return None
        if effort == "none":
            return False
        rule = self.config.rule_for(request.model)
        efforts = rule.reasoning.efforts if rule is not None and rule.reasoning is not None else ()
        takes_levels = len([e for e in efforts if e in THINK_LEVELS]) > 1
        if not takes_levels:
            return True
        if effort not in THINK_LEVELS:
            raise errors.InvalidRequestError(self.provider, f"Ollama has no thinking level for {effort!r}.")
        return THINK_LEVELS[effort]

    # -- stream -------------------------------------------------------------------------------

    async def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = self.build_body(request)
        shown = (request.reasoning or ReasoningOptions()).summary
        thinking: list[str] = []
        calls = 0  # tool calls so far: the place a call without an id is named by
        reply = ""  # what marks this reply apart from the next one (the server's created_at)
        try:
            async with self.open("POST", "/api/chat", json_body=body) as response:
                async for line in iter_ndjson(response, provider=self.provider):
                    if not isinstance(line, dict):
                        raise errors.ProtocolError(self.provider, f"unexpected line in stream: {str(line)[:200]!r}")
                    if "error" in line:
                        raise self.stream_error(line)
                    message = line.get("message") or {}
                    if not isinstance(message, dict):
                        raise errors.ProtocolError(self.provider, f"unexpected message: {str(message)[:200]!r}")
                    reply = reply or str(line.get("created_at") or "")  # the reply's first line marks it
                    if message.get("thinking") and shown:
                        thinking.append(message["thinking"])
                        yield ReasoningDelta(message["thinking"])
                    if message.get("content"):
                        yield TextDelta(message["content"])
                    for entry in message.get("tool_calls") or []:
                        function = (entry.get("function") if isinstance(entry, dict) else None) or {}
                        name = str(function.get("name") or "")
                        call_id = str(entry.get("id") or fallback_call_id(calls, name, reply))
                        yield call_from_object(call_id, name, function.get("arguments"))
                        calls += 1
                    if line.get("done"):
                        if thinking:
                            yield ProviderState({"thinking": "".join(thinking)})
                        # Counts are omitted when zero (Go omitempty): absent means 0 once done.
                        yield Usage(int(line.get("prompt_eval_count") or 0), int(line.get("eval_count") or 0))
                        # No return: reading on to the end of the body hands the connection back to the pool.
                        yield Finish("tool_calls" if calls else finish_reason(line))
        except errors.ProviderConnectionError as exc:
            raise self.unreachable(exc) from None

    def stream_error(self, line: Mapping[str, Any]) -> errors.ProviderError:
        """An ``{"error": …}`` line after the 200: the model failed while running."""
        message = extract_error(line).message
        if "not found" in message.lower() and "model" in message.lower():
            return errors.ModelNotFoundError(self.provider, message)
        return errors.ProviderUnavailableError(self.provider, message)

    # -- models and reachability --------------------------------------------------------------

    async def fetch_models(self) -> list[ModelInfo]:
        try:
            data = await self.get_json("/api/tags")
        except errors.ProviderConnectionError as exc:
            raise self.unreachable(exc) from None
        models = []
        for item in data.get("models") or []:
            name = item.get("name") or item.get("model")
            if not name:
                continue
            details = item.get("details") or {}
            label = " ".join(filter(None, [name, details.get("parameter_size"), details.get("quantization_level")]))
            models.append(ModelInfo(id=name, name=label))
        return models

    async def validate_key(self) -> None:
        """Local Ollama has no keys: check it answers. With a key (ollama.com), check the key works."""
        path = "/api/tags" if self._api_key else "/api/version"
        try:
            await self.get_json(path)
        except errors.ProviderConnectionError as exc:
            raise self.unreachable(exc) from None


def wire_message(message: Message, names: dict[str, str]) -> dict[str, Any]:
    """One message in /api/chat's shape: an assistant turn with its thinking (its state) and its calls, their
    ``arguments`` objects as Ollama sent them; a result as ``role: tool`` with ``tool_name`` (which the
    model's template reads) and ``tool_call_id``."""
    item: dict[str, Any] = {"role": message.role, "content": message.content}
    state = message.provider_state
    if message.role == "assistant" and isinstance(state, dict) and isinstance(state.get("thinking"), str):
        item["thinking"] = state["thinking"]
    if message.tool_calls:
        item["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"index": i, "name": call.name, "arguments": call.arguments},
            }
            for i, call in enumerate(message.tool_calls)
        ]
    if message.role == "tool":
        item["tool_name"] = result_name(message, names)
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
    if message.attachments:
        item["images"] = [base64.b64encode(a.data).decode("ascii") for a in message.attachments]
    return item


def finish_reason(line: Mapping[str, Any]) -> FinishReason:
    reason = line.get("done_reason")
    if not reason:  # older servers leave it out of a normal end
        return "stop"
    return DONE_REASONS.get(str(reason), "other")  # "load", "unload": not a generated reply
