"""Reading a Claude export's ``conversations.json`` (a list of conversations ``{uuid, name, created_at,
chat_messages: [{uuid, sender, text, content, created_at, parent_message_uuid?}]}``) into records.

``sender`` "human" is the user, "assistant" the reply. A message's text is its ``content`` blocks'
text (``text`` when it has none); ``thinking`` blocks become the reasoning and ``tool_use`` blocks tool
calls, each with the ``tool_result`` that follows it. With ``parent_message_uuid`` the tree is kept
(edits and retries are siblings); without it the messages form one line, in file order. The export's
root parent (the all-zero uuid) and parents outside the conversation start the tree. Files are not in
the export; a message's notes name those left out.

May import: ``fields``, ``records``.
"""

from __future__ import annotations

import json
from typing import Any

from qtap_site.transfer import fields
from qtap_site.transfer.records import (
    ConversationRecord,
    MessageRecord,
    Tick,
    insertion_order,
    keep_only,
    no_tick,
    timestamp,
)

ROLES = {"human": "user", "assistant": "assistant"}
ROOT = "00000000-0000-4000-8000-000000000000"


def is_export(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "chat_messages" in data[0]


def conversations(name: str, data: list[Any], tick: Tick = no_tick) -> list[ConversationRecord]:
    """Every conversation of ``data``, calling ``tick(done, total)`` before each one is read."""
    return fields.each_object(name, data, _conversation, tick)


def _conversation(item: dict[str, Any], where: str) -> ConversationRecord:
    uuid = fields.key_of(item.get("uuid"), f"{where}: uuid")
    raw = fields.items(item.get("chat_messages"), f"{where}: chat_messages")
    keys = set()
    for j, entry in enumerate(raw):
        keys.add(fields.key_of(fields.obj(entry, f"{where}: chat_messages[{j}]").get("uuid"), f"{where}: [{j}]"))
    kept: list[MessageRecord] = []
    dropped: dict[str, str | None] = {}
    previous: str | None = None
    for j, entry in enumerate(raw):
        record = _message(entry, previous, keys, f"{where}: chat_messages[{j}]")
        if record.content.strip() or record.reasoning.strip() or record.tool_calls:
            kept.append(record)
        else:
            dropped[record.key] = record.parent
        previous = record.key
    current = previous if previous not in dropped else None
    return ConversationRecord(
        source="claude",
        external_id=uuid,
        title=fields.text(item, "name", where),
        created_at=timestamp(item.get("created_at"), f"{where}: created_at"),
        messages=insertion_order(keep_only(kept, dropped), current, where),
        current=current,
    )


def _message(entry: dict[str, Any], previous: str | None, keys: set[str], where: str) -> MessageRecord:
    sender = fields.text(entry, "sender", where)
    if sender not in ROLES:
        raise fields.bad(f"{where}: sender", f"{sender!r} is neither 'human' nor 'assistant'")
    parent: str | None = previous
    if "parent_message_uuid" in entry:
        named = entry["parent_message_uuid"]
        parent = named if isinstance(named, str) and named in keys and named != ROOT else None
    record = MessageRecord(
        key=str(entry["uuid"]),
        parent=parent,
        role=ROLES[sender],
        created_at=timestamp(entry.get("created_at"), f"{where}: created_at"),
    )
    blocks = fields.items(entry.get("content") or [], f"{where}: content")
    texts, thoughts = _blocks(blocks, record, f"{where}: content")
    record.content = "\n\n".join(texts) if texts else fields.text(entry, "text", where)
    record.reasoning = "\n\n".join(thoughts)
    files = [
        f.get("file_name")
        for f in [*(entry.get("attachments") or []), *(entry.get("files") or [])]
        if isinstance(f, dict)
    ]
    if names := [str(n) for n in files if n]:
        record.notes = ("Files not imported: " + ", ".join(names))[:300]
    return record


def _blocks(blocks: list[Any], record: MessageRecord, where: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    thoughts: list[str] = []
    for k, block in enumerate(blocks):
        block = fields.obj(block, f"{where}[{k}]")
        kind = block.get("type")
        if kind == "text":
            texts.append(fields.text(block, "text", f"{where}[{k}]"))
        elif kind == "thinking":
            thoughts.append(fields.text(block, "thinking", f"{where}[{k}]"))
        elif kind == "tool_use":
            record.tool_calls.append(
                {
                    "call_id": fields.text(block, "id", f"{where}[{k}]") or f"call_{len(record.tool_calls)}",
                    "name": fields.text(block, "name", f"{where}[{k}]") or "tool",
                    "arguments": block.get("input") if isinstance(block.get("input"), dict) else {},
                    "status": "complete",
                }
            )
        elif kind == "tool_result" and record.tool_calls:
            call = record.tool_calls[-1]
            call["result"] = _result_text(block.get("content"))
            call["is_error"] = bool(block.get("is_error"))
            if call["is_error"]:
                call["status"] = "error"
    return [t for t in texts if t.strip()], [t for t in thoughts if t.strip()]


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return "" if content is None else json.dumps(content, ensure_ascii=False)
