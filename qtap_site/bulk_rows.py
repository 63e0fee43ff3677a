"""The writes of the send transaction as plain parameterised statements, for many rows at once.

A burst of 200 sends saves 400 messages and retitles 200 chats in one transaction, before any of
them may call its provider. Through the ORM (``bulk_create``, ``bulk_update`` with its CASE per row)
that was ~200 ms of Python on the database thread for 200 sends; the same rows as one multi-row
``INSERT … RETURNING id`` and one ``executemany`` UPDATE cost a quarter of it. Values still go through
each field's own ``pre_save`` and ``get_db_prep_save``, so defaults, ``auto_now`` stamps and the
backend's adaptation (time zones, decimals, JSON) are the ORM's own.

No signals fire (``bulk_create`` sent none either).

Imports no project module: any model passes through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Field, Model

ROWS_PER_STATEMENT = 200  # 26 values a message: far below SQLite's and PostgreSQL's parameter limits


def insert(objs: Sequence[Model]) -> None:
    """Insert unsaved ``objs`` (one model) and give each its new primary key, like ``bulk_create``."""
    if not objs:
        return
    meta = type(objs[0])._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    for start in range(0, len(objs), ROWS_PER_STATEMENT):
        chunk = objs[start : start + ROWS_PER_STATEMENT]
        params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in chunk for f in fields]
        values = ", ".join([row] * len(chunk))
        # Only the model's own quoted names and placeholders are formatted in; values are parameters.
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values} RETURNING {quote(meta.pk.column)}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [found[0] for found in cursor.fetchall()]
        # Both backends answer RETURNING rows in the order of VALUES (bulk_create relies on it too).
        for obj, pk in zip(chunk, ids, strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = connection.alias


def update(objs: Sequence[Model], names: Sequence[str]) -> None:
    """``UPDATE … SET <names> WHERE pk = …`` for each of ``objs`` (one model), in one ``executemany``."""
    if not objs:
        return
    meta = type(objs[0])._meta
    fields = [field for name in names if isinstance(field := meta.get_field(name), Field)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608 -- our names
    rows = [[*(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields), obj.pk] for obj in objs]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
