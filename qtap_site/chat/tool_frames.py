"""The tool part of a chat's websocket protocol (SPEC §5): the client frame ``tool.approve``, the server
frames ``tool.call`` and ``tool.result``, and the shape a call travels in everywhere (those frames,
``chat.state``'s generation, a message's ``tool_calls``). ``protocol`` parses ``tool.approve`` with the
other client frames.

A call's arguments and result are the model's and the tool's words: untrusted. They travel as JSON
values and plain text, and a page draws them as text (``rendering`` escapes them), never as HTML.

May import: ``models``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qtap_site.chat.models import Message, ToolCall

Frame = dict[str, Any]

# What a tab is sent of a result: the model gets all of it (up to the tool loop's cap), a page this much.
SHOWN_RESULT_CHARS = 20_000


class ToolApprove(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    type: Literal["tool.approve"]
    call_id: Annotated[str, Field(min_length=1, max_length=200)]
    approve: bool


def call_dict(call: ToolCall | dict[str, Any]) -> dict[str, Any]:
    """A call as frames and pages carry it (a saved row, or the loop's own record of a running call)."""
    row = call if isinstance(call, dict) else _row(call)
    result = row.get("result") or ""
    return {
        "call_id": row["call_id"],
        "round": row.get("round", 0),
        "name": row["name"],
        "arguments": row.get("arguments") or {},
        "needs_approval": bool(row.get("needs_approval")),
        "status": row.get("status", ToolCall.Status.RUNNING),
        "is_error": bool(row.get("is_error")),
        "content": result[:SHOWN_RESULT_CHARS],
        "duration_ms": row.get("duration_ms"),
    }


def _row(call: ToolCall) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "round": call.round,
        "name": call.name,
        "arguments": call.arguments,
        "needs_approval": call.needs_approval,
        "status": call.status,
        "is_error": call.is_error,
        "result": call.result,
        "duration_ms": call.duration_ms,
    }


def calls_of(message: Message) -> list[dict[str, Any]]:
    """A saved reply's calls, each with the offset in its text where its turn ended (drawn there)."""
    calls = list(message.tool_calls.all()) if message.pk is not None else []
    return drawn(calls, message.tool_rounds or [], len(message.content))


def drawn(calls: list[Any], rounds: list[dict[str, Any]], end: int) -> list[dict[str, Any]]:
    """Calls (rows or records) as a message carries them: ``offset`` is where their turn's text ends."""
    offsets = [turn.get("offset", 0) for turn in rounds]
    shapes = [call_dict(call) for call in calls]
    return [{**c, "offset": offsets[c["round"]] if c["round"] < len(offsets) else end} for c in shapes]


def tool_call(message_id: int, call: dict[str, Any]) -> Frame:
    shape = call_dict(call)
    return {
        "type": "tool.call",
        "message_id": message_id,
        "call_id": shape["call_id"],
        "name": shape["name"],
        "arguments": shape["arguments"],
        "needs_approval": shape["needs_approval"] and shape["status"] == ToolCall.Status.AWAITING_APPROVAL,
        "round": shape["round"],
    }


def tool_result(message_id: int, call: dict[str, Any]) -> Frame:
    shape = call_dict(call)
    return {
        "type": "tool.result",
        "message_id": message_id,
        "call_id": shape["call_id"],
        "is_error": shape["is_error"],
        "content": shape["content"],
        "duration_ms": shape["duration_ms"],
        "status": shape["status"],
    }
