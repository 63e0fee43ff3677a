"""One SQL statement per batch that sets imported messages' parents and original times once their rows
exist: ``WITH v(id, parent, at) AS (VALUES …) UPDATE … FROM v``, on PostgreSQL and SQLite (3.33+).

Why not ``bulk_update``: it builds a ``CASE WHEN`` expression per row and field in Python, which took
four fifths of an import's time (bench/results/transfer.notes.md). Why an update at all: a parent's id
exists only once its row does, and ``auto_now_add`` overwrites ``created_at`` on insert. Another
database falls back to ``bulk_update``.

May import: ``qtap_site.chat.models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from qtap_site.chat.models import Message

BATCH = 500  # 3 parameters a row: under SQLite's 32,766 and PostgreSQL's 65,535


def set_parents_and_times(rows: Sequence[Message]) -> None:
    """Write each row's ``parent_id`` and ``created_at`` (also as ``updated_at``) as set on the instance."""
    if connection.vendor not in ("postgresql", "sqlite"):
        Message.objects.bulk_update(rows, ["parent", "created_at", "updated_at"], batch_size=BATCH)
        return
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    cast = ("::bigint", "::bigint", "::timestamptz") if connection.vendor == "postgresql" else ("", "", "")
    placeholder = f"(%s{cast[0]}, %s{cast[1]}, %s{cast[2]})"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            params: list[Any] = []
            for row in batch:
                params += [row.pk, row.parent_id, _at(row.created_at)]
            values = ", ".join([placeholder] * len(batch))
            # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
            cursor.execute(
                f"WITH v(id, parent, at) AS (VALUES {values}) "  # noqa: S608
                f"UPDATE {table} SET {quote('parent_id')} = v.parent, {quote('created_at')} = v.at, "
                f"{quote('updated_at')} = v.at FROM v WHERE {table}.{quote('id')} = v.id",
                params,
            )


def _at(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)
