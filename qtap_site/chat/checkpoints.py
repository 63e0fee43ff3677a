"""Checkpoints of running generations: their text saved about once a second, which is also the
heartbeat other processes read.

One task per event loop saves every streaming generation of the loop in one trip to the database
thread. A task per generation meant, at 200 streams, 200 trips a second queued on the one database
thread ahead of the transactions of new messages (their time to first token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from qtap_site.chat import saves

IDLE_HEARTBEAT_S = 5.0  # a generation with no new text still beats this often (stale after 30 s)


class Checkpointed(Protocol):
    """What the runner's ``RunningGeneration`` offers this module."""

    message_id: int
    seq: int
    streaming: bool
    saved_seq: int
    saved_at: float
    task: asyncio.Task[None] | None

    def snapshot(self) -> dict[str, Any]: ...


_tasks: dict[int, asyncio.Task[None]] = {}


def ensure_running(generations: Mapping[int, Checkpointed]) -> None:
    """Start this loop's checkpoint task unless it runs; it stops once no generation streams."""
    loop = asyncio.get_running_loop()
    task = _tasks.get(id(loop))
    # The loop check matters when a closed loop's id is reused by a new one (tests).
    if task is None or task.done() or task.get_loop() is not loop:
        _tasks[id(loop)] = loop.create_task(_checkpoint_loop(generations), name="qtap-generation-checkpoints")


async def _checkpoint_loop(generations: Mapping[int, Checkpointed]) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            await asyncio.sleep(max(float(settings.QTAP_CHECKPOINT_INTERVAL), 0.05))
            mine = [gen for gen in list(generations.values()) if gen.streaming and _on_loop(gen, loop)]
            if not mine:
                return  # the next generation to start streaming starts a new task
            now = loop.time()
            due = [gen for gen in mine if gen.seq != gen.saved_seq or now - gen.saved_at >= IDLE_HEARTBEAT_S]
            if not due:
                continue
            items = [{"message_id": gen.message_id, **_text(gen)} for gen in due]
            saved = await database_sync_to_async(saves.checkpoint_messages)(items)
            for gen, item in zip(due, items, strict=True):
                if item["message_id"] in saved:
                    gen.saved_seq, gen.saved_at = item["seq"], now
    finally:
        if _tasks.get(id(loop)) is asyncio.current_task():
            del _tasks[id(loop)]


def _on_loop(gen: Checkpointed, loop: asyncio.AbstractEventLoop) -> bool:
    return gen.task is not None and gen.task.get_loop() is loop


def _text(gen: Checkpointed) -> dict[str, Any]:
    snap = gen.snapshot()
    return {"content": snap["content"], "reasoning": snap["reasoning"], "seq": snap["seq"]}
