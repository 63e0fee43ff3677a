"""Small checked reads of a JSON object's fields, each naming where in the file a wrong value is
(``conversations.json: item 3: title``), for the readers of every import format.

May import: ``records``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qtap_site.transfer.records import ImportProblem, Tick

T = TypeVar("T")

MAX_INT = 2**31 - 1  # PositiveIntegerField on every database


def bad(where: str, what: str) -> ImportProblem:
    return ImportProblem("bad_export", f"{where}: {what}")


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, f"expected an object, found {_kind(value)}")
    return value


def each_object(name: str, data: list[Any], read: Callable[[dict[str, Any], str], T], tick: Tick) -> list[T]:
    """``read(item, where)`` of every object of the list ``data`` (each must be one), calling
    ``tick(done, total)`` before each is read."""
    found = []
    for i, item in enumerate(data):
        tick(i, len(data))
        where = f"{name}: item {i}"
        found.append(read(obj(item, where), where))
    return found


def items(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad(where, f"expected a list, found {_kind(value)}")
    return value


def text(data: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad(f"{where}: {key}", f"expected text, found {_kind(value)}")
    return value


def count(data: dict[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise bad(f"{where}: {key}", f"expected a whole number from 0 to {MAX_INT}, found {value!r}")
    return value


def flag(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise bad(f"{where}: {key}", f"expected true or false, found {value!r}")
    return value


def key_of(value: Any, where: str) -> str:
    """An id as the tree's key: a string or an integer, as text."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise bad(where, f"expected an id, found {value!r}")
    return str(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
