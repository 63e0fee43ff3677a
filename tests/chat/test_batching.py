"""How batches of database work form: no timer, one batch in the database thread at a time, and each
caller gets its own answer or its own exception."""

from __future__ import annotations

import asyncio
import time

import pytest

from qtap_site.chat.batching import DatabaseBatches

# Batches run on Django's database thread, which closes stale connections around every call.
pytestmark = pytest.mark.django_db(transaction=True)


class Doubling(DatabaseBatches[int, int]):
    """Doubles numbers, slowly; refuses negative ones; a 13 breaks the whole batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.batches: list[list[int]] = []

    def run_batch(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        time.sleep(0.05)
        if 13 in items:
            raise RuntimeError("the database went away")
        return [ValueError(f"{n} is negative") if n < 0 else n * 2 for n in items]


async def test_calls_made_while_a_batch_runs_go_together_in_the_next() -> None:
    batches = Doubling.for_loop()
    first = asyncio.ensure_future(batches.submit(1))
    await asyncio.sleep(0.01)  # the first batch is in the database thread now
    rest = [asyncio.ensure_future(batches.submit(n)) for n in (2, 3, -4, 5)]

    assert await first == 2
    results = await asyncio.gather(*rest, return_exceptions=True)

    assert batches.batches == [[1], [2, 3, -4, 5]]
    assert results[:2] == [4, 6] and results[3] == 10
    assert isinstance(results[2], ValueError) and "-4 is negative" in str(results[2])


async def test_a_failed_batch_fails_its_own_calls_only() -> None:
    batches = Doubling.for_loop()
    first = asyncio.ensure_future(batches.submit(1))
    await asyncio.sleep(0.01)
    doomed = [asyncio.ensure_future(batches.submit(n)) for n in (13, 7)]
    assert await first == 2
    for call in doomed:
        with pytest.raises(RuntimeError, match="went away"):
            await call
    assert await batches.submit(8) == 16, "the next batch works again"


async def test_each_loop_has_its_own_batches() -> None:
    assert Doubling.for_loop() is Doubling.for_loop()
    assert Doubling.for_loop().loop is asyncio.get_running_loop()
