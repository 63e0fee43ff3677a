"""Many rows written as plain parameterised statements: one multi-row ``INSERT … RETURNING id`` per
batch, and one ``executemany`` UPDATE.

Two writers hold a transaction while they write many rows, and the ORM's per-row, per-field Python was
most of it: a burst of 200 sends saves 400 messages and retitles 200 chats before any of them may call
its provider (``bulk_create`` plus ``bulk_update``'s CASE per row: ~200 ms for 200 sends, a quarter of
that here), and an import's inserts spent 4 of every 5 seconds preparing values (SQLite holds its one
write lock that long). Values still go through each field's own ``get_db_prep_save`` (and, for new rows,
``pre_save``), so defaults, ``auto_now`` stamps and the backend's adaptation (time zones, decimals, JSON)
are the ORM's own. ``prepare`` can run before the transaction opens; ``Rows.fill`` then sets a value
only the transaction knows (the id of a chat inserted in it) just before ``insert_rows``.

No signals fire (``bulk_create`` sent none either). Both backends answer RETURNING rows in the order of
VALUES (SQLite 3.35+ and PostgreSQL; ``bulk_create`` relies on it too).

Imports no project module: any model passes through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, models
from django.utils import timezone

PARAMETERS = 30_000  # per statement: under SQLite's 32,766 and PostgreSQL's 65,535
ROWS_PER_STATEMENT = 500  # and no more rows than this: very long statements cost PostgreSQL more to plan


@dataclass
class Rows:
    """Rows of database values for ``columns`` of ``model``'s table (every concrete field but the key)."""

    model: type[models.Model]
    columns: list[str]
    values: list[list[Any]]

    def fill(self, name: str, values: Iterable[Any]) -> None:
        """Set column ``name`` (a field's name) of every row, in order."""
        field: Any = self.model._meta.get_field(name)
        at = self.columns.index(field.column)
        for row, value in zip(self.values, values, strict=True):
            row[at] = value


def _fields(model: type[models.Model]) -> list[Any]:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def prepare(model: type[models.Model], instances: Sequence[models.Model]) -> Rows:
    """``instances`` as rows of database values, their times as set: an import writes the source's own
    times (an unset ``auto_now``/``auto_now_add`` field gets the time of ``prepare``)."""
    fields = _fields(model)
    stamped = {f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)}
    now = timezone.now()
    values = []
    for obj in instances:
        for name in stamped:
            if getattr(obj, name) is None:
                setattr(obj, name, now)
        values.append([f.get_db_prep_save(getattr(obj, f.attname), connection=connection) for f in fields])
    return Rows(model, [f.column for f in fields], values)


def insert_rows(rows: Rows) -> list[int]:
    """Insert ``rows``; their new primary keys, in order."""
    if not rows.values:
        return []
    quote = connection.ops.quote_name
    meta = rows.model._meta
    # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in rows.columns)}) VALUES "  # noqa: S608
    tail = f" RETURNING {quote(meta.pk.column)}"
    one = "(" + ", ".join(["%s"] * len(rows.columns)) + ")"
    per = max(1, min(ROWS_PER_STATEMENT, PARAMETERS // len(rows.columns)))
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows.values), per):
            batch = rows.values[start : start + per]
            cursor.execute(head + ", ".join([one] * len(batch)) + tail, [v for row in batch for v in row])
            ids += [pk for (pk,) in cursor.fetchall()]
    return ids


def insert(objs: Sequence[models.Model]) -> None:
    """Insert unsaved ``objs`` (one model) and give each its new primary key, like ``bulk_create``:
    each field's ``pre_save`` runs as for a new row (``auto_now`` stamps are the insert's time)."""
    if not objs:
        return
    model = type(objs[0])
    fields = _fields(model)
    values = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs]
    ids = insert_rows(Rows(model, [f.column for f in fields], values))
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def update(objs: Sequence[models.Model], names: Sequence[str]) -> None:
    """``UPDATE … SET <names> WHERE pk = …`` for each of ``objs`` (one model), in one ``executemany``."""
    if not objs:
        return
    meta = type(objs[0])._meta
    fields = [field for name in names if isinstance(field := meta.get_field(name), models.Field)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608 -- our names
    rows = [[*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
