"""``message.send`` frames of this process, prepared in batches on the database thread (see
``qtap_site.chat.batching`` for how batches form, ``qtap_site.chat.sending`` for what one does). One
send that breaks its batch fails alone: the batch's other sends are then prepared one by one.

A tab that closes while its send is being prepared does not lose the reply: the generation starts
anyway, like one whose tab closed a moment later.
"""

from __future__ import annotations

from dataclasses import dataclass

from qtap_site.chat import runner, sending
from qtap_site.chat.batching import DatabaseBatches


@dataclass(frozen=True)
class QueuedSend:
    request: sending.SendRequest
    received_at: float


class SendQueue(DatabaseBatches[QueuedSend, sending.Prepared]):
    def run_batch(self, items: list[QueuedSend]) -> list[sending.Prepared | Exception]:
        return sending.prepare_each([item.request for item in items])

    async def prepare(self, request: sending.SendRequest, *, received_at: float) -> sending.Prepared:
        """The prepared generation, or the ``ChatServiceError`` that refused this send."""
        return await self.submit(QueuedSend(request, received_at))

    async def unclaimed(self, item: QueuedSend, result: sending.Prepared) -> None:
        # Nobody awaits it any more (the socket closed): its messages are saved, so run it.
        await runner.start_generation(result, received_at=item.received_at)
