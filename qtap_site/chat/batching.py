"""Database work of many tasks of one event loop, done in batches on the database thread.

Every database call of a process goes through one thread. Under a burst (200 replies starting, or
ending, at the same moment) single calls queue there, and the last waits for all the others. A
batch waits for no timer: when no batch is in the database thread, a call goes at once, alone;
calls made meanwhile go together in the next batch, which costs about what one call did. Each
call still gets its own answer, or its own exception.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from channels.db import database_sync_to_async

from qtap_site.chat import saves

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 500


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    answer: asyncio.Future[Result] = field(repr=False)


class DatabaseBatches(Generic[Item, Result]):
    """Subclasses say what one batch does (``run_batch``, in the database thread) and, optionally,
    what becomes of an answer nobody awaits any more (``unclaimed``)."""

    _by_loop: ClassVar[dict[tuple[type, int], Any]] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[_Waiting[Item, Result]] = []
        self.worker: asyncio.Task[None] | None = None

    @classmethod
    def for_loop(cls) -> Any:
        loop = asyncio.get_running_loop()
        key = (cls, id(loop))
        batches = DatabaseBatches._by_loop.get(key)
        if batches is None or batches.loop is not loop:  # a closed loop's id reused by a new one (tests)
            batches = DatabaseBatches._by_loop[key] = cls(loop)
        return batches

    def run_batch(self, items: list[Item]) -> list[Result | Exception]:
        raise NotImplementedError

    async def unclaimed(self, item: Item, result: Result) -> None:
        """The caller went away (its task was cancelled) before its answer came."""

    async def submit(self, item: Item) -> Result:
        waiting: _Waiting[Item, Result] = _Waiting(item, self.loop.create_future())
        self.waiting.append(waiting)
        if self.worker is None or self.worker.done():
            self.worker = self.loop.create_task(self._work(), name=f"qtap-{type(self).__name__}")
        return await waiting.answer

    async def _work(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            try:
                results = await database_sync_to_async(self.run_batch)([w.item for w in batch])
            except Exception as exc:  # the database is unavailable: every call of the batch failed
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            for waiting, result in zip(batch, results, strict=True):
                if not waiting.answer.done():
                    if isinstance(result, Exception):
                        waiting.answer.set_exception(result)
                    else:
                        waiting.answer.set_result(result)
                elif not isinstance(result, Exception):
                    try:
                        await self.unclaimed(waiting.item, result)
                    except Exception:
                        logger.exception("%s: an unclaimed answer could not be handled", type(self).__name__)


class FinalSaves(DatabaseBatches[dict[str, Any], str]):
    """The final saves of generations ending together; each answers its reply's rendered HTML."""

    def run_batch(self, items: list[dict[str, Any]]) -> list[str | Exception]:
        return saves.finish_messages(items)
