"""Many rows written as plain parameterised statements: one multi-row ``INSERT`` per batch (its new keys
read back in one go), and one ``UPDATE … FROM (VALUES …)``.

Two writers hold a transaction while they write many rows, and the ORM's per-row, per-field Python was
most of it: a burst of 200 sends saves 400 messages and retitles 200 chats before any of them may call
its provider (``bulk_create`` plus ``bulk_update``'s CASE per row: ~200 ms for 200 sends, a quarter of
that here), and an import's inserts spent 4 of every 5 seconds preparing values (SQLite holds its one
write lock that long). Values still go through each field's own ``get_db_prep_save`` (and, for new rows,
``pre_save``), so defaults, ``auto_now`` stamps and the backend's adaptation (time zones, decimals, JSON)
are the ORM's own. ``prepare`` can run before the transaction opens; ``Rows.fill`` then sets a value
only the transaction knows (the id of a chat inserted in it) just before ``insert_rows``.

Statements, not rows, are what a burst pays for on SQLite: its driver gives up the interpreter at every
step and hands a result over a row per step, so beside a busy event loop each row of a result (or of an
``executemany``) waited up to a switch interval. No signals fire (``bulk_create`` sent none either).
PostgreSQL answers ``RETURNING`` rows in the order of VALUES, and SQLite gives row ids in that order.

Imports no project module: any model passes through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection, models, transaction
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
    table, key = quote(meta.db_table), quote(meta.pk.column)
    # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
    head = f"INSERT INTO {table} ({', '.join(quote(c) for c in rows.columns)}) VALUES "  # noqa: S608
    one = "(" + ", ".join(["%s"] * len(rows.columns)) + ")"
    per = max(1, min(ROWS_PER_STATEMENT, PARAMETERS // len(rows.columns)))
    counted = connection.vendor == "sqlite" and isinstance(meta.pk, models.fields.AutoFieldMixin)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows.values), per):
            batch = rows.values[start : start + per]
            sql, params = head + ", ".join([one] * len(batch)), [v for row in batch for v in row]
            if counted:
                ids += _inserted_ids(cursor, table, key, sql, params, len(batch))
            else:
                cursor.execute(f"{sql} RETURNING {key}", params)
                ids += [pk for (pk,) in cursor.fetchall()]
    return ids


def _inserted_ids(cursor: Any, table: str, key: str, sql: str, params: list[Any], count: int) -> list[int]:
    """SQLite: insert, then read the new keys back as one row. ``RETURNING`` hands over a row per step
    through the driver, and each step gives up the interpreter (beside a busy event loop, a wait of up
    to a switch interval per row). The keys are those above the table's largest before the insert: the
    transaction holds SQLite's one write lock from its first statement (``transaction_mode`` IMMEDIATE,
    or a read snapshot no other writer may move), and an integer key is the row id, given in the order
    of VALUES, each above every key the table had."""
    with transaction.atomic(savepoint=False):  # outside a transaction too: the three hold one lock
        cursor.execute(f"SELECT COALESCE(MAX({key}), 0) FROM {table}")  # noqa: S608 -- our names
        (before,) = cursor.fetchone()
        cursor.execute(sql, params)
        cursor.execute(f"SELECT json_group_array({key}) FROM {table} WHERE {key} > %s", [before])  # noqa: S608
        (found,) = cursor.fetchone()
    ids = sorted(json.loads(found))
    if len(ids) != count:
        raise DatabaseError(f"{count} rows inserted into {table}, {len(ids)} found above key {before}")
    return [int(pk) for pk in ids]


def insert(objs: Sequence[models.Model]) -> None:
    """Insert unsaved ``objs`` (one model) and give each its new primary key, like ``bulk_create``:
    each field's ``pre_save`` runs as for a new row (``auto_now`` stamps are the insert's time)."""
    if not objs:
        return
    model = type(objs[0])
    fields = _fields(model)
    values = [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in objs]
    _saved(objs, insert_rows(Rows(model, [f.column for f in fields], values)))


def insert_alike(objs: Sequence[models.Model], differing: Sequence[str]) -> None:
    """``insert`` for rows alike but in the fields named ``differing`` (a burst of sends' messages: the
    same defaults, the same status, one time): the first row is prepared in full and the others only in
    ``differing``, so a field's per-row Python runs for a few fields, not for all of them. Every row
    takes the first one's ``auto_now`` times."""
    if not objs:
        return
    model = type(objs[0])
    fields = _fields(model)
    first = [f.get_db_prep_save(f.pre_save(objs[0], True), connection) for f in fields]
    stamped = [f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    at = [(at, f) for at, f in enumerate(fields) if f.name in differing]
    if len(at) != len(set(differing)):  # a name that is no field would leave every row the first one's
        raise ValueError(f"not all of {list(differing)} are fields of {model.__name__}")
    values = [first]
    for obj in objs[1:]:
        row = first.copy()
        for index, field in at:
            row[index] = field.get_db_prep_save(getattr(obj, field.attname), connection)
        for name in stamped:
            setattr(obj, name, getattr(objs[0], name))
        values.append(row)
    _saved(objs, insert_rows(Rows(model, [f.column for f in fields], values)))


def _saved(objs: Sequence[models.Model], ids: list[int]) -> None:
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias


def update(objs: Sequence[models.Model], names: Sequence[str]) -> None:
    """Set the fields ``names`` of each of ``objs`` (one model) to its own values, in one statement per
    ``ROWS_PER_STATEMENT`` rows: ``UPDATE … FROM (VALUES (pk, value, …), …)``. An ``executemany`` was a
    step through the driver per row, and each step gives up the interpreter: beside a busy event loop,
    a wait of up to a switch interval for each row."""
    if not objs:
        return
    meta = type(objs[0])._meta
    fields = [field for name in names if isinstance(field := meta.get_field(name), models.Field)]
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    # PostgreSQL types a VALUES list from its first row (a NULL alone is text): each value says its type.
    typed = connection.features.requires_casted_case_in_updates
    columns: list[Any] = [meta.pk, *fields]
    one = "(" + ", ".join(f"CAST(%s AS {f.cast_db_type(connection)})" if typed else "%s" for f in columns) + ")"
    # Both backends name a VALUES list's columns column1, column2, … in order.
    assignments = ", ".join(f"{quote(f.column)} = v.column{at}" for at, f in enumerate(fields, start=2))
    where = f"{table}.{quote(meta.pk.column)} = v.column1"
    per = max(1, min(ROWS_PER_STATEMENT, PARAMETERS // len(columns)))
    rows = [[obj.pk, *(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields)] for obj in objs]
    with connection.cursor() as cursor:
        for begin in range(0, len(rows), per):
            batch = rows[begin : begin + per]
            values = ", ".join([one] * len(batch))
            # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
            sql = f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v WHERE {where}"  # noqa: S608
            cursor.execute(sql, [value for row in batch for value in row])
