"""PerLoop: one value per event loop, never a dead loop's value, closed loops' values discarded."""

from __future__ import annotations

import asyncio

from providers.loops import PerLoop


def run(coro_fn):
    loop = asyncio.new_event_loop()
    try:
        return loop, loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_each_loop_gets_its_own_value_and_closed_loops_are_discarded() -> None:
    discarded: list[object] = []
    made: list[asyncio.AbstractEventLoop] = []

    def make(loop: asyncio.AbstractEventLoop) -> dict[str, object]:
        made.append(loop)
        return {"loop": loop}

    table: PerLoop[dict[str, object]] = PerLoop(make, discard=discarded.append)

    async def twice() -> tuple[object, object]:
        return table.get(), table.get()

    first_loop, (a, b) = run(twice)
    assert a is b and a["loop"] is first_loop
    second_loop, (c, _) = run(twice)
    assert c is not a and c["loop"] is second_loop
    assert discarded == [a]  # the first loop was closed when the second asked for its value
    assert made == [first_loop, second_loop]


def test_a_finished_value_is_made_again() -> None:
    table: PerLoop[list[int]] = PerLoop(lambda loop: [], alive=lambda value: not value)

    async def use() -> tuple[list[int], list[int], list[int]]:
        first = table.get()
        again = table.get()
        first.append(1)  # now "finished"
        return first, again, table.get()

    _, (first, again, fresh) = run(use)
    assert first is again and fresh is not first


def test_pop_and_current() -> None:
    table: PerLoop[object] = PerLoop(lambda loop: object())

    async def use() -> tuple[object | None, object, object | None, object | None]:
        before = table.current()
        value = table.get()
        popped = table.pop()
        return before, value, popped, table.current()

    _, (before, value, popped, after) = run(use)
    assert before is None and popped is value and after is None
