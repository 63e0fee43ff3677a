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

Ranking: bm25 (negated, so higher is better), ties newest first. Ranking and snippets are two queries:
SQLite would otherwise draw a snippet for every match before sorting, not just for the ``limit`` kept.

May import: ``schema``, ``query``; and the chat app's ``models``.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from qtap_site.chat.models import Chat, Message
from qtap_site.search.query import MARK_CLOSE, MARK_OPEN, ParsedQuery, SearchResult, ranked, snippet_html
from qtap_site.search.schema import CREATE

SNIPPET_TOKENS = 24

_RANK_MESSAGES = """
    SELECT search_message_fts.rowid, bm25(search_message_fts)
    FROM search_message_fts
    JOIN chat_message ON chat_message.id = search_message_fts.rowid
    JOIN chat_chat ON chat_chat.id = chat_message.chat_id
    WHERE search_message_fts MATCH %s AND chat_chat.user_id = %s
    ORDER BY 2, chat_message.created_at DESC, chat_message.id DESC
    LIMIT %s
"""
_RANK_CHATS = """
    SELECT search_chat_fts.rowid, bm25(search_chat_fts)
    FROM search_chat_fts
    JOIN chat_chat ON chat_chat.id = search_chat_fts.rowid
    WHERE search_chat_fts MATCH %s AND chat_chat.user_id = %s
    ORDER BY 2, chat_chat.updated_at DESC, chat_chat.id DESC
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


def _ranked_ids(sql: str, match: str, user_id: int, limit: int) -> dict[int, float]:
    with connection.cursor() as cursor:
        cursor.execute(sql, [match, user_id, limit])
        return {row_id: -score for row_id, score in cursor.fetchall()}


def search(*, user: Any, query: ParsedQuery, limit: int) -> list[SearchResult]:
    match = query.fts5()
    message_scores = _ranked_ids(_RANK_MESSAGES, match, user.pk, limit)
    chat_scores = _ranked_ids(_RANK_CHATS, match, user.pk, limit)
    message_snippets = _snippets(
        "search_message_fts",
        f"snippet(search_message_fts, 0, '{MARK_OPEN}', '{MARK_CLOSE}', '…', {SNIPPET_TOKENS})",
        match,
        list(message_scores),
    )
    title_snippets = _snippets(
        "search_chat_fts", f"highlight(search_chat_fts, 0, '{MARK_OPEN}', '{MARK_CLOSE}')", match, list(chat_scores)
    )
    results = [
        SearchResult(
            chat_id=row["chat_id"],
            message_id=row["id"],
            title=row["chat__title"],
            snippet=snippet_html(message_snippets.get(row["id"], "")),
            when=row["created_at"],
            role=row["role"],
            relevance=message_scores[row["id"]],
        )
        # Scoped again through the chat's owner: the ids came from raw SQL.
        for row in Message.objects.filter(id__in=message_scores, chat__user=user).values(
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
            relevance=chat_scores[row["id"]],
        )
        for row in Chat.objects.filter(id__in=chat_scores, user=user).values("id", "title", "updated_at")
    ]
    return ranked(results, limit)


def rebuild() -> dict[str, int]:
    """Reinstall whatever is missing of the schema, then re-read every row into both indexes."""
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in CREATE:
            cursor.execute(statement)
        counts = {}
        for table, key in (("search_message_fts", "messages"), ("search_chat_fts", "chats")):
            cursor.execute(f"SELECT count(*) FROM {table}_docsize")  # noqa: S608 -- our own table names
            counts[key] = cursor.fetchone()[0]
    return counts
