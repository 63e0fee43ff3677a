"""One SQL statement per batch that sets imported messages' parents once their rows exist:
``WITH v(id, parent) AS (VALUES …) UPDATE … FROM v``, on PostgreSQL and SQLite (3.33+).

Why not ``bulk_update``: it builds a ``CASE WHEN`` expression per row and field in Python, which took
four fifths of an import's time (bench/results/transfer.notes.md). Why an update at all: a parent's id
exists only once its row does, and the rows of a chat are inserted in one statement. Another database
falls back to ``bulk_update``.

May import: ``qtap_site.chat.models``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from qtap_site.chat.models import Message

BATCH = 1000  # 2 parameters a row: under SQLite's 32,766 and PostgreSQL's 65,535


def set_parents(pairs: Sequence[tuple[int, int]]) -> None:
    """Set ``parent_id`` of each message ``(id, parent_id)``."""
    if connection.vendor not in ("postgresql", "sqlite"):
        rows = [Message(pk=pk, parent_id=parent) for pk, parent in pairs]
        Message.objects.bulk_update(rows, ["parent"], batch_size=BATCH)
        return
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    placeholder = "(%s::bigint, %s::bigint)" if connection.vendor == "postgresql" else "(%s, %s)"
    with connection.cursor() as cursor:
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            values = ", ".join([placeholder] * len(batch))
            # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
            cursor.execute(
                f"WITH v(id, parent) AS (VALUES {values}) "  # noqa: S608
                f"UPDATE {table} SET {quote('parent_id')} = v.parent FROM v WHERE {table}.{quote('id')} = v.id",
                [value for pair in batch for value in pair],
            )
