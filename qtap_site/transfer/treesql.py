"""One SQL statement per batch that sets columns of rows an import has just inserted:
``WITH v(id, …) AS (VALUES …) UPDATE … FROM v``, on PostgreSQL and SQLite (3.33+). Imported messages get
their parents and original times this way, imported chats their original times.

Why not ``bulk_update``: it builds a ``CASE WHEN`` expression per row and field in Python, which took
four fifths of an import's time (bench/results/transfer.notes.md). Why an update at all: a parent's id
exists only once its row does, and ``auto_now_add`` / ``auto_now`` overwrite the times on insert.
Another database falls back to ``bulk_update``.

May import: ``qtap_site.chat.models``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection, models

from qtap_site.chat.models import Chat, Message

ROWS = 400  # at most 5 parameters a row: under SQLite's 32,766 and PostgreSQL's 65,535
CASTS = {models.ForeignKey: "bigint", models.AutoField: "bigint", models.DateTimeField: "timestamptz"}


def set_parents_and_times(rows: Sequence[Message]) -> None:
    """Write each row's ``parent_id``, ``created_at`` and ``updated_at`` as set on the instance."""
    _update(Message, rows, ["parent", "created_at", "updated_at"])


def set_chat_times(chats: Sequence[Chat]) -> None:
    """Write each chat's ``created_at`` and ``updated_at`` as set on the instance."""
    _update(Chat, chats, ["created_at", "updated_at"])


def _update(model: type[models.Model], rows: Sequence[Any], names: list[str]) -> None:
    if not rows:
        return
    if connection.vendor not in ("postgresql", "sqlite"):
        model._default_manager.bulk_update(rows, names, batch_size=ROWS)
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields: list[Any] = [model._meta.pk, *(model._meta.get_field(name) for name in names)]
    columns = [f.column for f in fields]
    if connection.vendor == "postgresql":
        casts = [next(f"::{cast}" for kind, cast in CASTS.items() if isinstance(f, kind)) for f in fields]
    else:
        casts = [""] * len(fields)
    placeholder = "(" + ", ".join(f"%s{cast}" for cast in casts) + ")"
    assignments = ", ".join(f"{quote(column)} = v.{quote(column)}" for column in columns[1:])
    names_sql = ", ".join(quote(column) for column in columns)
    pk = quote(columns[0])
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS):
            batch = rows[start : start + ROWS]
            params: list[Any] = []
            for row in batch:
                params += [_value(getattr(row, f.attname)) for f in fields]
            values = ", ".join([placeholder] * len(batch))
            # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
            cursor.execute(
                f"WITH v({names_sql}) AS (VALUES {values}) "  # noqa: S608
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.{pk} = v.{pk}",
                params,
            )


def _value(value: Any) -> Any:
    return connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
