"""The database briefly unavailable while a reply streams: a failed write must not lose the reply,
leave it "streaming" forever, or take the socket down."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError

from qtap_site.chat import delivery, plans, saves, sending
from qtap_site.chat.models import Message
from tests.support.data import ChatSetup, chat_messages, db
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import TERMINAL, InProcessTab, Tab

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


class FailOnce:
    """Wraps a service so that its first call raises OperationalError, as a dropped connection would."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.calls = 0
        self.failed = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.failed == 0:
            self.failed += 1
            raise OperationalError("server closed the connection unexpectedly")
        return self.real(*args, **kwargs)


@pytest.fixture
async def tab(chat_on_fake: ChatSetup, alice_cookie: str) -> Tab:
    opened = await InProcessTab.open(chat_on_fake.chat.pk, cookie=alice_cookie)
    await opened.expect("chat.state")
    yield opened
    with contextlib.suppress(Exception, asyncio.CancelledError):  # a failed test may have crashed the app
        await opened.close()


async def second_message_succeeds(tab: Tab, fake: ScriptedOpenAI) -> None:
    fake.script = Script(tokens=6)
    await tab.send({"type": "message.send", "content": "still there?"})
    again = await tab.follow(timeout=20)
    assert again.terminal is not None and again.terminal["type"] == "generation.finished", again.terminal
    assert again.text == Script(tokens=6).text()


async def test_a_failed_checkpoint_is_skipped_and_the_reply_completes(
    tab: Tab, scripted_openai: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.QTAP_CHECKPOINT_INTERVAL = 0.1
    # The first round of checkpoints fails as a batch, then again for its row when saved on its own.
    batch = FailOnce(saves._checkpoint_batch)
    checkpoint = FailOnce(saves.checkpoint_message)
    monkeypatch.setattr(saves, "_checkpoint_batch", batch)
    monkeypatch.setattr(saves, "checkpoint_message", checkpoint)
    script = Script(tokens=50, delay=0.02)  # about a second: several checkpoints
    scripted_openai.script = script
    await tab.send({"type": "message.send", "content": "write through the outage", "client_msg_id": "db-1"})
    generation = await tab.follow(timeout=20)
    assert generation.terminal is not None and generation.terminal["type"] == "generation.finished"
    assert generation.text == script.text()
    assert batch.failed == 1 and checkpoint.failed == 1
    assert batch.calls >= 2, "later checkpoints ran after the failed one"
    await tab.drain(0.3)
    assert len([f for f in tab.received if f["type"] in TERMINAL]) == 1
    rows = await db(chat_messages, tab.chat_id)
    assert [(m.role, m.status, m.content) for m in rows] == [
        ("user", Message.Status.COMPLETE, "write through the outage"),
        ("assistant", Message.Status.COMPLETE, script.text()),
    ]
    await second_message_succeeds(tab, scripted_openai)


async def test_a_failed_final_save_still_ends_the_generation_with_one_terminal_event(
    tab: Tab, scripted_openai: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The final save fails as a batch, then again on its own: the runner's retry must save it.
    monkeypatch.setattr(saves, "_finish_batch", FailOnce(saves._finish_batch))
    monkeypatch.setattr(saves, "finish_message", FailOnce(saves.finish_message))
    scripted_openai.script = Script(tokens=5)
    await tab.send({"type": "message.send", "content": "save me", "client_msg_id": "db-2"})
    generation = await tab.follow(timeout=3)
    assert generation.terminal is not None
    rows = await db(chat_messages, tab.chat_id)
    assert rows[0].content == "save me"
    assert rows[1].status != Message.Status.STREAMING
    await second_message_succeeds(tab, scripted_openai)


async def test_the_database_down_when_a_message_is_sent_answers_an_error_and_keeps_the_socket(
    tab: Tab, scripted_openai: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Down for every way the send is written (the full way, and the short way of a chat with a plan,
    # which falls back to the full way), until its error has been told.
    down = [True]

    def gate(write: Callable[..., Any], *args: Any) -> Any:
        if down[0]:
            raise OperationalError("server closed the connection unexpectedly")
        return write(*args)

    monkeypatch.setattr(sending, "prepare_sends", functools.partial(gate, sending.prepare_sends))
    monkeypatch.setattr(plans, "prepare_all", functools.partial(gate, plans.prepare_all))
    await tab.send({"type": "message.send", "content": "first try"})
    frame = await tab.expect(("error", "generation.error"), timeout=5)
    assert frame["message"]
    down[0] = False
    await second_message_succeeds(tab, scripted_openai)


async def test_a_planned_send_whose_short_write_fails_is_written_the_full_way(
    tab: Tab, scripted_openai: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = FailOnce(plans.prepare_all)
    monkeypatch.setattr(plans, "prepare_all", short)
    scripted_openai.script = Script(tokens=4)
    await tab.send({"type": "message.send", "content": "once more"})
    generation = await tab.follow(timeout=10)
    assert generation.terminal is not None and generation.terminal["type"] == "generation.finished"
    assert generation.text == Script(tokens=4).text()
    rows = await db(chat_messages, tab.chat_id)
    assert [(m.role, m.content) for m in rows] == [("user", "once more"), ("assistant", Script(tokens=4).text())]
    # With one process the tab's plan made the send go the short way first (several: never planned).
    assert short.failed == (1 if delivery.single_process() else 0)
