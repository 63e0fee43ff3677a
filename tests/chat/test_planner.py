"""The planner: the plans of the chats tabs open (``runner.plan_ahead``), read a few at a time on the
database thread and never while a send is being written there (the sends come first)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from qtap_site.chat import delivery, plans, runner
from qtap_site.chat.batching import SendQueue
from qtap_site.chat.services import chat_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(30)]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The chats whose plan was read, in order."""
    read: list[int] = []
    real = plans.plan_of

    def spy(**asked: Any) -> Any:
        read.append(asked["chat_id"])
        return real(**asked)

    monkeypatch.setattr(plans, "plan_of", spy)
    return read


async def test_tabs_opening_together_are_all_planned_in_turn(chat, user, profile, monkeypatch) -> None:
    others = [
        await asyncio.to_thread(chat_create, user=user, profile=profile, system_prompt="Be brief.") for _ in range(10)
    ]
    if not delivery.single_process():  # plans are one process's: with several, none is read
        assert await runner.plan_ahead(user_id=chat.user_id, chat_id=chat.pk) is None and plans.plans == {}
        return
    reading, release, read = asyncio.Event(), threading.Event(), []
    loop, real = asyncio.get_running_loop(), plans.plan_of

    def slow_plan_of(**asked: Any) -> Any:
        read.append(asked["chat_id"])
        loop.call_soon_threadsafe(reading.set)
        release.wait(5)
        return real(**asked)

    monkeypatch.setattr(plans, "plan_of", slow_plan_of)
    first = asyncio.ensure_future(runner.plan_ahead(user_id=user.pk, chat_id=chat.pk))
    await reading.wait()
    # Tabs opening while the first chat is read wait their turn: none is dropped.
    waiting = [asyncio.ensure_future(runner.plan_ahead(user_id=user.pk, chat_id=c.pk)) for c in others]
    await asyncio.sleep(0.05)
    assert read == [chat.pk]
    release.set()
    await asyncio.gather(first, *waiting)
    assert read == [chat.pk, *(c.pk for c in others)]
    assert sorted(plans.plans) == sorted([chat.pk, *(c.pk for c in others)])
    # A chat planned already is not read again.
    await runner.plan_ahead(user_id=user.pk, chat_id=chat.pk)
    assert len(read) == 11


async def test_no_plan_is_read_while_a_send_is_being_written(chat, reads, monkeypatch) -> None:
    if not delivery.single_process():
        return  # no planner with several processes (the test above)
    writing = [True]
    monkeypatch.setattr(SendQueue, "busy", property(lambda self: writing[0]))
    planning = asyncio.ensure_future(runner.plan_ahead(user_id=chat.user_id, chat_id=chat.pk))
    await asyncio.sleep(0.1)
    assert reads == [] and not planning.done()
    writing[0] = False
    await asyncio.wait_for(planning, 5)
    assert reads == [chat.pk] and list(plans.plans) == [chat.pk]


async def test_a_chat_that_cannot_be_planned_leaves_the_others_planned(chat, user, profile, monkeypatch) -> None:
    if not delivery.single_process():
        return
    other = await asyncio.to_thread(chat_create, user=user, profile=profile, system_prompt="Be brief.")
    real = plans.plan_of

    def broken_for_chat(**asked: Any) -> Any:
        if asked["chat_id"] == chat.pk:
            raise RuntimeError("a row that cannot be read")
        return real(**asked)

    monkeypatch.setattr(plans, "plan_of", broken_for_chat)
    await asyncio.gather(*(runner.plan_ahead(user_id=user.pk, chat_id=c.pk) for c in (chat, other)))
    assert list(plans.plans) == [other.pk]
