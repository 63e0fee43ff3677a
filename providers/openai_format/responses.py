"""Request and stream mapping for the OpenAI Responses API (``POST /responses``): pure functions, no I/O.

OpenAI and xAI speak it. Requests are stateless (``store: false``): the history goes in ``input`` every
turn, and the encrypted reasoning items a turn produced go back in their place, before that turn's
answer, so a reasoning model keeps its train of thought without the server storing anything; a turn
that called tools goes back as its reasoning items, its text (if any), its ``function_call`` items (in
the turn's own order when it interleaved them) and then one ``function_call_output`` per result. The
stream is named events (``event: response.output_text.delta`` …) with the type repeated in the JSON;
``ResponsesStream`` folds them into the contract's events and keeps what goes back next turn.

May import: ``providers.contract``, ``providers.errors``, ``providers.manifest``,
``providers.openai_format.mapping``, ``providers.openai_format.tool_stream``,
``providers.openai_format.tools`` (no HTTP machinery: nothing here does I/O).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from providers import errors
from providers.contract import (
    Attachment,
    ChatRequest,
    Finish,
    FinishReason,
    Message,
    ProviderState,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
)
from providers.errors import UpstreamError, error_for_status
from providers.manifest import ProviderConfig
from providers.openai_format.mapping import data_url, message_with_parts, stream_error
from providers.openai_format.tool_stream import FunctionCalls, finish_with_calls
from providers.openai_format.tools import (
    function_call_items,
    function_call_output,
    responses_tools,
    tool_choice_problem,
)

# ``response.failed`` error codes that blame the request (OpenAI's ``ResponseError.code`` values).
_REQUEST_FAULTS = ("invalid_", "unsupported_", "empty_image", "image_")

# ``response.incomplete``'s ``incomplete_details.reason`` → the contract's finish reason.
INCOMPLETE_REASONS: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


# ---- request ------------------------------------------------------------------------------------


def _input_part(attachment: Attachment) -> dict[str, Any]:
    if attachment.mime_type.startswith("image/"):
        return {"type": "input_image", "image_url": data_url(attachment)}
    if attachment.mime_type == "application/pdf":
        return {"type": "input_file", "filename": attachment.filename, "file_data": data_url(attachment)}
    raise errors.UnsupportedAttachmentError(
        attachment.filename,
        attachment.mime_type,
        ("image/*", "application/pdf"),
        reason="the Responses API has no input part for this type",
    )


def _message(message: Message) -> dict[str, Any]:
    return message_with_parts(message, text_type="input_text", part=_input_part)


def state_items(state: Any, model: str) -> list[Any]:
    """The output items a turn's ``ProviderState`` asks to send back, when they fit ``model``.

    Encrypted reasoning decrypts only for the model that wrote it (another one answers 400), so the
    items of a turn another model produced are left out: that model starts its thinking afresh.
    """
    if isinstance(state, dict) and isinstance(state.get("items"), list):
        return list(state["items"]) if state.get("model") in (None, model) else []
    return []


# A turn's output items by kind: "r" a reasoning item, "m" its message, "c" a call.
_KINDS = {"reasoning": "r", "message": "m", "function_call": "c"}


def layout_of(output: list[Any]) -> list[str] | None:
    """The order of a turn's reasoning items, message and calls, when it is not the usual one (reasoning,
    then the text, then the calls). A reasoning item must go back right before the item it led to (the API
    refuses one without its following item), so an interleaved turn keeps its order in its state."""
    layout = [
        _KINDS[i["type"]]
        for i in output
        if isinstance(i, dict) and isinstance(i.get("type"), str) and i["type"] in _KINDS
    ]
    return None if layout == sorted(layout, key="rmc".index) else layout


def _turn_items(message: Message, model: str) -> list[Any]:
    """An assistant turn's items: its reasoning items (when they fit ``model``), its text (a turn of calls
    alone has none) and its calls, in the turn's own order where its state kept one."""
    reasoning = state_items(message.provider_state, model)
    text = [_message(message)] if message.content or not message.tool_calls else []
    calls = function_call_items(message)
    state = message.provider_state
    layout = state.get("layout") if reasoning and isinstance(state, dict) else None
    if not isinstance(layout, list) or (layout.count("r"), layout.count("c")) != (len(reasoning), len(calls)):
        return [*reasoning, *text, *calls]  # the usual order, or a state that no longer matches the turn
    queues = {"r": reasoning, "m": text, "c": calls}
    ordered = [queues[kind].pop(0) for kind in layout if queues.get(kind)]
    return [*ordered, *reasoning, *text, *calls]  # whatever the layout did not place (a text it did not have)


def build_input(messages: tuple[Message, ...], model: str) -> list[Any]:
    """The conversation as ``input`` items: each assistant turn's reasoning items, text and calls; a tool's
    result is a ``function_call_output``."""
    items: list[Any] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            items.append(function_call_output(message))
        elif message.role == "assistant":
            items.extend(_turn_items(message, model))
        else:
            items.append(_message(message))
    return items


def build_responses_body(
    request: ChatRequest, config: ProviderConfig, *, tool_strict: bool | None = None
) -> dict[str, Any]:
    """The streamed, stateless request: instructions, input, the reasoning knob where the model has one, and
    the tools on offer (``tool_strict``: the ``strict`` each says, None: not said)."""
    if problem := tool_choice_problem(request):
        raise errors.InvalidRequestError(config.provider_name, problem)
    if request.stop:
        raise errors.InvalidRequestError(
            config.provider_name,
            "The Responses API takes no stop sequences; remove them, or choose the chat_completions API "
            "in the profile.",
        )
    body: dict[str, Any] = {"model": request.model}
    if instructions := request.system_prompt:
        body["instructions"] = instructions
    body["input"] = build_input(request.messages, request.model)
    body["stream"] = True
    body["store"] = False
    body["include"] = ["reasoning.encrypted_content"]
    if reasoning := _reasoning(request, config):
        body["reasoning"] = reasoning
    body |= request.sampling(max_tokens="max_output_tokens", temperature="temperature", top_p="top_p")
    body |= responses_tools(request, strict=tool_strict)
    return body


def _reasoning(request: ChatRequest, config: ProviderConfig) -> dict[str, Any]:
    """``{effort, summary}``: the effort asked for, and a summary where the model writes one (and it is wanted)."""
    rule = config.rule_for(request.model)
    knob = rule.reasoning if rule is not None else None
    if knob is None:
        return {}
    options = request.reasoning
    reasoning: dict[str, Any] = {}
    if options is not None and options.effort is not None:
        reasoning["effort"] = options.effort
    if knob.summary and (options is None or options.summary):
        reasoning["summary"] = "auto"
    return reasoning


# ---- stream -------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    details = usage.get(key)
    return details if isinstance(details, dict) else {}


def usage_from_response(response: Any) -> Usage | None:
    """``response.usage``; ``input_tokens`` already counts the cached tokens."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    inputs = _details(usage, "input_tokens_details")
    outputs = _details(usage, "output_tokens_details")
    cost = usage.get("cost")
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cost=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        cached_input_tokens=_int(inputs.get("cached_tokens")),
        cache_write_tokens=_int(inputs.get("cache_write_tokens")),
        reasoning_tokens=_int(outputs.get("reasoning_tokens")),
    )


def failed_error(provider: str, error: dict[str, Any]) -> errors.ProviderError:
    """The ProviderError of ``response.failed``'s ``error``: the request's own fault (``invalid_prompt``,
    ``invalid_image…``, ``image_too_large``…) is an invalid request; the rest map as stream errors do."""
    code = str(error.get("code") or "")
    if code.startswith(_REQUEST_FAULTS):
        upstream = UpstreamError(str(error.get("message") or code), code)
        failure = error_for_status(provider, 400, upstream)
        failure.status = None  # the HTTP status was 200: the failure came inside the stream
        return failure
    return stream_error(provider, {"error": error})


@dataclass
class ResponsesStream:
    """Folds the events of one streamed response into the contract's events.

    ``feed`` takes each event's parsed JSON and answers what it means; ``finished`` says whether a
    terminal event came. Text and reasoning go out as they arrive, a tool call when its item is done
    (its ``call_id`` is the call's id: the result names it); the reasoning items, the usage and the
    finish go out at the terminal event, reasoning items taken from its final ``output`` (the
    authoritative copy: the ``encrypted_content`` of an item's first announcement may be incomplete).
    """

    provider: str
    model: str
    finished: bool = False
    _items: list[Any] = field(default_factory=list)  # reasoning items from ``output_item.done``
    _reasoning_key: tuple[Any, Any] | None = None  # the (item, summary paragraph) reasoning text is in
    _calls: FunctionCalls = field(default_factory=FunctionCalls)
    _refused: bool = False

    def feed(self, data: Any) -> Iterator[StreamEvent]:
        if not isinstance(data, dict):
            raise errors.ProtocolError(self.provider, f"a stream event was not a JSON object: {str(data)[:200]!r}")
        kind = data.get("type")
        if kind == "response.output_text.delta":
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                yield TextDelta(delta)
        elif kind == "response.refusal.delta":
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                self._refused = True
                yield TextDelta(delta)  # the model's own words for declining: the reply the user sees
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = data.get("delta")
            if isinstance(delta, str) and delta:
                key = (data.get("item_id"), data.get("summary_index", data.get("content_index")))
                if self._reasoning_key is not None and key != self._reasoning_key:
                    yield ReasoningDelta("\n\n")  # a new paragraph of the summary
                self._reasoning_key = key
                yield ReasoningDelta(delta)
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if not isinstance(item, dict):
                return
            if item.get("type") == "reasoning" and kind == "response.output_item.done":
                self._items.append(item)
            elif item.get("type") == "function_call" and kind == "response.output_item.added":
                self._calls.added(data, item)
            elif item.get("type") == "function_call":
                yield from self._calls.done(data, item)
        elif kind == "response.function_call_arguments.delta":
            self._calls.delta(data)
        elif kind == "response.function_call_arguments.done":
            self._calls.arguments_done(data)
        elif kind in ("response.completed", "response.incomplete"):
            yield from self._finish(data.get("response"), kind)
        elif kind == "response.failed":
            response = data.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            if not isinstance(error, dict):
                error = {"message": "the response failed without saying why", "code": "server_error"}
            raise failed_error(self.provider, error)
        elif kind == "error":
            raise stream_error(self.provider, data if isinstance(data.get("error"), dict) else {"error": data})
        # Every other event (created, in_progress, part boundaries, built-in tools…) carries nothing to show.

    def _finish(self, response: Any, kind: str) -> Iterator[StreamEvent]:
        self.finished = True
        output = response.get("output") if isinstance(response, dict) else None
        layout = None
        if isinstance(output, list):
            final = [item for item in output if isinstance(item, dict) and item.get("type") == "reasoning"]
            self._items = final or self._items
            layout = layout_of(output) if final else None
        yield from self._calls.rest(output)
        if self._items:
            state: dict[str, Any] = {"model": self.model, "items": self._items}
            yield ProviderState(state | {"layout": layout} if layout else state)
        usage = usage_from_response(response)
        if usage is not None:
            yield usage
        yield Finish(self._reason(response, kind))

    def _reason(self, response: Any, kind: str) -> FinishReason:
        if kind == "response.incomplete":
            details = response.get("incomplete_details") if isinstance(response, dict) else None
            reason = details.get("reason") if isinstance(details, dict) else None
            return INCOMPLETE_REASONS.get(str(reason), "other")
        if self._refused:
            return "content_filter"
        return finish_with_calls("stop", self._calls.called)


__all__ = [
    "INCOMPLETE_REASONS",
    "ResponsesStream",
    "build_input",
    "build_responses_body",
    "failed_error",
    "layout_of",
    "state_items",
    "usage_from_response",
]
