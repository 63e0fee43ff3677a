"""The SQLite engine: two FTS5 tables with external content, kept in step by triggers.

``search_message_fts`` indexes ``chat_message.content`` and ``search_chat_fts`` indexes ``chat_chat.title``.
Both are *external-content* tables (``content='chat_message'``, ``content_rowid='id'``): the index holds
only tokens, the text stays in the chat tables once, and ``snippet()`` / ``highlight()`` read it from
there. (A contentless table could not draw snippets at all; a regular one would store every message twice.)
The price of external content is that the index must be told the *old* text of a row it forgets, which
is what the update and delete triggers do; rows written with the triggers absent (a migration that
remakes ``chat_message`` drops its triggers with the old table) leave the index stale until
``rebuild_search_index`` reinstalls the triggers and runs FTS5's ``'rebuild'``.

Tokenizer: ``porter unicode61 remove_diacritics 2`` — English stemming ("deploys" finds "deployed") and
accent-folding, close to PostgreSQL's ``english`` configuration.

Order: newest first (``created_at``, then id). How the newest matches are found depends on how many there
are, which a bounded probe of the index tells (``FEW`` rows read at most): up to ``FEW`` matches are
joined to their messages and sorted; for more, the user's messages are walked newest first along
``search_message_newest`` and each is looked up in the set of matches, so a word in nearly every message
stops after about a page of rows instead of sorting tens of thousands (bench/results/search.notes.md).
Snippets are drawn in a second query for the rows shown only: SQLite would otherwise draw one for every
match before the limit.

May import: ``schema``, ``query``; and the chat app's ``models``.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from qtap_site.chat.models import Chat, Message
from qtap_site.search.query import MARK_CLOSE, MARK_OPEN, ParsedQuery, SearchResult, newest, snippet_html
from qtap_site.search.schema import CREATE, NEWEST_CREATE, NEWEST_INDEX

SNIPPET_TOKENS = 24
FEW = 1000  # matches up to which sorting them all beats walking the messages (measured: ~1 ms either way)

_COUNT_UP_TO = """
    SELECT count(*) FROM (SELECT rowid FROM search_message_fts WHERE search_message_fts MATCH %s LIMIT %s)
"""
_NEWEST_OF_FEW = """
    SELECT chat_message.id
    FROM search_message_fts
    JOIN chat_message ON chat_message.id = search_message_fts.rowid
    JOIN chat_chat ON chat_chat.id = chat_message.chat_id
    WHERE search_message_fts MATCH %s AND chat_chat.user_id = %s
    ORDER BY chat_message.created_at DESC, chat_message.id DESC
    LIMIT %s
"""
# The IN list is read once into a temporary index; the walk stops at the limit. Without ``INDEXED BY``
# SQLite drives from the IN list and sorts every match, the very cost this query avoids.
_NEWEST_OF_MANY = f"""
    SELECT chat_message.id
    FROM chat_message INDEXED BY {NEWEST_INDEX}
    JOIN chat_chat ON chat_chat.id = chat_message.chat_id
    WHERE chat_chat.user_id = %s
      AND chat_message.id IN (SELECT rowid FROM search_message_fts WHERE search_message_fts MATCH %s)
    ORDER BY chat_message.created_at DESC, chat_message.id DESC
    LIMIT %s
"""  # noqa: S608 -- the index name is ours
_NEWEST_CHATS = """
    SELECT chat_chat.id
    FROM search_chat_fts
    JOIN chat_chat ON chat_chat.id = search_chat_fts.rowid
    WHERE search_chat_fts MATCH %s AND chat_chat.user_id = %s
    ORDER BY chat_chat.updated_at DESC, chat_chat.id DESC
    LIMIT %s
"""


def _snippets(table: str, function: str, match: str, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT rowid, {function} FROM {table} WHERE {table} MATCH %s AND rowid IN ({placeholders})",  # noqa: S608 -- table, function and placeholders are ours
            [match, *ids],
        )
        return dict(cursor.fetchall())


def _ids(sql: str, params: list[Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row_id for (row_id,) in cursor.fetchall()]


def newest_message_ids(match: str, user_id: int, limit: int) -> list[int]:
    """The ids of the user's newest ``limit`` messages matching ``match``, newest first."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_UP_TO, [match, FEW + 1])
        (matches,) = cursor.fetchone()
        # ``INDEXED BY`` fails outright without the index (a chat migration that remade the table): sort then.
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = %s", [NEWEST_INDEX])
        (walkable,) = cursor.fetchone()
    if matches <= FEW or not walkable:
        return _ids(_NEWEST_OF_FEW, [match, user_id, limit])
    return _ids(_NEWEST_OF_MANY, [user_id, match, limit])


def search(*, user: Any, query: ParsedQuery, limit: int) -> list[SearchResult]:
    match = query.fts5()
    message_ids = newest_message_ids(match, user.pk, limit)
    chat_ids = _ids(_NEWEST_CHATS, [match, user.pk, limit])
    message_snippets = _snippets(
        "search_message_fts",
        f"snippet(search_message_fts, 0, '{MARK_OPEN}', '{MARK_CLOSE}', '…', {SNIPPET_TOKENS})",
        match,
        message_ids,
    )
    title_snippets = _snippets(
        "search_chat_fts", f"highlight(search_chat_fts, 0, '{MARK_OPEN}', '{MARK_CLOSE}')", match, chat_ids
    )
    results = [
        SearchResult(
            chat_id=row["chat_id"],
            message_id=row["id"],
            title=row["chat__title"],
            snippet=snippet_html(message_snippets.get(row["id"], "")),
            when=row["created_at"],
            role=row["role"],
        )
        # Scoped again through the chat's owner: the ids came from raw SQL.
        for row in Message.objects.filter(id__in=message_ids, chat__user=user).values(
            "id", "chat_id", "chat__title", "created_at", "role"
        )
    ]
    results += [
        SearchResult(
            chat_id=row["id"],
            message_id=None,
            title=row["title"],
            snippet=snippet_html(title_snippets.get(row["id"], "")),
            when=row["updated_at"],
            role="title",
        )
        for row in Chat.objects.filter(id__in=chat_ids, user=user).values("id", "title", "updated_at")
    ]
    return newest(results, limit)


def rebuild() -> dict[str, int]:
    """Reinstall whatever is missing of the schema, then re-read every row into both indexes."""
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in [*CREATE, *NEWEST_CREATE]:
            cursor.execute(statement)
        counts = {}
        for table, key in (("search_message_fts", "messages"), ("search_chat_fts", "chats")):
            cursor.execute(f"SELECT count(*) FROM {table}_docsize")  # noqa: S608 -- our own table names
            counts[key] = cursor.fetchone()[0]
    return counts
