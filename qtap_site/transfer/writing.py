"""Saving read records as a user's chats, all of them or none: the caller holds one transaction for the
whole file. A conversation already imported by this user (the same source and id, ``ImportedChat``) is
skipped, so importing a file twice adds nothing the second time.

Rows are written in bulk: each chat's messages in one ``bulk_create`` (in the order ``insertion_order``
gave, parents first), then one update a batch (``treesql``) for what only exists once the rows do
(parent ids) or what ``auto_now_add`` overwrote (the original times). An attachment is linked when the user already
has its bytes (the same sha256) or the file brings them (a qtap archive exported with its attachments);
otherwise the message's notes name it.

May import: ``models``, ``records``, ``treesql``, ``qtap_site.chat.models``, ``qtap_site.chat.attachments``,
``providers.models``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.db.models import CharField
from django.utils import timezone

from providers.models import ConnectionProfile
from qtap_site.chat.attachments import AttachmentError, attachment_create
from qtap_site.chat.models import Attachment, Chat, Message, ToolCall
from qtap_site.transfer import treesql
from qtap_site.transfer.models import ImportedChat
from qtap_site.transfer.records import ConversationRecord, ImportProblem, MessageRecord, Tick, no_tick

BATCH = 1000
CLIPPED = {f.name: f.max_length for f in Message._meta.get_fields() if isinstance(f, CharField) and f.max_length}
TITLE_LENGTH = Chat._meta.get_field("title").max_length or 200


@dataclass
class Saved:
    chats: list[int] = field(default_factory=list)
    skipped: int = 0
    messages: int = 0


def save_conversations(
    *, user: Any, records: Iterable[ConversationRecord], tick: Tick = no_tick, stored: list[str] | None = None
) -> Saved:
    """Save ``records`` as ``user``'s chats (the caller opens the transaction), calling ``tick(done,
    total)`` before each one. A conversation that cannot be saved raises ``ImportProblem`` naming it;
    the caller's transaction then leaves nothing of the file behind. The names of attachment files
    written go to ``stored``, for the caller to remove if the transaction is rolled back."""
    stored = [] if stored is None else stored
    records = list(records)
    sources = {r.source for r in records}
    seen = set(
        ImportedChat.objects.filter(user=user, source__in=sources).values_list("source", "external_id").order_by()
    )
    profiles = {p.name: p for p in ConnectionProfile.objects.filter(user=user).order_by("-pk")}
    wanted = {a["sha256"] for r in records for m in r.messages for a in m.attachments}
    have = {a.sha256: a for a in Attachment.objects.filter(owner=user, sha256__in=wanted)} if wanted else {}
    _store_missing(user, records, have, stored)
    saved = Saved()
    identities: list[ImportedChat] = []
    for index, record in enumerate(records):
        tick(index, len(records))
        identity = (record.source, record.external_id[:200])
        if identity in seen:
            saved.skipped += 1
            continue
        seen.add(identity)
        try:
            chat = _chat(user, record, profiles.get(record.profile_name) if record.profile_name else None)
            saved.messages += _messages(chat, record.messages, have)
        except IntegrityError:
            raise  # another import of the same file won the race: ``importing`` says so
        except DatabaseError as exc:
            raise ImportProblem(
                "save_failed",
                f"conversation {index + 1} of {len(records)} ({record.title[:80]!r}, id {record.external_id[:80]}) "
                f"could not be saved ({type(exc).__name__}: {str(exc)[:200]})",
            ) from exc
        saved.chats.append(chat.pk)
        identities.append(ImportedChat(user=user, source=identity[0], external_id=identity[1], chat=chat))
    ImportedChat.objects.bulk_create(identities, batch_size=BATCH)
    return saved


def _store_missing(
    user: Any, records: list[ConversationRecord], have: dict[str, Attachment], stored: list[str]
) -> None:
    """Store the attachments whose bytes the file holds and ``user`` lacks, through the same checks as an
    upload (size limit, type sniffed from the bytes, images decoded)."""
    for record in records:
        for message in record.messages:
            for attachment in message.attachments:
                data = attachment.pop("data", None)
                if data is None or attachment["sha256"] in have:
                    continue
                try:
                    made = attachment_create(owner=user, filename=attachment["filename"], data=data)
                except AttachmentError as exc:
                    raise ImportProblem(
                        "bad_attachment",
                        f"attachment {attachment['filename']!r} (sha256 {attachment['sha256'][:12]}…) of "
                        f"conversation {record.title[:80]!r}: {exc}",
                    ) from None
                stored.append(made.file.name)
                have[made.sha256] = made


def _chat(user: Any, record: ConversationRecord, profile: ConnectionProfile | None) -> Chat:
    title = record.title.strip()[:TITLE_LENGTH]
    chat = Chat.objects.create(user=user, title=title, system_prompt=record.system_prompt, profile=profile)
    created = record.created_at or chat.created_at
    times = [m.created_at for m in record.messages if m.created_at is not None]
    # The chat list sorts by last activity: an imported chat takes its place by its own history.
    updated = max([created, *times])
    Chat.objects.filter(pk=chat.pk).update(created_at=created, updated_at=updated)
    return chat


def _messages(chat: Chat, records: list[MessageRecord], have: dict[str, Attachment]) -> int:
    now = timezone.now()
    rows = [_row(chat, r, have) for r in records]
    Message.objects.bulk_create(rows, batch_size=BATCH)
    by_key = {r.key: row for r, row in zip(records, rows, strict=True)}
    for record, row in zip(records, rows, strict=True):
        row.parent = by_key[record.parent] if record.parent is not None else None
        row.created_at = row.updated_at = record.created_at or now
    treesql.set_parents_and_times(rows)
    links = [
        Message.attachments.through(message_id=row.pk, attachment_id=have[a["sha256"]].pk)
        for record, row in zip(records, rows, strict=True)
        for a in record.attachments
        if a["sha256"] in have
    ]
    Message.attachments.through.objects.bulk_create(links, batch_size=BATCH, ignore_conflicts=True)
    calls = [
        ToolCall(message=row, **{"round": 0, "call_id": f"call_{k}", **call})
        for record, row in zip(records, rows, strict=True)
        for k, call in enumerate(record.tool_calls)
    ]
    ToolCall.objects.bulk_create(calls, batch_size=BATCH)
    return len(rows)


def _row(chat: Chat, record: MessageRecord, have: dict[str, Attachment]) -> Message:
    notes = record.notes
    if missing := [a for a in record.attachments if a["sha256"] not in have]:
        names = ", ".join(f"{a['filename']} ({a['mime_type']}, {a['size']} bytes)" for a in missing)
        notes = f"{notes} Attachments not imported (no bytes in the file): {names}".strip()
    values = {
        name: getattr(record, name)
        for name in (
            "role", "content", "reasoning", "status", "plugin", "model", "input_tokens", "output_tokens",
            "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "finish_reason",
            "error_code", "error_message", "ttft_ms", "tool_rounds",
        )
    }  # fmt: skip
    values["notes"] = notes
    for name, length in CLIPPED.items():
        if isinstance(values.get(name), str):
            values[name] = values[name][:length]
    return Message(chat=chat, **values)
