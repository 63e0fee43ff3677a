"""The qtap archive format, stated once: a chat and its messages as the JSON records an archive holds.

An archive is ``{"format": "qtap-archive", "version": 1, "exported_at": …, "chats": [chat, …]}``. A chat
record holds its ``id`` (in the archive), title, system_prompt, created_at, ``profile`` (the connection
profile's name, not its id: ids mean nothing in another account) and its ``messages``; a message record
holds its ``id`` and ``parent`` (ids in the archive: the tree), every field a reader needs to see the
same chat (role, texts, status, plugin, model, token counts, cost as a decimal string, finish reason,
error, timings, notes, created_at), its attachments' metadata and its tool calls. An attachment's bytes
(``data``, base64) come with the first message of the archive that names the file, unless the export was
asked for metadata only (``?attachments=metadata``); a later mention names its ``sha256`` only.

Left out on purpose: ``provider_state`` and the state inside ``tool_rounds`` (opaque provider data, which
may be signed or encrypted for this account), client ids, checkpoint bookkeeping, and anything of another
user (every query that feeds this is scoped to one user).

May import: ``qtap_site.chat.models``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qtap_site.chat.models import Chat

FORMAT = "qtap-archive"
VERSION = 1

# Plain message fields copied as they are, both ways.
MESSAGE_TEXT_FIELDS: tuple[str, ...] = (
    *("role", "content", "reasoning", "status", "plugin", "model"),
    *("finish_reason", "error_code", "error_message", "notes"),
)
MESSAGE_INT_FIELDS: tuple[str, ...] = (
    *("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"),
    *("reasoning_tokens", "ttft_ms"),
)
TOOL_CALL_FIELDS: tuple[str, ...] = (
    *("round", "call_id", "name", "plugin", "arguments", "invalid_arguments", "result"),
    *("is_error", "status", "needs_approval", "duration_ms"),
)
ATTACHMENT_FIELDS: tuple[str, ...] = ("filename", "mime_type", "size", "sha256")


def header(exported_at: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "exported_at": exported_at}


def chat_record(chat: Chat, profile_name: str) -> dict[str, Any]:
    """The chat's own fields, without its messages."""
    return {
        "id": chat.pk,
        "title": chat.title,
        "system_prompt": chat.system_prompt,
        "created_at": chat.created_at.isoformat(),
        "profile": profile_name,
    }


# What an export reads of a message row (``.values()``: model instances cost more than the JSON).
MESSAGE_VALUES: tuple[str, ...] = (
    *("id", "chat_id", "parent_id", *MESSAGE_TEXT_FIELDS, *MESSAGE_INT_FIELDS),
    *("cost", "created_at", "tool_rounds"),
)


def message_record(
    row: dict[str, Any], attachments: Iterable[dict[str, Any]], tool_calls: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """A message row (``MESSAGE_VALUES``) with its attachments (``ATTACHMENT_FIELDS``) and tool calls
    (``TOOL_CALL_FIELDS``) as dicts."""
    record: dict[str, Any] = {"id": row["id"], "parent": row["parent_id"]}
    record.update({name: row[name] for name in MESSAGE_TEXT_FIELDS})
    record.update({name: row[name] for name in MESSAGE_INT_FIELDS})
    record["cost"] = None if row["cost"] is None else str(row["cost"])
    record["created_at"] = row["created_at"].isoformat()
    # ``data``: the file's bytes (base64), on the first record of the archive that names the file.
    record["attachments"] = [{name: a[name] for name in (*ATTACHMENT_FIELDS, "data") if name in a} for a in attachments]
    record["tool_calls"] = [{name: c[name] for name in TOOL_CALL_FIELDS} for c in tool_calls]
    if row["tool_rounds"]:
        # Where each tool-calling turn's text ends; the turn's provider state stays behind.
        record["tool_rounds"] = [{"offset": int(turn.get("offset", 0))} for turn in row["tool_rounds"]]
    return record
