"""Reading ChatGPT's ``conversations.json`` (a list of conversations, each a ``mapping`` of nodes
``{id, parent, children, message}`` and the ``current_node`` it showed last) into records.

The tree is kept: regenerated and edited turns are sibling nodes there and stay siblings here. Nodes
that are not a visible user or assistant turn (the empty root, system and tool turns, hidden context,
calls an assistant addressed to a tool, non-text content such as browsing and code output) are
skipped and their children re-parented to the nearest turn kept. Images in a turn are not imported; the
turn's notes say how many were left out.

May import: ``fields``, ``records``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from qtap_site.transfer import fields
from qtap_site.transfer.records import (
    ConversationRecord,
    MessageRecord,
    Tick,
    insertion_order,
    keep_only,
    nearest_kept,
    no_tick,
    timestamp,
)

ROLES = {"user", "assistant"}
TEXT_TYPES = {"text", "multimodal_text"}


def is_export(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "mapping" in data[0]


def conversations(name: str, data: list[Any], tick: Tick = no_tick) -> list[ConversationRecord]:
    """Every conversation of ``data``, calling ``tick(done, total)`` before each one is read."""
    return fields.each_object(name, data, _conversation, tick)


def _conversation(item: dict[str, Any], where: str) -> ConversationRecord:
    if "mapping" not in item:
        raise fields.bad(where, "no 'mapping' (not a ChatGPT conversation)")
    mapping = fields.obj(item["mapping"], f"{where}: mapping")
    kept: list[MessageRecord] = []
    dropped: dict[str, str | None] = {}
    for node_id, node in mapping.items():
        node_where = f"{where}: mapping node {node_id!r}"
        node = fields.obj(node, node_where)
        if "message" not in node:
            raise fields.bad(where, f"mapping node {node_id!r} has no message")
        parent = node.get("parent")
        parent = None if parent is None else fields.key_of(parent, f"{node_where}: parent")
        record = _turn(node["message"], node_id, parent, node_where)
        if record is None:
            dropped[node_id] = parent
        else:
            kept.append(record)
    current = item.get("current_node")
    current = nearest_kept(current, dropped) if isinstance(current, str) else None
    messages = keep_only(kept, dropped)
    return ConversationRecord(
        source="chatgpt",
        external_id=_identity(item, where),
        title=fields.text(item, "title", where),
        created_at=timestamp(item.get("create_time"), f"{where}: create_time"),
        messages=insertion_order(messages, current, where),
        current=current,
    )


def _identity(item: dict[str, Any], where: str) -> str:
    for key in ("conversation_id", "id"):
        if isinstance(item.get(key), str) and item[key]:
            return str(item[key])
    # Older exports name no id: the title and creation time stand for it.
    seed = f"{item.get('title')!r}|{item.get('create_time')!r}".encode()
    return "sha256:" + hashlib.sha256(seed).hexdigest()[:40]


def _turn(message: Any, node_id: str, parent: str | None, where: str) -> MessageRecord | None:
    """The node's turn as a record, or None when it is not a visible user or assistant turn."""
    if message is None:
        return None
    message = fields.obj(message, f"{where}: message")
    author = fields.obj(message.get("author", {}), f"{where}: message: author")
    role = fields.text(author, "role", f"{where}: message: author")
    metadata = message.get("metadata") if isinstance(message.get("metadata"), dict) else {}
    if role not in ROLES or metadata.get("is_visually_hidden_from_conversation"):
        return None
    if message.get("recipient") not in (None, "all"):
        return None  # an assistant turn addressed to a tool (code, browsing): the call, not a reply
    content = fields.obj(message.get("content", {}), f"{where}: message: content")
    if content.get("content_type") not in TEXT_TYPES:
        return None
    texts: list[str] = []
    images = 0
    for k, part in enumerate(fields.items(content.get("parts", []), f"{where}: message: content: parts")):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            images += 1  # an image or file pointer; the bytes are not in conversations.json
        else:
            raise fields.bad(f"{where}: message: content: parts[{k}]", "expected text or an object")
    text = "\n".join(texts).strip("\n")
    if not text.strip() and not images:
        return None
    model = metadata.get("model_slug")
    return MessageRecord(
        key=node_id,
        parent=parent,
        role=role,
        content=text,
        model=model if isinstance(model, str) and role == "assistant" else "",
        finish_reason=_finish(metadata),
        notes=f"{images} image(s) of the original were not imported." if images else "",
        created_at=timestamp(message.get("create_time"), f"{where}: message: create_time"),
    )


def _finish(metadata: dict[str, Any]) -> str:
    details = metadata.get("finish_details")
    kind = details.get("type") if isinstance(details, dict) else None
    return {"stop": "stop", "max_tokens": "length", "interrupted": "cancelled"}.get(kind, "") if kind else ""
