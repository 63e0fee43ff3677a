"""Reading a qtap archive (the format ``serialize`` writes) back into records, checking every field so a
bad archive is refused with where it went wrong, before anything is written.

A chat's identity in the archive is its id there and its creation time together, so archives of two
servers whose ids overlap are not taken for each other. An attachment's bytes, when the archive holds
them, are checked against its sha256 and size here; ``writing`` stores them for a user who lacks them.

May import: ``fields``, ``records``, ``serialize``, ``qtap_site.chat.models``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

from qtap_site.chat.models import Message, ToolCall
from qtap_site.transfer import fields, serialize
from qtap_site.transfer.records import (
    ConversationRecord,
    ImportProblem,
    MessageRecord,
    Tick,
    insertion_order,
    no_tick,
    timestamp,
)

ROLES = set(Message.Role.values)
STATUSES = set(Message.Status.values)
CALL_STATUSES = set(ToolCall.Status.values)
MAX_COST = Decimal("999999")  # the column holds 14 digits, 8 after the point


def is_archive(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == serialize.FORMAT


def conversations(name: str, data: dict[str, Any], tick: Tick = no_tick) -> list[ConversationRecord]:
    """Every chat of the archive, calling ``tick(done, total)`` before each one is read."""
    if data.get("version") != serialize.VERSION:
        raise ImportProblem(
            "unsupported_version",
            f"{name}: qtap archive version {data.get('version')!r}; this server reads version {serialize.VERSION}",
        )
    chats = fields.items(data.get("chats"), f"{name}: chats")
    records = []
    for i, chat in enumerate(chats):
        tick(i, len(chats))
        records.append(_chat(fields.obj(chat, f"{name}: chats[{i}]"), f"{name}: chats[{i}]"))
    return records


def _chat(chat: dict[str, Any], where: str) -> ConversationRecord:
    chat_id = fields.key_of(chat.get("id"), f"{where}: id")
    created = timestamp(chat.get("created_at"), f"{where}: created_at")
    messages = [
        _message(fields.obj(m, f"{where}: messages[{j}]"), f"{where}: messages[{j}]")
        for j, m in enumerate(fields.items(chat.get("messages", []), f"{where}: messages"))
    ]
    # The chat page opens on the newest message's branch; so did the chat this came from.
    current = max(messages, key=lambda m: _order(m.key)).key if messages else None
    return ConversationRecord(
        source="qtap",
        external_id=f"{chat_id}@{created.isoformat() if created else ''}",
        title=fields.text(chat, "title", where),
        system_prompt=fields.text(chat, "system_prompt", where),
        created_at=created,
        profile_name=fields.text(chat, "profile", where),
        messages=insertion_order(messages, current, where),
        current=current,
    )


def _order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def _message(data: dict[str, Any], where: str) -> MessageRecord:
    parent = data.get("parent")
    record = MessageRecord(
        key=fields.key_of(data.get("id"), f"{where}: id"),
        parent=None if parent is None else fields.key_of(parent, f"{where}: parent"),
        role="",
        created_at=timestamp(data.get("created_at"), f"{where}: created_at"),
    )
    for name in serialize.MESSAGE_TEXT_FIELDS:
        setattr(record, name, fields.text(data, name, where))
    for name in serialize.MESSAGE_INT_FIELDS:
        setattr(record, name, fields.count(data, name, where))
    if record.role not in ROLES:
        raise fields.bad(f"{where}: role", f"{record.role!r} is not one of {sorted(ROLES)}")
    record.status = record.status or Message.Status.COMPLETE
    if record.status not in STATUSES:
        raise fields.bad(f"{where}: status", f"{record.status!r} is not one of {sorted(STATUSES)}")
    if record.status == Message.Status.STREAMING:
        record.status = Message.Status.INTERRUPTED  # no process here is writing it
    record.cost = _cost(data.get("cost"), f"{where}: cost")
    record.attachments = [
        _attachment(fields.obj(a, f"{where}: attachments[{k}]"), f"{where}: attachments[{k}]")
        for k, a in enumerate(fields.items(data.get("attachments", []), f"{where}: attachments"))
    ]
    record.tool_calls = [
        _tool_call(fields.obj(c, f"{where}: tool_calls[{k}]"), f"{where}: tool_calls[{k}]", k)
        for k, c in enumerate(fields.items(data.get("tool_calls", []), f"{where}: tool_calls"))
    ]
    if (rounds := data.get("tool_rounds")) is not None:
        record.tool_rounds = [
            {"offset": fields.count(fields.obj(r, f"{where}: tool_rounds[{k}]"), "offset", where) or 0}
            for k, r in enumerate(fields.items(rounds, f"{where}: tool_rounds"))
        ]
    return record


def _cost(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = Decimal(str(value)) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    except InvalidOperation:
        cost = None
    if cost is None or not cost.is_finite() or not -MAX_COST < cost < MAX_COST:
        raise fields.bad(where, f"expected a cost in USD, found {value!r}")
    return cost.quantize(Decimal("0.00000001"))


def _attachment(data: dict[str, Any], where: str) -> dict[str, Any]:
    sha = fields.text(data, "sha256", where).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise fields.bad(f"{where}: sha256", f"expected 64 hex digits, found {sha!r}")
    attachment: dict[str, Any] = {
        "filename": fields.text(data, "filename", where),
        "mime_type": fields.text(data, "mime_type", where),
        "size": fields.count(data, "size", where) or 0,
        "sha256": sha,
    }
    if (encoded := data.get("data")) is not None:
        attachment["data"] = _bytes(encoded, sha, attachment["size"], f"{where}: data")
    return attachment


def _bytes(encoded: Any, sha: str, size: int, where: str) -> bytes:
    """The attachment's bytes, checked against the checksum and size the archive gives for them."""
    if not isinstance(encoded, str):
        raise fields.bad(where, "expected the file's bytes as base64 text")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise fields.bad(where, "not valid base64") from None
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        raise fields.bad(where, f"the bytes ({len(data)}) are not the file the size and sha256 name")
    return data


def _tool_call(data: dict[str, Any], where: str, index: int) -> dict[str, Any]:
    arguments = data.get("arguments", {})
    if not isinstance(arguments, dict | list | str | int | float | bool | None):
        raise fields.bad(f"{where}: arguments", "expected JSON")
    status = fields.text(data, "status", where, ToolCall.Status.COMPLETE)
    if status not in CALL_STATUSES:
        raise fields.bad(f"{where}: status", f"{status!r} is not one of {sorted(CALL_STATUSES)}")
    name = fields.text(data, "name", where)
    if not name:
        raise fields.bad(f"{where}: name", "a tool call needs the tool's name")
    return {
        "round": fields.count(data, "round", where) or 0,
        "call_id": fields.text(data, "call_id", where) or f"call_{index}",
        "name": name,
        "plugin": fields.text(data, "plugin", where),
        "arguments": arguments,
        "invalid_arguments": fields.text(data, "invalid_arguments", where),
        "result": fields.text(data, "result", where),
        "is_error": fields.flag(data, "is_error", where),
        "status": status,
        "needs_approval": fields.flag(data, "needs_approval", where),
        "duration_ms": fields.count(data, "duration_ms", where),
    }
