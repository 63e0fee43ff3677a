"""Search across the chats of one user, on whichever engine the database is.

``search()`` is the one entry point: it reads the user's text into terms (``query.parse``), then asks the
engine of ``connection.vendor`` — SQLite FTS5 (``fts5``) or PostgreSQL full-text search (``postgres``).
Both answer the same ``SearchResult`` rows in the same order: **newest first** (a message by when it was
written, a title by its chat's last activity), as the issue asks of search. Every query is scoped to
chats the user owns.

May import: ``fts5``, ``postgres``, ``query``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from qtap_site.search import fts5, postgres
from qtap_site.search.query import ParsedQuery, SearchResult, parse

ENGINES = {"sqlite": fts5, "postgresql": postgres}
ENGINE_NAMES = {"sqlite": "SQLite FTS5", "postgresql": "PostgreSQL full-text search"}


def _engine() -> Any:
    try:
        return ENGINES[connection.vendor]
    except KeyError:
        raise NotImplementedError(f"search has no engine for the {connection.vendor} database") from None


def search(*, user: Any, query: str | ParsedQuery, limit: int = 50) -> list[SearchResult]:
    """The newest ``limit`` hits for ``query`` in ``user``'s chats: messages and chat titles.

    An empty query, or one of punctuation only, answers ``[]`` without a database query; callers that
    want to tell "nothing to search for" from "nothing found" check ``query.parse(text)`` first.
    """
    parsed = parse(query) if isinstance(query, str) else query
    if not parsed or limit <= 0:
        return []
    return list(_engine().search(user=user, query=parsed, limit=limit))


@dataclass(frozen=True)
class Rebuilt:
    engine: str
    messages: int
    chats: int
    seconds: float

    def summary(self) -> str:
        return (
            f"Search index rebuilt ({self.engine}): {self.messages} messages and {self.chats} chat titles "
            f"in {self.seconds:.2f} s."
        )


def rebuild_index() -> Rebuilt:
    """Bring the index back in step with the tables (after rows were written with its triggers missing)."""
    started = time.monotonic()
    counts = _engine().rebuild()
    return Rebuilt(
        engine=ENGINE_NAMES[connection.vendor],
        messages=counts["messages"],
        chats=counts["chats"],
        seconds=time.monotonic() - started,
    )
