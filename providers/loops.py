"""One value per running event loop: pools, batchers, listeners and background tasks that must not be
shared between loops (an asyncio object belongs to the loop it was made on).

Values are keyed by the loop object itself, not its ``id()``: a closed loop's id may be reused by a new
loop (it happens in test suites), and an id-keyed table then hands the new loop a dead loop's value.
A value often holds its loop alive (a task, a connection pool), so the values of closed loops are
dropped, through ``discard`` (given the chance to clean up), whenever a new loop asks for its first value.

May import: nothing of qtap's, and no Django: every room may use it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

Value = TypeVar("Value")


class PerLoop(Generic[Value]):
    """``PerLoop(make)``: ``get()`` answers the running loop's value, made by ``make(loop)`` on first use
    (or again when ``alive(value)`` says the old one is finished)."""

    def __init__(
        self,
        make: Callable[[asyncio.AbstractEventLoop], Value],
        *,
        alive: Callable[[Value], bool] | None = None,
        discard: Callable[[Value], None] | None = None,
    ) -> None:
        self._make = make
        self._alive = alive
        self._discard = discard
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Value] = weakref.WeakKeyDictionary()

    def get(self) -> Value:
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            self.forget_closed_loops()
        if value is None or (self._alive is not None and not self._alive(value)):
            value = self._values[loop] = self._make(loop)
        return value

    def current(self) -> Value | None:
        """The running loop's value if it has one (nothing is made)."""
        return self._values.get(asyncio.get_running_loop())

    def pop(self) -> Value | None:
        """Take the running loop's value out (closing it is the caller's business)."""
        return self._values.pop(asyncio.get_running_loop(), None)

    def forget_closed_loops(self) -> None:
        for loop in [loop for loop in self._values if loop.is_closed()]:
            value = self._values.pop(loop)
            if self._discard is not None:
                self._discard(value)

    def clear(self) -> None:
        """Forget every loop's value (tests start from nothing)."""
        self._values.clear()

    def values(self) -> Iterator[Value]:
        return iter(list(self._values.values()))

    def __len__(self) -> int:
        return len(self._values)
