"""Saving read records as a user's chats, all of them or none, in two steps so the write transaction is
short: ``plan`` does every read (which conversations this user already imported, profiles, attachments
they have) and builds every row, outside any transaction; ``write`` inserts them, inside the caller's one
transaction for the whole file. On SQLite that transaction holds the database's only write lock, which
every other user's send or rename waits for: nothing but inserts belongs in it.

A conversation already imported by this user (the same source and id, ``ImportedChat``) is skipped, so
importing a file twice adds nothing the second time; two imports racing for the same conversation meet
at that table's unique constraint (``IntegrityError``, which ``importing`` reports).

Rows are built as database values while planning (``bulk_rows.prepare``: the per-field work that made
``bulk_create`` slow) and written ``CHATS_PER_WRITE`` chats at a time (one progress report each): the
chats by ``INSERT … RETURNING`` (up to 500 rows a statement), then their messages (in the order
``insertion_order`` gave, parents first, the chat ids filled in), then one update a batch for the
parent ids, which only exist once the rows do (``treesql``), then attachment links, tool calls and the
``ImportedChat`` rows. The original times are in the rows as inserted. The search index follows the
inserts by itself (FTS5 triggers on SQLite, a generated column on PostgreSQL). An attachment is linked
when the user already has its bytes (the same sha256) or the file brings them (a qtap archive exported
with its attachments); otherwise the message's notes name it.

May import: ``models``, ``records``, ``treesql``, ``qtap_site.bulk_rows``, ``qtap_site.chat.models``,
``qtap_site.chat.attachments``, ``providers.models``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.db.models import CharField
from django.utils import timezone

from providers.models import ConnectionProfile
from qtap_site import bulk_rows
from qtap_site.chat.attachments import AttachmentError, attachment_create
from qtap_site.chat.models import Attachment, Chat, Message, ToolCall
from qtap_site.transfer import treesql
from qtap_site.transfer.models import ImportedChat
from qtap_site.transfer.records import ConversationRecord, ImportProblem, MessageRecord, Tick, no_tick

BATCH = 1000  # attachment links per INSERT
# Chats per write step: big enough that a step's statements are few and large, small enough that the
# progress bar moves (a 27,000-chat export reports 54 times) and a step's rows are few in memory at once.
CHATS_PER_WRITE = 500
CLIPPED = {f.name: f.max_length for f in Message._meta.get_fields() if isinstance(f, CharField) and f.max_length}
TITLE_LENGTH = Chat._meta.get_field("title").max_length or 200
FIELDS = (
    "role", "content", "reasoning", "status", "plugin", "model", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "finish_reason",
    "error_code", "error_message", "ttft_ms", "tool_rounds",
)  # fmt: skip


@dataclass
class Saved:
    chats: list[int] = field(default_factory=list)
    skipped: int = 0
    messages: int = 0


@dataclass
class PlannedChat:
    """One conversation's rows as database values (``qtap_site.bulk_rows``), not yet inserted; the chat's id, the
    messages' ids and parents, which only the transaction makes, go in by index."""

    position: int  # in the file, from 0: for progress and for saying which conversation failed
    title: str
    external_id: str
    source: str
    profile_id: int | None
    chat: list[Any]
    messages: list[list[Any]]
    parents: list[int | None]
    links: list[tuple[int, str]]  # (message, sha256)
    calls: list[tuple[int, list[Any]]]  # (message, ToolCall row)


@dataclass
class Plan:
    total: int  # conversations in the file, the skipped ones included
    chats: list[PlannedChat]
    skipped: int
    to_store: list[tuple[ConversationRecord, dict[str, Any]]]  # attachments the file brings and the user lacks
    have: dict[str, Attachment]


def plan(*, user: Any, records: Iterable[ConversationRecord]) -> Plan:
    """Everything ``write`` inserts for ``records``, read and built without a transaction. The records'
    messages are consumed (each conversation's list is emptied once its rows are built), so the file is
    not held twice in memory."""
    records = list(records)
    sources = {r.source for r in records}
    seen = set(
        ImportedChat.objects.filter(user=user, source__in=sources).values_list("source", "external_id").order_by()
    )
    profiles = {p.name: p for p in ConnectionProfile.objects.filter(user=user).order_by("-pk")}
    wanted = {a["sha256"] for r in records for m in r.messages for a in m.attachments}
    have = {a.sha256: a for a in Attachment.objects.filter(owner=user, sha256__in=wanted)} if wanted else {}
    to_store: list[tuple[ConversationRecord, dict[str, Any]]] = []
    brought: set[str] = set()
    for record in records:
        for message in record.messages:
            for attachment in message.attachments:
                if attachment.get("data") is not None and attachment["sha256"] not in have:
                    if attachment["sha256"] not in brought:
                        to_store.append((record, attachment))
                    brought.add(attachment["sha256"])
    linkable = set(have) | brought
    planned: list[PlannedChat] = []
    skipped = 0
    now = timezone.now()
    for position, record in enumerate(records):
        identity = (record.source, record.external_id[:200])
        if identity in seen:
            skipped += 1
            continue
        seen.add(identity)
        profile = profiles.get(record.profile_name) if record.profile_name else None
        planned.append(_planned(position, user, record, profile, linkable, now))
        record.messages = []
    return Plan(total=len(records), chats=planned, skipped=skipped, to_store=to_store, have=have)


def write(*, user: Any, plan: Plan, tick: Tick = no_tick, stored: list[str] | None = None) -> Saved:
    """Insert ``plan`` (the caller holds the transaction), calling ``tick(done, total)`` once before and
    after each step of ``CHATS_PER_WRITE`` chats. A step that cannot be saved raises ``ImportProblem``
    naming its conversations; the caller's transaction then leaves nothing of the file behind. The names
    of attachment files written go to ``stored``, for the caller to remove if it is rolled back."""
    stored = [] if stored is None else stored
    tick(0, plan.total)
    _drop_vanished(plan)
    have = dict(plan.have)
    _store_missing(user, plan.to_store, have, stored)
    saved = Saved(skipped=plan.skipped)
    for start in range(0, len(plan.chats), CHATS_PER_WRITE):
        step = plan.chats[start : start + CHATS_PER_WRITE]
        try:
            chat_ids, messages = _write_step(user, step, have)
        except IntegrityError:
            raise  # another import of the same file won the race: ``importing`` says so
        except DatabaseError as exc:
            raise ImportProblem("save_failed", f"{_which(step, plan.total)} could not be saved "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from exc  # fmt: skip
        saved.chats += chat_ids
        saved.messages += messages
        tick(step[-1].position + 1, plan.total)
    return saved


def _drop_vanished(plan: Plan) -> None:
    """Forget the profiles and attachments deleted since ``plan`` read them (two indexed reads), so that
    a chat or link naming one is not refused by its foreign key, mistaken for a racing import."""
    profiles = {p.profile_id for p in plan.chats} - {None}
    if profiles:
        live = set(ConnectionProfile.objects.filter(pk__in=profiles).values_list("pk", flat=True))
        for p in plan.chats:
            if p.profile_id not in live:
                p.profile_id = None
    if plan.have:
        kept = set(Attachment.objects.filter(pk__in=[a.pk for a in plan.have.values()]).values_list("pk", flat=True))
        plan.have = {sha: a for sha, a in plan.have.items() if a.pk in kept}


def _which(step: list[PlannedChat], total: int) -> str:
    first, last = step[0], step[-1]
    if first is last:
        return f"conversation {first.position + 1} of {total} ({first.title[:80]!r}, id {first.external_id[:80]})"
    return (
        f"one of conversations {first.position + 1} to {last.position + 1} of {total} "
        f"(from {first.title[:80]!r}, id {first.external_id[:80]})"
    )


def _store_missing(
    user: Any, to_store: list[tuple[ConversationRecord, dict[str, Any]]], have: dict[str, Attachment], stored: list[str]
) -> None:
    """Store the attachments whose bytes the file holds and ``user`` lacks, through the same checks as an
    upload (size limit, type sniffed from the bytes, images decoded). Inside the transaction: the rows
    must go with the import if it is rolled back."""
    for record, attachment in to_store:
        data = attachment.pop("data")
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


def _planned(
    position: int,
    user: Any,
    record: ConversationRecord,
    profile: ConnectionProfile | None,
    linkable: set[str],
    now: datetime,
) -> PlannedChat:
    title = record.title.strip()[:TITLE_LENGTH]
    chat = Chat(user=user, title=title, system_prompt=record.system_prompt, profile=profile)
    chat.created_at = record.created_at or now
    # The chat list sorts by last activity: an imported chat takes its place by its own history.
    chat.updated_at = max([chat.created_at, *(m.created_at for m in record.messages if m.created_at is not None)])
    index = {m.key: i for i, m in enumerate(record.messages)}
    calls = [
        (i, ToolCall(**{"round": 0, "call_id": f"call_{k}", **call}))
        for i, m in enumerate(record.messages)
        for k, call in enumerate(m.tool_calls)
    ]
    call_rows = bulk_rows.prepare(ToolCall, [call for _, call in calls]).values
    return PlannedChat(
        position=position,
        title=record.title,
        external_id=record.external_id[:200],
        source=record.source,
        profile_id=profile.pk if profile else None,
        chat=bulk_rows.prepare(Chat, [chat]).values[0],
        messages=bulk_rows.prepare(Message, [_row(m, linkable, now) for m in record.messages]).values,
        parents=[index[m.parent] if m.parent is not None else None for m in record.messages],
        links=[
            (i, a["sha256"]) for i, m in enumerate(record.messages) for a in m.attachments if a["sha256"] in linkable
        ],
        calls=[(i, row) for (i, _), row in zip(calls, call_rows, strict=True)],
    )


def _write_step(user: Any, step: list[PlannedChat], have: dict[str, Attachment]) -> tuple[list[int], int]:
    """Insert one step's chats and everything under them; the chats' ids and the number of messages."""
    chats = bulk_rows.Rows(Chat, CHAT_COLUMNS, [p.chat for p in step])
    chats.fill("profile", [p.profile_id for p in step])
    chat_ids = bulk_rows.insert_rows(chats)
    messages = bulk_rows.Rows(Message, MESSAGE_COLUMNS, [row for p in step for row in p.messages])
    messages.fill("chat", [pk for p, pk in zip(step, chat_ids, strict=True) for _ in p.messages])
    flat = bulk_rows.insert_rows(messages)
    ids: list[list[int]] = []
    for p in step:
        ids.append(flat[: len(p.messages)])
        flat = flat[len(p.messages) :]
    treesql.set_parents(
        [
            (own[i], own[parent])
            for p, own in zip(step, ids, strict=True)
            for i, parent in enumerate(p.parents)
            if parent is not None
        ]
    )
    links = [
        Message.attachments.through(message_id=own[i], attachment_id=have[sha].pk)
        for p, own in zip(step, ids, strict=True)
        for i, sha in p.links
        if sha in have
    ]
    Message.attachments.through.objects.bulk_create(links, batch_size=BATCH, ignore_conflicts=True)
    calls = bulk_rows.Rows(ToolCall, CALL_COLUMNS, [row for p in step for _, row in p.calls])
    calls.fill("message", [own[i] for p, own in zip(step, ids, strict=True) for i, _ in p.calls])
    bulk_rows.insert_rows(calls)
    identities = bulk_rows.prepare(
        ImportedChat, [ImportedChat(user=user, source=p.source, external_id=p.external_id) for p in step]
    )
    identities.fill("chat", chat_ids)
    bulk_rows.insert_rows(identities)
    return chat_ids, len(messages.values)


def _row(record: MessageRecord, linkable: set[str], now: datetime) -> Message:
    notes = record.notes
    if missing := [a for a in record.attachments if a["sha256"] not in linkable]:
        names = ", ".join(f"{a['filename']} ({a['mime_type']}, {a['size']} bytes)" for a in missing)
        notes = f"{notes} Attachments not imported (no bytes in the file): {names}".strip()
    values = {name: getattr(record, name) for name in FIELDS}
    values["notes"] = notes
    for name, length in CLIPPED.items():
        if isinstance(values.get(name), str):
            values[name] = values[name][:length]
    row = Message(**values)
    row.created_at = row.updated_at = record.created_at or now
    return row


def _columns(model: Any) -> list[str]:
    return [f.column for f in model._meta.concrete_fields if not f.primary_key]


CHAT_COLUMNS, MESSAGE_COLUMNS, CALL_COLUMNS = _columns(Chat), _columns(Message), _columns(ToolCall)
