"""Every way a provider can fail mid-conversation, through the real plugins and the real consumer.

Each fault must end its generation with exactly one terminal event carrying a clear error code, keep
the user's message, and leave the chat working: the next message gets a full reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest

from providers import http
from qtap_site.chat.models import Message
from tests.support.data import ChatSetup, chat_messages, chat_setup, db
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import TERMINAL, Generation, InProcessTab, Tab

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

ERROR_BODY = {"error": {"message": "Upstream is struggling", "type": "server_error", "code": None}}
_ids = itertools.count(1)


async def ask(tab: Tab, content: str, timeout: float = 20.0) -> tuple[Generation, str]:
    """Send a message and follow its reply to the terminal event; answer it and the client_msg_id."""
    client_msg_id = f"cm-{next(_ids)}"
    await tab.send({"type": "message.send", "content": content, "client_msg_id": client_msg_id})
    generation = await tab.follow(timeout=timeout)
    return generation, client_msg_id


async def assert_clean_failure(
    tab: Tab, generation: Generation, client_msg_id: str, content: str, code: str | tuple[str, ...]
) -> None:
    """One terminal event with a clear code; the user's message announced and saved; the partial
    reply saved as an error with that code."""
    codes = (code,) if isinstance(code, str) else code
    terminal = generation.terminal
    assert terminal is not None and terminal["type"] == "generation.error", terminal
    assert terminal["code"] in codes, terminal
    assert terminal["message"].strip(), "the error says what happened"
    # Nothing more arrives for this generation: exactly one terminal event.
    await tab.drain(0.3)
    terminals = [f for f in tab.received if f["type"] in TERMINAL and f["message_id"] == generation.message_id]
    assert len(terminals) == 1, terminals
    # The user's message was announced and kept.
    created = [f["message"] for f in tab.frames("message.created")]
    assert any(m["client_msg_id"] == client_msg_id and m["content"] == content for m in created)
    rows = await db(chat_messages, tab.chat_id)
    user_rows = [m for m in rows if m.role == Message.Role.USER and m.client_msg_id == client_msg_id]
    assert len(user_rows) == 1 and user_rows[0].content == content
    assistant = next(m for m in rows if m.pk == generation.message_id)
    assert assistant.status == Message.Status.ERROR
    assert assistant.error_code == terminal["code"]
    assert assistant.content == generation.text  # whatever was streamed before the fault is kept


async def assert_chat_still_works(tab: Tab, fake: ScriptedOpenAI) -> None:
    fake.script = Script(tokens=6)
    generation, _ = await ask(tab, "Are you there?")
    assert generation.terminal is not None and generation.terminal["type"] == "generation.finished", generation.terminal
    assert generation.text == Script(tokens=6).text()


@pytest.fixture
async def tab(chat_on_fake: ChatSetup, alice_cookie: str) -> Tab:
    opened = await InProcessTab.open(chat_on_fake.chat.pk, cookie=alice_cookie)
    await opened.expect("chat.state")
    yield opened
    with contextlib.suppress(Exception, asyncio.CancelledError):  # a failed test may have crashed the app
        await opened.close()


@pytest.mark.parametrize(
    ("end", "code"),
    [
        ("drop", "protocol"),  # the connection is cut mid-body
        ("malformed", "protocol"),  # a chunk that is not JSON
        ("truncated", "protocol"),  # a clean end without a finish reason or [DONE]
        ("error", "unavailable"),  # the provider's own error event (a server_error), after HTTP 200
    ],
)
async def test_a_stream_that_breaks_mid_way(
    tab: Tab, scripted_openai: ScriptedOpenAI, end: str, code: str | tuple[str, ...]
) -> None:
    scripted_openai.script = Script(tokens=4, end=end)  # type: ignore[arg-type]
    generation, client_msg_id = await ask(tab, f"break with {end}")
    assert generation.text == Script(tokens=4).text(), "the text before the fault reached the tab"
    await assert_clean_failure(tab, generation, client_msg_id, f"break with {end}", code)
    await assert_chat_still_works(tab, scripted_openai)


async def test_a_stall_past_the_read_timeout(
    tab: Tab, scripted_openai: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http.HTTPProvider, "default_read_timeout", 0.5)
    scripted_openai.script = Script(tokens=2, end="stall", stall_seconds=20)
    started = time.monotonic()
    generation, client_msg_id = await ask(tab, "then go quiet")
    assert time.monotonic() - started < 5
    await assert_clean_failure(tab, generation, client_msg_id, "then go quiet", "timeout")
    assert generation.terminal is not None and generation.terminal["retryable"] is True
    # The stalled upstream request was closed, not left hanging.
    assert await asyncio.to_thread(scripted_openai.disconnected.wait, 5)
    await assert_chat_still_works(tab, scripted_openai)


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "rate_limited"), (500, "unavailable"), (503, "unavailable"), (529, "overloaded")],
)
async def test_a_storm_of_error_statuses(tab: Tab, scripted_openai: ScriptedOpenAI, status: int, code: str) -> None:
    # More failures than retries: the first try and both retries fail (retry-after-ms keeps it quick).
    scripted_openai.fail_next(status, ERROR_BODY, headers={"retry-after-ms": "20"}, times=3)
    generation, client_msg_id = await ask(tab, f"storm {status}")
    await assert_clean_failure(tab, generation, client_msg_id, f"storm {status}", code)
    assert generation.terminal is not None and generation.terminal["retryable"] is True
    assert "Upstream is struggling" in generation.terminal["message"]  # the provider's own words
    assert len(scripted_openai.chat_requests()) == 3  # one try and two retries, no more
    assert generation.deltas == []
    await assert_chat_still_works(tab, scripted_openai)


async def test_a_short_storm_is_ridden_out_by_retries(tab: Tab, scripted_openai: ScriptedOpenAI) -> None:
    scripted_openai.fail_next(529, ERROR_BODY, headers={"retry-after-ms": "20"}, times=2)
    scripted_openai.script = Script(tokens=5)
    generation, _ = await ask(tab, "storm then sun")
    assert generation.terminal is not None and generation.terminal["type"] == "generation.finished"
    assert generation.text == Script(tokens=5).text()
    assert len(scripted_openai.chat_requests()) == 3


async def test_an_anthropic_error_event_after_http_200(user: object, alice_cookie: str) -> None:
    """Anthropic reports overload in-band (``event: error`` after a 200): the reply ends as "overloaded"."""
    from tests.fakes.anthropic import TEXTS, FakeAnthropic
    from tests.fakes.stream_faults import StreamFault

    with FakeAnthropic() as fake:
        setup = await db(
            chat_setup,
            user,
            fake.base_url,
            plugin="qtap-plugin-anthropic",
            model="claude-haiku-4-5",
            secret=fake.api_key,
        )
        fake.stream_fault = StreamFault("error", after=3)
        tab = await InProcessTab.open(setup.chat.pk, cookie=alice_cookie)
        await tab.expect("chat.state")
        generation, client_msg_id = await ask(tab, "overload me")
        await assert_clean_failure(tab, generation, client_msg_id, "overload me", "overloaded")
        assert generation.terminal is not None and generation.terminal["retryable"] is True
        fake.stream_fault = None
        again, _ = await ask(tab, "and now?")
        assert again.terminal is not None and again.terminal["type"] == "generation.finished", again.terminal
        assert again.text == TEXTS["text"]
        await tab.close()
