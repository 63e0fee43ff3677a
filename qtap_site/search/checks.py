"""System checks of the search app: ``search.W001``, a piece of the search index is missing.

On SQLite the likeliest cause is a chat migration that remade ``chat_message`` or ``chat_chat`` (Django
copies the table and drops the old one, and the FTS5 triggers go with it); from then on new and edited
messages are not indexed. On PostgreSQL, a dropped column or index. ``rebuild_search_index`` repairs both.

May import: ``schema``.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from qtap_site.search.schema import FTS5_TABLES, FTS5_TRIGGERS, NEWEST_INDEX, PG_INDEXES, PG_SOURCES, PG_VECTOR

# The migration after which each vendor's index is expected to be complete.
BUILT_BY = {"sqlite": ("search", "0001_search_index"), "postgresql": ("search", "0002_postgres_stored_vectors")}


def _missing(connection: Any) -> list[str]:
    # The newest-first index is expected once 0003 ran (an older database is still migrating).
    applied = MigrationRecorder(connection).applied_migrations()
    newest = (NEWEST_INDEX,) if ("search", "0003_newest_first_index") in applied else ()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger', 'index')")
            present = {name for (name,) in cursor.fetchall()}
            return [name for name in (*FTS5_TABLES, *FTS5_TRIGGERS, *newest) if name not in present]
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        present = {name for (name,) in cursor.fetchall()}
        cursor.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_name = %s",
            [PG_VECTOR],
        )
        present |= {f"{table}.{PG_VECTOR}" for (table,) in cursor.fetchall()}
        expected = (*(f"{t}.{PG_VECTOR}" for t in PG_SOURCES), *PG_INDEXES, *newest)
        return [name for name in expected if name not in present]


@register(Tags.database)
def check_search_index(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A database check (run by ``check --database`` and ``migrate``); silent before the index is migrated."""
    messages: list[CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        built_by = BUILT_BY.get(connection.vendor)
        if built_by is None or built_by not in MigrationRecorder(connection).applied_migrations():
            continue
        missing = _missing(connection)
        if missing:
            messages.append(
                Warning(
                    f"the search index on database {alias!r} is missing {', '.join(missing)}",
                    hint="Run `manage.py rebuild_search_index`: it puts them back and re-reads every message "
                    "(messages written meanwhile are not found until then).",
                    obj=alias,
                    id="search.W001",
                )
            )
    return messages
