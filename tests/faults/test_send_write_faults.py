"""A database fault in the middle of a send's writes: a real ``OperationalError`` raised by the cursor on
the Nth write statement (as a dropped connection or a full disk would), whichever statement that is.

Whatever write fails, the send is all or nothing: the tab is told (``error``), no reply streams (the
provider is never called; a call that left early from the chat's plan is closed unread, so nothing is
streamed that was not saved), no half-saved rows are left (a user message without its reply, a
"streaming" placeholder nobody runs), and sending the same message again saves it exactly once and
streams its reply. Both ways a send is written are covered: the full one, and the short one of a send
whose chat has a plan (``plans.prepare_all``: three writes, then the full way's, failing too). Runs on
both backends (``DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError
from django.db.backends import utils

from qtap_site.chat import delivery, plans, runner
from qtap_site.chat.models import Chat, Message
from tests.support.data import ChatSetup, chat_messages, db
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import InProcessTab, Tab

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

WRITES = ("INSERT", "UPDATE", "DELETE")


class FailNthWrite:
    """While armed, the Nth write statement through any Django cursor raises OperationalError, and so
    does every write after it: the connection stays lost (a planned send whose short write fails tries
    the full way next, which must fail too for the send to be refused; ``test_database_faults`` has
    the fault that passes)."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.writes: list[str] = []
        self.armed = False
        self.lock = threading.Lock()
        self.real = utils.CursorWrapper._execute_with_wrappers

    def __call__(self, cursor: Any, sql: str, params: Any, many: bool, executor: Any) -> Any:
        if self.armed and sql.lstrip().upper().startswith(WRITES):
            with self.lock:
                self.writes.append(sql.split(None, 3)[:3][-1])
                failing = len(self.writes) >= self.nth
            if failing:
                raise OperationalError("could not write to the database: connection lost")
        return self.real(cursor, sql, params, many, executor)

    @contextlib.contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailNthWrite]:
        fault = self

        def wrapped(cursor: Any, sql: str, params: Any, many: bool, executor: Any) -> Any:
            return fault(cursor, sql, params, many, executor)

        monkeypatch.setattr(utils.CursorWrapper, "_execute_with_wrappers", wrapped)
        try:
            yield self
        finally:
            self.armed = False


@pytest.fixture
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """ "full": the chat has no plan when the message is sent; "planned": it has (the tab made it)."""
    if request.param == "full":

        async def no_plan(**_: Any) -> None:
            return None

        monkeypatch.setattr(runner, "plan_ahead", no_plan)
    return str(request.param)


@pytest.fixture
async def tab(path: str, chat_on_fake: ChatSetup, alice_cookie: str) -> Tab:
    opened = await InProcessTab.open(chat_on_fake.chat.pk, cookie=alice_cookie)
    await opened.expect("chat.state")
    for _ in range(200):
        if path == "full" or chat_on_fake.chat.pk in plans.plans or not delivery.single_process():
            break
        await asyncio.sleep(0.01)
    # Plans are used only when one process serves the site: the scaled run has none.
    assert (chat_on_fake.chat.pk in plans.plans) == (path == "planned" and delivery.single_process())
    yield opened
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await opened.close()


# A first send writes, either way: the user message, its reply's placeholder, the chat's updated_at,
# its title.
@pytest.mark.parametrize(
    ("path", "nth"), [(path, n) for path in ("full", "planned") for n in (1, 2, 3, 4)], indirect=["path"]
)
async def test_a_write_failing_during_the_send_loses_nothing_and_streams_nothing(
    path: str,
    nth: int,
    tab: Tab,
    chat_on_fake: ChatSetup,
    scripted_openai: ScriptedOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chat = chat_on_fake.chat
    # Slow enough that a call opened early cannot finish before the failed write closes it.
    scripted_openai.script = Script(tokens=6, delay=0.2)
    with FailNthWrite(nth).installed(monkeypatch) as fault:
        fault.armed = True
        await tab.send({"type": "message.send", "content": "keep me", "client_msg_id": "c-1"})
        frame = await tab.expect(("error", "generation.error"), timeout=10)
        fault.armed = False
    assert len(fault.writes) >= nth, fault.writes  # the fault did hit a write of this send
    assert frame["code"] == "internal" and frame["message"]
    await tab.drain()
    assert tab.frames("generation.delta") == [] and tab.frames("generation.started") == []
    # The provider was never called, or (planned) its call left beside the transaction and was closed.
    early = path == "planned" and delivery.single_process()
    assert len(scripted_openai.chat_requests()) == (1 if early else 0)
    # All or nothing: the transaction rolled back, so no user message without its reply and no
    # placeholder left "streaming".
    assert await db(chat_messages, chat.pk) == []
    assert (await db(Chat.objects.get, pk=chat.pk)).title == ""

    # Sent again, the message is kept once and its reply streams and is saved in full.
    await tab.send({"type": "message.send", "content": "keep me", "client_msg_id": "c-1"})
    reply = await tab.follow(timeout=20)
    assert reply.terminal is not None and reply.terminal["type"] == "generation.finished", reply.terminal
    assert reply.text == Script(tokens=6).text()
    rows = await db(chat_messages, chat.pk)
    assert [(m.role, m.content, m.status) for m in rows] == [
        ("user", "keep me", Message.Status.COMPLETE),
        ("assistant", Script(tokens=6).text(), Message.Status.COMPLETE),
    ]
    assert rows[0].client_msg_id == "c-1" and rows[1].parent_id == rows[0].pk
