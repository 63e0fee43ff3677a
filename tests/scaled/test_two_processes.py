"""Two Daphne processes serving one site over PostgreSQL and Redis (SPEC §8 "Scaled deployment").

A stream started in one process reaches tabs connected to the other; a stop sent to either process
stops the generation wherever it runs; a process killed mid-generation leaves its message
"interrupted" with the last checkpoint, and the chat goes on from the surviving process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.support.data import ChatSetup, chat_messages, db, message_row
from tests.support.markers import scaled_only
from tests.support.processes import DaphneProcess, daphne_processes
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import WSClient

pytestmark = [*scaled_only, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

STALE_SECONDS = 2.0
CHECKPOINT_SECONDS = 0.25


@pytest.fixture
def pair(chat_on_fake: ChatSetup) -> Iterator[tuple[DaphneProcess, DaphneProcess]]:
    env = {
        "QTAP_CHECKPOINT_INTERVAL": str(CHECKPOINT_SECONDS),
        "QTAP_GENERATION_STALE_SECONDS": str(STALE_SECONDS),
    }
    with daphne_processes(2, env=env) as (a, b):
        yield a, b


def chat_path(setup: ChatSetup) -> str:
    return f"/ws/chats/{setup.chat.pk}/"


def test_a_stream_started_in_one_process_reaches_a_tab_of_the_other(
    pair: tuple[DaphneProcess, DaphneProcess],
    chat_on_fake: ChatSetup,
    alice_cookie: str,
    scripted_openai: ScriptedOpenAI,
) -> None:
    a, b = pair
    script = Script(tokens=60, delay=0.005)
    scripted_openai.script = script

    async def scenario() -> None:
        tab_a = await WSClient.open(a.ws_url(chat_path(chat_on_fake)), cookie=alice_cookie)
        tab_b = await WSClient.open(b.ws_url(chat_path(chat_on_fake)), cookie=alice_cookie)
        for tab in (tab_a, tab_b):
            state = await tab.expect("chat.state")
            assert state["generation"] is None
        await tab_a.send({"type": "message.send", "content": "hello from A", "client_msg_id": "m-1"})
        seen_a, seen_b = await asyncio.gather(tab_a.follow(timeout=30), tab_b.follow(timeout=30))
        # Tab B saw the user message too.
        created = [f for f in tab_b.received if f["type"] == "message.created"]
        assert any(f["message"]["client_msg_id"] == "m-1" for f in created)
        for seen in (seen_a, seen_b):
            assert seen.terminal is not None and seen.terminal["type"] == "generation.finished", seen.terminal
            assert seen.text == script.text()
            assert seen.seqs == list(range(1, len(seen.seqs) + 1))
        assert seen_a.deltas == seen_b.deltas
        assert seen_a.terminal == seen_b.terminal
        row = await db(message_row, seen_a.message_id)
        assert (row.status, row.content) == ("complete", script.text())
        await tab_a.close()
        await tab_b.close()

    asyncio.run(scenario())
    assert len(scripted_openai.chat_requests()) == 1  # one upstream request, however many tabs


def test_a_stop_sent_to_one_process_stops_the_generation_running_in_the_other(
    pair: tuple[DaphneProcess, DaphneProcess],
    chat_on_fake: ChatSetup,
    alice_cookie: str,
    scripted_openai: ScriptedOpenAI,
) -> None:
    a, b = pair
    scripted_openai.script = Script(tokens=2000, delay=0.01)  # 20 s if nobody stops it

    async def scenario() -> None:
        tab_a = await WSClient.open(a.ws_url(chat_path(chat_on_fake)), cookie=alice_cookie)
        tab_b = await WSClient.open(b.ws_url(chat_path(chat_on_fake)), cookie=alice_cookie)
        await tab_a.expect("chat.state")
        await tab_b.expect("chat.state")
        await tab_a.send({"type": "message.send", "content": "a long answer please"})
        started = await tab_b.expect("generation.started", timeout=15)
        message_id = started["message_id"]
        await tab_b.expect("generation.delta", timeout=15, message_id=message_id)
        stop_sent = time.monotonic()
        await tab_b.send({"type": "generation.stop", "message_id": message_id})
        seen_a, seen_b = await asyncio.gather(tab_a.follow(message_id, 15), tab_b.follow(message_id, 15))
        stopped_in = time.monotonic() - stop_sent
        for seen in (seen_a, seen_b):
            assert seen.terminal is not None
            assert seen.terminal["type"] == "generation.finished", seen.terminal
            assert seen.terminal["finish_reason"] == "cancelled"
        assert stopped_in < 5, f"the stop took {stopped_in:.1f} s"
        # The upstream request was closed: the provider stopped generating.
        assert await asyncio.to_thread(scripted_openai.disconnected.wait, 5)
        row = await db(message_row, message_id)
        assert row.status == "cancelled"
        text_a = "".join(f["text"] for f in tab_a.received if f["type"] == "generation.delta")
        assert row.content == text_a  # the partial text is saved, as far as the tabs saw it
        assert 0 < len(row.content) < len(scripted_openai.script.text())
        await tab_a.close()
        await tab_b.close()

    asyncio.run(scenario())
    assert scripted_openai.streams_cut == 1


def test_a_process_killed_mid_generation_leaves_the_message_interrupted_and_the_chat_usable(
    pair: tuple[DaphneProcess, DaphneProcess],
    chat_on_fake: ChatSetup,
    alice_cookie: str,
    scripted_openai: ScriptedOpenAI,
) -> None:
    a, b = pair
    scripted_openai.script = Script(tokens=3000, delay=0.01)
    path = chat_path(chat_on_fake)

    async def scenario() -> None:
        tab_a = await WSClient.open(a.ws_url(path), cookie=alice_cookie)
        tab_b = await WSClient.open(b.ws_url(path), cookie=alice_cookie)
        await tab_a.expect("chat.state")
        await tab_b.expect("chat.state")
        await tab_a.send({"type": "message.send", "content": "first question"})
        started = await tab_b.expect("generation.started", timeout=15)
        message_id = started["message_id"]
        # Let a few checkpoints happen.
        deadline = time.monotonic() + 4 * CHECKPOINT_SECONDS + 1
        while time.monotonic() < deadline:
            await tab_b.recv(5)
        a.kill()
        seen_by_b = "".join(
            f["text"] for f in tab_b.received if f["type"] == "generation.delta" and f["message_id"] == message_id
        )
        assert seen_by_b
        # The upstream connection of the dead process is gone.
        assert await asyncio.to_thread(scripted_openai.disconnected.wait, 10)
        checkpoint = (await db(message_row, message_id)).content
        assert checkpoint and seen_by_b.startswith(checkpoint), "the checkpoint is a prefix of what was streamed"

        # Once the dead owner's heartbeat is stale, a tab opened on B sees the message interrupted.
        await asyncio.sleep(STALE_SECONDS + 0.5)
        await tab_b.close()
        tab_b = await WSClient.open(b.ws_url(path), cookie=alice_cookie)
        state = await tab_b.expect("chat.state")
        assert state["generation"] is None
        tail = {m["id"]: m for m in state["messages_tail"]}
        assert tail[message_id]["status"] == "interrupted"
        assert tail[message_id]["content"] == checkpoint
        row = await db(message_row, message_id)
        assert (row.status, row.content) == ("interrupted", checkpoint)

        # The chat goes on from B.
        scripted_openai.script = Script(tokens=8)
        await tab_b.send({"type": "message.send", "content": "second question"})
        seen = await tab_b.follow(timeout=20)
        assert seen.terminal is not None and seen.terminal["type"] == "generation.finished", seen.terminal
        assert seen.text == Script(tokens=8).text()
        await tab_b.close()

    asyncio.run(scenario())
    rows = asyncio.run(db(chat_messages, chat_on_fake.chat.pk))
    assert [(m.role, m.status) for m in rows] == [
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    # The second question was sent with the first one in its history.
    history = scripted_openai.chat_requests()[-1].json["messages"]
    assert [m["content"] for m in history if m["role"] == "user"] == ["first question", "second question"]
