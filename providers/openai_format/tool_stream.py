"""Tool calls on the way in: assembling the calls a stream sends in pieces, in both OpenAI wire formats.

A call is handed on once, when its arguments are complete (``contract.tool_call_from_text`` parses the
joined text; text that is not a JSON object becomes ``invalid_arguments``, never an exception).

Chat Completions sends ``delta.tool_calls[]`` fragments keyed by ``index``: the first fragment of a call
carries its ``id`` and ``function.name``, the rest pieces of ``function.arguments``; parallel calls each
have their own index and may interleave. Servers bend this (a whole call in one chunk, no ``index``, an
``id`` repeated on every fragment), so a fragment without an index belongs to the call its ``id`` names,
else to the call before it. The Responses API announces a ``function_call`` item
(``response.output_item.added``: ``call_id``, ``name``), streams its arguments
(``response.function_call_arguments.delta`` / ``.done``, by ``item_id``) and closes it
(``response.output_item.done``, the authoritative copy).

May import: ``providers.contract`` (nothing here does I/O).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from providers.contract import FinishReason, ToolCall, tool_call_from_text


def finish_with_calls(reason: FinishReason, called: bool) -> FinishReason:
    """The finish of a turn that made calls is ``tool_calls``, whatever word a server used for a normal
    end (some local servers say ``stop``); a cut-off (``length``) or a filter keeps its own reason."""
    return "tool_calls" if called and reason in ("stop", "other") else reason


@dataclass
class _Pending:
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


def _text(arguments: Any) -> str:
    """Argument text as sent; a server that sends an object instead of a string gets it serialised."""
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, dict | list):
        return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return ""


class ChatToolCalls:
    """The ``tool_calls`` fragments of one Chat Completions reply (``add`` each chunk or whole completion),
    handed on by ``take`` in the order the calls began."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, Any], _Pending] = {}
        self._last: tuple[str, Any] | None = None
        self.made = 0  # calls handed on so far

    @property
    def called(self) -> bool:
        return self.made > 0 or bool(self._pending)

    def add(self, data: dict[str, Any]) -> None:
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            part = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
            fragments = part.get("tool_calls") if isinstance(part, dict) else None
            for fragment in fragments if isinstance(fragments, list) else ():
                if isinstance(fragment, dict):
                    self._merge(fragment)

    def _merge(self, fragment: dict[str, Any]) -> None:
        index, call_id = fragment.get("index"), fragment.get("id")
        if isinstance(index, int) and not isinstance(index, bool):
            key: tuple[str, Any] = ("index", index)
        elif isinstance(call_id, str) and call_id:
            key = ("id", call_id)
        else:
            key = self._last or ("index", 0)
        pending = self._pending.setdefault(key, _Pending())
        self._last = key
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        if isinstance(call_id, str) and call_id and not pending.id:
            pending.id = call_id
        name = function.get("name")
        if isinstance(name, str) and name and not pending.name:
            pending.name = name
        if text := _text(function.get("arguments")):
            pending.parts.append(text)

    def take(self) -> list[ToolCall]:
        """The calls assembled so far, once each (a call without an id is given one: its result needs it)."""
        calls = []
        for pending in self._pending.values():
            call_id = pending.id or f"call_{self.made}"
            calls.append(tool_call_from_text(call_id, pending.name, "".join(pending.parts)))
            self.made += 1
        self._pending.clear()
        self._last = None
        return calls


class FunctionCalls:
    """The ``function_call`` items of one streamed Responses reply, keyed by item id (or, without one, by
    output index); each handed on once, at its ``output_item.done`` or, failing that, at the terminal
    event from the final ``output``."""

    def __init__(self) -> None:
        self._pending: dict[Any, _Pending] = {}
        self._sent: set[str] = set()

    @property
    def called(self) -> bool:
        return bool(self._sent or self._pending)

    @staticmethod
    def _key(data: dict[str, Any], item: dict[str, Any] | None = None) -> Any:
        item_id = (item or {}).get("id") or data.get("item_id")
        return item_id if isinstance(item_id, str) and item_id else data.get("output_index")

    def added(self, data: dict[str, Any], item: dict[str, Any]) -> None:
        pending = self._pending.setdefault(self._key(data, item), _Pending())
        pending.id = str(item.get("call_id") or pending.id)
        pending.name = str(item.get("name") or pending.name)
        if text := _text(item.get("arguments")):
            pending.parts = [text]

    def delta(self, data: dict[str, Any]) -> None:
        if text := _text(data.get("delta")):
            self._pending.setdefault(self._key(data), _Pending()).parts.append(text)

    def arguments_done(self, data: dict[str, Any]) -> None:
        """``.done`` carries the whole argument string: it replaces the pieces."""
        if isinstance(data.get("arguments"), str):
            self._pending.setdefault(self._key(data), _Pending()).parts = [data["arguments"]]

    def done(self, data: dict[str, Any], item: dict[str, Any]) -> list[ToolCall]:
        """The call this final item describes (its own fields win over the streamed pieces)."""
        pending = self._pending.pop(self._key(data, item), _Pending())
        call_id = str(item.get("call_id") or pending.id or item.get("id") or "")
        name = str(item.get("name") or pending.name)
        text = _text(item.get("arguments")) or "".join(pending.parts)
        return self._send(call_id, name, text)

    def rest(self, output: Any) -> list[ToolCall]:
        """Calls in the final ``output`` not handed on yet, then any still pending (a stream without
        ``output_item.done``)."""
        calls: list[ToolCall] = []
        for index, item in enumerate(output if isinstance(output, list) else ()):
            if isinstance(item, dict) and item.get("type") == "function_call":
                calls += self.done({"output_index": index}, item)
        for pending in list(self._pending.values()):
            calls += self._send(pending.id, pending.name, "".join(pending.parts))
        self._pending.clear()
        return calls

    def _send(self, call_id: str, name: str, text: str) -> list[ToolCall]:
        call_id = call_id or f"call_{len(self._sent)}"  # its result must name it
        if call_id in self._sent:
            return []
        self._sent.add(call_id)
        return [tool_call_from_text(call_id, name, text)]


__all__ = ["ChatToolCalls", "FunctionCalls", "finish_with_calls"]
