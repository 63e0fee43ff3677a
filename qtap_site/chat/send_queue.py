"""``message.send`` frames of this process, prepared in batches on the database thread.

A send waits for no timer: when no batch is being prepared, it goes at once, alone. Sends arriving
while a batch is in the database thread wait for it and then go together, in the next batch, so
under a burst the number of transactions stays small and each send waits for about one batch, not
for every send ahead of it (see ``qtap_site.chat.sending``).

A tab that closes while its send is being prepared does not lose the reply: the generation starts
anyway, like one whose tab closed a moment later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from channels.db import database_sync_to_async

from qtap_site.chat import runner, sending, services

logger = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass
class _Waiting:
    request: sending.SendRequest
    received_at: float
    answer: asyncio.Future[services.Prepared] = field(repr=False)


class SendQueue:
    _by_loop: dict[int, SendQueue] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[_Waiting] = []
        self.worker: asyncio.Task[None] | None = None

    @classmethod
    def for_loop(cls) -> SendQueue:
        loop = asyncio.get_running_loop()
        queue = cls._by_loop.get(id(loop))
        if queue is None or queue.loop is not loop:  # a closed loop's id reused by a new one (tests)
            queue = cls._by_loop[id(loop)] = cls(loop)
        return queue

    async def prepare(self, request: sending.SendRequest, *, received_at: float) -> services.Prepared:
        """The prepared generation, or the ``ChatServiceError`` that refused this send."""
        waiting = _Waiting(request, received_at, self.loop.create_future())
        self.waiting.append(waiting)
        if self.worker is None or self.worker.done():
            self.worker = self.loop.create_task(self._work(), name="qtap-send-batches")
        return await waiting.answer

    async def _work(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            try:
                outcomes = await database_sync_to_async(sending.prepare_sends)([w.request for w in batch])
            except Exception as exc:  # the database is unavailable: every send of the batch failed
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(exc)
                continue
            for waiting, outcome in zip(batch, outcomes, strict=True):
                await self._answer(waiting, outcome)

    async def _answer(self, waiting: _Waiting, outcome: sending.Outcome) -> None:
        if not waiting.answer.done():
            if isinstance(outcome, services.ChatServiceError):
                waiting.answer.set_exception(outcome)
            else:
                waiting.answer.set_result(outcome)
        elif isinstance(outcome, services.Prepared):
            # Nobody awaits it any more (the socket closed): its messages are saved, so run it.
            try:
                await runner.start_generation(outcome, received_at=waiting.received_at)
            except Exception:
                logger.exception("could not start generation %s of a closed tab", outcome.assistant_id)
