"""Exports: one chat as a qtap archive (JSON) and every chat of a user as one archive, written as a stream
of chunks so a large account is never held in memory.

Chats and messages are read with ``.iterator()`` in chunks, both ordered by chat, and merged as they
arrive: the memory an export takes is a chunk of rows and one output buffer, whatever the account's size.
Output is gathered into chunks of about ``CHUNK_BYTES``: one write per message would be thousands of tiny
socket writes.

May import: ``serialize``, ``qtap_site.chat.models``.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from qtap_site.chat.models import Attachment, Chat, Message, ToolCall
from qtap_site.transfer import serialize

CHUNK_BYTES = 64 * 1024
ROWS_PER_QUERY = 1000


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def archive_chunks(*, user: Any, chat_id: int | None = None, with_bytes: bool = True) -> Iterator[bytes]:
    """The user's chats (or the one chat ``chat_id``) as a qtap archive, in UTF-8 chunks; with
    ``with_bytes`` each attachment's bytes ride along (base64) the first time the archive names it."""
    chats = Chat.objects.filter(user=user).select_related("profile").order_by("id")
    messages = Message.objects.filter(chat__user=user).order_by("chat_id", "id")
    if chat_id is not None:
        chats, messages = chats.filter(pk=chat_id), messages.filter(chat_id=chat_id)
    head = _dumps(serialize.header(timezone.now().isoformat()))
    buffer: list[str] = [head[:-1], ',"chats":[']
    size = 0
    rows = messages.values(*serialize.MESSAGE_VALUES).iterator(chunk_size=ROWS_PER_QUERY)
    pending = _records(rows, set() if with_bytes else None)
    message = next(pending, None)
    for index, chat in enumerate(chats.iterator(chunk_size=ROWS_PER_QUERY // 10)):
        profile = chat.profile.name if chat.profile is not None and chat.profile.user_id == chat.user_id else ""
        record = _dumps(serialize.chat_record(chat, profile))
        buffer.append(("," if index else "") + record[:-1] + ',"messages":[')
        first = True
        # Messages of chats this loop has passed (made while it ran) are skipped, never misfiled.
        while message is not None and message[0] <= chat.pk:
            if message[0] == chat.pk:
                buffer.append(message[1] if first else "," + message[1])
                size += len(message[1])
                first = False
                if size >= CHUNK_BYTES:
                    yield "".join(buffer).encode()
                    buffer, size = [], 0
            message = next(pending, None)
        buffer.append("]}")
        yield "".join(buffer).encode()
        buffer, size = [], 0
    buffer.append("]}\n")
    yield "".join(buffer).encode()


def _records(rows: Iterator[dict[str, Any]], sent: set[str] | None) -> Iterator[tuple[int, str]]:
    """(chat id, JSON record) per message row, the attachments and tool calls of each batch of rows read
    in one query apiece (prefetching onto model instances cost ten times the JSON itself).

    ``sent``: the checksums whose bytes the archive already holds (None: no bytes at all). A file's bytes
    are read when its message is written, never a batch's worth at once: the memory an export takes
    stays one chunk of rows plus the largest single file (each is under the upload limit)."""
    fields = (*serialize.ATTACHMENT_FIELDS, "file")
    while batch := list(islice(rows, ROWS_PER_QUERY)):
        ids = [row["id"] for row in batch]
        attachments: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        links = Message.attachments.through.objects.filter(message_id__in=ids).order_by("id")
        for link in links.values("message_id", *(f"attachment__{name}" for name in fields)):
            attachments[link["message_id"]].append({name: link[f"attachment__{name}"] for name in fields})
        calls: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
        rows_of_calls = ToolCall.objects.filter(message_id__in=ids).order_by("message_id", "round", "id")
        for call in rows_of_calls.values("message_id", *serialize.TOOL_CALL_FIELDS):
            calls[call["message_id"]].append(call)
        for row in batch:
            # Copies: bytes put on the batch's own dicts would stay in memory until the batch ends.
            files = [dict(a) for a in attachments.pop(row["id"], [])]
            if sent is not None:
                for attachment in files:
                    if attachment["sha256"] not in sent and (data := _bytes_of(attachment["file"])) is not None:
                        sent.add(attachment["sha256"])
                        attachment["data"] = base64.b64encode(data).decode("ascii")
            yield row["chat_id"], _dumps(serialize.message_record(row, files, calls[row["id"]]))


def _bytes_of(name: str) -> bytes | None:
    """A stored attachment's bytes, or None when its file is gone (the record keeps its metadata)."""
    try:
        storage = Attachment._meta.get_field("file").storage
        with storage.open(name, "rb") as handle:
            return bytes(handle.read())
    except OSError:
        return None


async def streamed_async(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The same chunks for an ASGI server, each made in the sync thread as the client reads: Django
    would otherwise read a sync iterator to its end before sending a byte."""
    read = sync_to_async(_next_chunk, thread_sensitive=True)
    while (chunk := await read(chunks)) is not None:
        yield chunk


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)
