"""One import: an uploaded file read (``reading``), recognised (a qtap archive, a ChatGPT or a Claude
export), read into records in full — so a bad conversation anywhere refuses the file before a row is
written — then planned (``writing.plan``: every read, every row built) and saved in one transaction
(``writing.write``): all of the file or none of it. The transaction holds only the inserts: on SQLite it
is the database's one write lock, which every other user's write waits for while it is open.

May import: ``archive``, ``chatgpt``, ``claude``, ``reading``, ``records``, ``writing``,
``qtap_site.chat.models``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from qtap_site.chat.models import Attachment
from qtap_site.transfer import archive, chatgpt, claude, reading, writing
from qtap_site.transfer.records import ConversationRecord, ImportProblem, Tick, no_tick

SOURCES = {"qtap": "qtap archive", "chatgpt": "ChatGPT export", "claude": "Claude export"}

# ``report(stage, done, total)``: see ``import_file``.
Report = Callable[[str, int, int | None], None]


def _unwatched(stage: str, done: int, total: int | None) -> None:
    """The ``Report`` of an import nobody watches."""


@dataclass(frozen=True)
class ImportResult:
    source: str  # "qtap", "chatgpt" or "claude"
    imported: int
    skipped: int
    messages: int
    chats: list[int]


def import_file(*, user: Any, upload: Any, report: Report = _unwatched) -> ImportResult:
    """Import ``upload`` for ``user``; a file that cannot be imported raises ``ImportProblem``.

    ``report(stage, done, total)`` is told how far it has got: ``reading`` (the file read and parsed),
    ``parsing`` (conversations read into records), ``saving`` (rows built, then chats written inside the
    transaction, ``done`` of ``total`` a step of ``writing.CHATS_PER_WRITE`` at a time).
    """
    report("reading", 0, None)
    name, data = reading.read_upload(upload)
    source, records = recognise(name, data, tick=lambda done, total: report("parsing", done, total))
    report("parsing", len(records), len(records))
    report("saving", 0, len(records))
    planned = writing.plan(user=user, records=records)
    del records  # their messages are the plan's rows now
    stored: list[str] = []
    try:
        with transaction.atomic():
            saved = writing.write(
                user=user, plan=planned, tick=lambda done, total: report("saving", done, total), stored=stored
            )
    except IntegrityError:
        _remove(stored)
        # Another import of the same file finished first; this one is rolled back whole.
        raise ImportProblem("conflict", f"{name}: being imported by another request; try again") from None
    except BaseException:
        _remove(stored)  # the rows that named them were rolled back
        raise
    return ImportResult(
        source=source, imported=len(saved.chats), skipped=saved.skipped, messages=saved.messages, chats=saved.chats
    )


def _remove(names: list[str]) -> None:
    storage = Attachment._meta.get_field("file").storage
    for name in names:
        storage.delete(name)


def recognise(name: str, data: Any, tick: Tick = no_tick) -> tuple[str, list[ConversationRecord]]:
    """(source, records) of a parsed file, or ``ImportProblem`` saying what the file looks like instead."""
    if archive.is_archive(data):
        return "qtap", archive.conversations(name, data, tick)
    if isinstance(data, list):
        if not data:
            return "chatgpt", []  # both exports write an empty list for an account with no chats
        if chatgpt.is_export(data):
            return "chatgpt", chatgpt.conversations(name, data, tick)
        if claude.is_export(data):
            return "claude", claude.conversations(name, data, tick)
        raise ImportProblem(
            "unknown_format",
            f"{name}: item 0 is neither a ChatGPT conversation (no 'mapping') nor a Claude one (no 'chat_messages')",
        )
    if isinstance(data, dict) and "format" in data:
        raise ImportProblem("unknown_format", f"{name}: format {data['format']!r} is not 'qtap-archive'")
    raise ImportProblem(
        "unknown_format",
        f'{name}: not a qtap archive (no "format": "qtap-archive"), nor a list of ChatGPT or Claude conversations',
    )
