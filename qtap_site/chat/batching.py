"""Database work of many tasks of one event loop, done in batches on the database thread: sends
(``SendQueue``), final saves (``FinalSaves``) and checkpoints (``Checkpoints``, with the loop's one
checkpoint task), each kind one per event loop (``providers.loops.PerLoop``).

Every database call of a process goes through one thread. Under a burst (200 replies starting, or
ending, at the same moment) single calls queue there, and the last waits for all the others. A
batch waits for no timer: when no batch is in the database thread, a call goes at once, alone;
calls made meanwhile go together in the next batch, which costs about what one call did. Each
call still gets its own answer, or its own exception. Nothing here starts a generation.

May import: ``plans``, ``rendering``, ``saves``, ``sending``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings

from providers.loops import PerLoop
from qtap_site.chat import plans, saves, sending
from qtap_site.chat.rendering import render_markdown
from qtap_site.chat.sending import Prepared, SendRequest

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

    _by_loop: ClassVar[PerLoop[Any]]  # each subclass has its own

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_loop = PerLoop(cls)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[_Waiting[Item, Result]] = []
        self.worker: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """Calls are waiting, or a batch is in the database thread."""
        return bool(self.waiting) or (self.worker is not None and not self.worker.done())

    @classmethod
    def for_loop(cls) -> Any:
        """This event loop's batches of this kind."""
        return cls._by_loop.get()

    def run_batch(self, items: list[Item]) -> list[Result | Exception]:
        raise NotImplementedError

    async def submit(self, item: Item) -> Result:
        return await self._queue(item)

    async def submit_all(self, items: list[Item]) -> list[Result | BaseException]:
        """Several calls at once, in one batch unless one is already in the database thread."""
        return await asyncio.gather(*(self._queue(item) for item in items), return_exceptions=True)

    def _queue(self, item: Item) -> asyncio.Future[Result]:
        waiting: _Waiting[Item, Result] = _Waiting(item, self.loop.create_future())
        self.waiting.append(waiting)
        if self.worker is None or self.worker.done():
            self.worker = self.loop.create_task(self._work(), name=f"qtap-{type(self).__name__}")
        return waiting.answer

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
                if waiting.answer.done():  # its caller went away
                    continue
                if isinstance(result, Exception):
                    waiting.answer.set_exception(result)
                else:
                    waiting.answer.set_result(result)


class SendQueue(DatabaseBatches[SendRequest, Prepared]):
    """``message.send`` and ``message.regenerate`` of this loop. One send that breaks its batch fails
    alone: the batch's other sends are then prepared one by one (``sending.prepare_each``). A send
    whose call left early from its chat's plan is written the short way (``plans.prepare``), each in a
    transaction of its own, unless the chat's rows are not as the plan saw them; the others go together."""

    def run_batch(self, items: list[SendRequest]) -> list[Prepared | Exception]:
        results: list[Prepared | Exception | None] = [None] * len(items)
        planned = [index for index, item in enumerate(items) if item.planned]
        if planned:
            for index, result in zip(planned, _planned([items[i] for i in planned]), strict=True):
                results[index] = result
        rest = [index for index, result in enumerate(results) if result is None]
        if rest:
            for index, result in zip(rest, sending.prepare_each([items[i] for i in rest]), strict=True):
                results[index] = result
        return [result for result in results if result is not None]

    async def prepare(self, request: SendRequest) -> Prepared:
        """The prepared generation, or the ``ChatServiceError`` that refused this send."""
        return await self.submit(request)


def _planned(sends: list[SendRequest]) -> list[Prepared | Exception | None]:
    """The planned sends written the short way, together (``plans.prepare_all``), before the batch's
    other sends (which then see them, as the full way's sends see each other); None for each to send
    the full way: its rows are not as its plan saw them, or the short way failed and wrote nothing (the
    full way then fails a send alone, if it fails again)."""
    try:
        return list(plans.prepare_all(sends))
    except Exception:
        logger.warning("%d planned sends failed the short way; they go the full way", len(sends), exc_info=True)
        return [None] * len(sends)


FINAL_SAVE_ATTEMPTS = 5


class FinalSaves(DatabaseBatches[dict[str, Any], str]):
    """The final saves of generations ending together; each answers its reply's rendered HTML."""

    def run_batch(self, items: list[dict[str, Any]]) -> list[str | Exception]:
        return saves.finish_messages(items)

    async def save(self, **fields: Any) -> str:
        """A final save, retried while the database is briefly unavailable. If it still fails, the
        terminal event goes out anyway (answering the rendered text from memory): the row keeps its last
        checkpoint and becomes "interrupted" once its heartbeat goes stale."""
        for attempt in range(1, FINAL_SAVE_ATTEMPTS + 1):
            try:
                return await self.submit(fields)
            except Exception:
                if attempt == FINAL_SAVE_ATTEMPTS:
                    logger.exception("final save of message %s failed", fields.get("message_id"))
                    return render_markdown(str(fields.get("content") or ""))
                logger.warning("final save of message %s failed; retrying", fields.get("message_id"), exc_info=True)
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover


IDLE_HEARTBEAT_S = 5.0  # a generation with no new text still beats this often (stale after 30 s)


class Checkpointed(Protocol):
    """What the runner's ``RunningGeneration`` offers the checkpoints."""

    message_id: int
    seq: int
    streaming: bool
    saved_seq: int
    saved_at: float
    task: asyncio.Task[None] | None

    def snapshot(self) -> dict[str, Any]: ...


class Checkpoints(DatabaseBatches[dict[str, Any], bool]):
    """The text of this loop's running generations, saved about once a second: also the heartbeat other
    processes read. One task (``ticker``) saves every streaming generation of the loop in one batch; a
    task per generation meant, at 200 streams, 200 trips a second queued on the one database thread
    ahead of the transactions of new messages (their time to first token)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.ticker: asyncio.Task[None] | None = None

    def run_batch(self, items: list[dict[str, Any]]) -> list[bool | Exception]:
        saved = saves.checkpoint_messages(items)
        return [item["message_id"] in saved for item in items]

    def ensure_running(self, generations: Mapping[int, Checkpointed]) -> None:
        """Start the ticker unless it runs; it stops once no generation of this loop streams."""
        if self.ticker is None or self.ticker.done():
            self.ticker = self.loop.create_task(self._tick(generations), name="qtap-generation-checkpoints")

    async def _tick(self, generations: Mapping[int, Checkpointed]) -> None:
        while True:
            await asyncio.sleep(max(float(settings.QTAP_CHECKPOINT_INTERVAL), 0.05))
            mine = [gen for gen in list(generations.values()) if gen.streaming and self._on_loop(gen)]
            if not mine:
                return  # the next generation to start streaming starts a new ticker
            now = self.loop.time()
            due = [gen for gen in mine if gen.seq != gen.saved_seq or now - gen.saved_at >= IDLE_HEARTBEAT_S]
            if not due:
                continue
            items = [{"message_id": gen.message_id, **_text(gen)} for gen in due]
            for gen, item, saved in zip(due, items, await self.submit_all(items), strict=True):
                if saved is True:
                    gen.saved_seq, gen.saved_at = item["seq"], now

    async def save_now(self, gen: Checkpointed) -> None:
        """One last checkpoint, alone: the loop is shutting down mid-reply (recovery marks it "interrupted")."""
        item = {"message_id": gen.message_id, **_text(gen)}
        try:
            await asyncio.shield(database_sync_to_async(saves.checkpoint_message)(**item))
        except BaseException:
            logger.debug("could not save message %s while shutting down", gen.message_id, exc_info=True)

    def _on_loop(self, gen: Checkpointed) -> bool:
        return gen.task is not None and gen.task.get_loop() is self.loop


def _text(gen: Checkpointed) -> dict[str, Any]:
    snap = gen.snapshot()
    return {"content": snap["content"], "reasoning": snap["reasoning"], "seq": snap["seq"]}
