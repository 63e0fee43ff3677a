"""The PostgreSQL engine: full-text search over stored tsvector columns, through django.contrib.postgres.

``chat_message`` and ``chat_chat`` each carry a ``search_vector`` column, generated and stored by PostgreSQL
from ``content`` / ``title`` with the ``english`` configuration, and a GIN index on it (``schema.PG_CREATE``,
migration 0002). PostgreSQL computes it in the statement that writes the row, so it is never out of step;
ranking reads it rather than re-parsing each match's text (bench/results/search.notes.md has the numbers).
The chat models do not declare the column, so it is named here as SQL of the query's own table.

Each term becomes a ``phraseto_tsquery`` (the term's text is a parameter, parsed as plain text, never as
tsquery syntax) and the terms are ANDed. The ``english`` configuration stems like FTS5's porter tokenizer;
unlike FTS5 it drops stop words, so a query of stop words alone ("the") finds nothing.

Order: newest first (``created_at``, then id). The planner picks the way from its statistics of the
vector column: a rare word reads its matches from the GIN index and sorts them; a common one walks
``search_message_newest`` backwards, keeping the rows that match, and stops at the limit — with no rank
to compute it never reads every match (bench/results/search.notes.md). Headlines are drawn in a second
query for the ``limit`` rows kept, as ``ts_headline`` re-parses the whole text.

May import: ``schema``, ``query``; and the chat app's ``models``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchVectorField
from django.db import connection
from django.db.models import F, Func, TextField, Value
from django.db.models.expressions import RawSQL
from django.utils.safestring import SafeString

from qtap_site.chat.models import Chat, Message
from qtap_site.search.query import MARK_CLOSE, MARK_OPEN, ParsedQuery, SearchResult, newest, snippet_html
from qtap_site.search.schema import CONFIG, NEWEST_CREATE, NEWEST_INDEX, PG_CREATE, PG_INDEXES, PG_VECTOR

SNIPPET_WORDS = {"max_words": 24, "min_words": 12, "max_fragments": 2, "fragment_delimiter": " … "}

# ts_headline's parser reads ``<script>`` as a tag and ``&amp;`` as an entity and leaves both out of the
# headline; the snippet must show them as the text they are. So the three characters travel through it
# as private-use stand-ins, and come back before the snippet is escaped.
_MARKUP = "<>&"
_STAND_INS = "\ue002\ue003\ue004"
_BACK = str.maketrans(_STAND_INS, _MARKUP)


def _vector(table: str) -> RawSQL:
    # A queryset of Message (or Chat) names its own table by its name: there is no self-join here.
    return RawSQL(f'"{table}"."{PG_VECTOR}"', [], output_field=SearchVectorField())  # noqa: S611 -- our names


def _tsquery(query: ParsedQuery) -> Any:
    combined = None
    for term in query.terms:
        part = SearchQuery(term.text, search_type="phrase", config=CONFIG)
        combined = part if combined is None else combined & part
    return combined


def _headline(field: str, tsquery: Any, **options: Any) -> SearchHeadline:
    text = Func(F(field), Value(_MARKUP), Value(_STAND_INS), function="translate", output_field=TextField())
    return SearchHeadline(text, tsquery, config=CONFIG, start_sel=MARK_OPEN, stop_sel=MARK_CLOSE, **options)


def _snippet(headline: str | None) -> SafeString:
    return snippet_html((headline or "").translate(_BACK))


def search(*, user: Any, query: ParsedQuery, limit: int) -> list[SearchResult]:
    tsquery = _tsquery(query)
    content = _vector("chat_message")
    messages = list(
        Message.objects.filter(chat__user=user)
        .annotate(document=content)
        .filter(document=tsquery)
        .order_by("-created_at", "-id")
        .values("id", "chat_id", "chat__title", "created_at", "role")[:limit]
    )
    title = _vector("chat_chat")
    chats = list(
        Chat.objects.filter(user=user)
        .annotate(document=title)
        .filter(document=tsquery)
        .order_by("-updated_at", "-id")
        .values("id", "title", "updated_at")[:limit]
    )
    message_snippets = dict(
        Message.objects.filter(id__in=[m["id"] for m in messages])
        .annotate(snippet=_headline("content", tsquery, **SNIPPET_WORDS))
        .values_list("id", "snippet")
    )
    title_snippets = dict(
        Chat.objects.filter(id__in=[c["id"] for c in chats])
        .annotate(snippet=_headline("title", tsquery, highlight_all=True))
        .values_list("id", "snippet")
    )
    results = [
        SearchResult(
            chat_id=m["chat_id"],
            message_id=m["id"],
            title=m["chat__title"],
            snippet=_snippet(message_snippets.get(m["id"])),
            when=m["created_at"],
            role=m["role"],
        )
        for m in messages
    ]
    results += [
        SearchResult(
            chat_id=c["id"],
            message_id=None,
            title=c["title"],
            snippet=_snippet(title_snippets.get(c["id"])),
            when=c["updated_at"],
            role="title",
        )
        for c in chats
    ]
    return newest(results, limit)


def rebuild() -> dict[str, int]:
    """Recreate a column or index that went missing, rebuild both indexes, and count what they cover."""
    with connection.cursor() as cursor:
        for statement in [*PG_CREATE, *NEWEST_CREATE]:
            cursor.execute(statement)
        for name in [*PG_INDEXES, NEWEST_INDEX]:
            cursor.execute(f"REINDEX INDEX {name}")
    return {"messages": Message.objects.count(), "chats": Chat.objects.count()}
