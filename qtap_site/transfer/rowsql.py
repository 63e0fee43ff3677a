"""Inserting rows whose every value was made ready for the database beforehand, so a transaction holds
only the statements: ``prepare`` turns model instances into rows of database values (``get_db_prep_save``
of each field, what ``bulk_create`` does per field and row, and most of its time: measured 4 of every 5
seconds of an import's inserts); ``insert`` runs ``INSERT … VALUES … RETURNING`` a batch at a time and
answers the new ids, in the rows' order (SQLite 3.35+ and PostgreSQL return them so, which
``bulk_create`` relies on as well).

A value only the transaction knows (the id of a chat inserted in it) is set in its column of the
prepared rows with ``Rows.fill`` just before the insert.

The instances' ``auto_now`` / ``auto_now_add`` fields are taken as set (the time of ``prepare`` where
unset): an import writes the source's own times, where ``bulk_create`` would have written the insert's.

May import: nothing of the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models
from django.utils import timezone

PARAMETERS = 30_000  # per statement: under SQLite's 32,766 and PostgreSQL's 65,535


@dataclass
class Rows:
    model: type[models.Model]
    columns: list[str]
    values: list[list[Any]]

    def fill(self, name: str, values: Iterable[Any]) -> None:
        """Set column ``name`` (a field's name) of every row, in order."""
        field: Any = self.model._meta.get_field(name)
        at = self.columns.index(field.column)
        for row, value in zip(self.values, values, strict=True):
            row[at] = value


def prepare(model: type[models.Model], instances: Sequence[models.Model]) -> Rows:
    """``instances`` as rows of database values for every concrete field but the primary key."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    stamped = {f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
    now = timezone.now()
    values = []
    for obj in instances:
        for name in stamped:
            if getattr(obj, name) is None:
                setattr(obj, name, now)
        values.append([f.get_db_prep_save(getattr(obj, f.attname), connection=connection) for f in fields])
    return Rows(model, [f.column for f in fields], values)


def insert(rows: Rows) -> list[int]:
    """Insert ``rows``; their new primary keys, in order."""
    if not rows.values:
        return []
    quote = connection.ops.quote_name
    # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
    meta = rows.model._meta
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in rows.columns)}) VALUES "  # noqa: S608
    tail = f" RETURNING {quote(meta.pk.column)}"
    one = "(" + ", ".join(["%s"] * len(rows.columns)) + ")"
    per = max(1, PARAMETERS // len(rows.columns))
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows.values), per):
            batch = rows.values[start : start + per]
            cursor.execute(head + ", ".join([one] * len(batch)) + tail, [v for row in batch for v in row])
            ids += [pk for (pk,) in cursor.fetchall()]
    return ids
