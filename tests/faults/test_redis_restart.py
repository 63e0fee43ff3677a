"""Redis restarted while a reply streams between two processes (scaled deployment only).

Frames published while Redis is down are lost to the tabs (the channel layer is publish/subscribe),
but the generation itself must not notice beyond that: it finishes, saves every token, and sends
exactly one terminal event once Redis is back; the tabs can tell what they missed from the gap in
``seq`` and the terminal frame's ``html``. The chat keeps working afterwards.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support import redis_server
from tests.support.data import ChatSetup, chat_messages, db, message_row
from tests.support.markers import scaled_only
from tests.support.processes import daphne_processes, redis_url
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import TERMINAL, WSClient

pytestmark = [*scaled_only, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_a_redis_restart_mid_stream_loses_no_reply(
    chat_on_fake: ChatSetup, alice_cookie: str, scripted_openai: ScriptedOpenAI
) -> None:
    if not redis_server.available():
        pytest.skip("redis-server and redis-cli are needed to restart Redis")
    script = Script(tokens=400, delay=0.01)  # about 4 s: the restart happens in the middle
    scripted_openai.script = script
    path = f"/ws/chats/{chat_on_fake.chat.pk}/"

    with redis_server.restartable(redis_url()) as port, daphne_processes(2) as (a, b):

        async def scenario() -> None:
            tab_a = await WSClient.open(a.ws_url(path), cookie=alice_cookie)
            tab_b = await WSClient.open(b.ws_url(path), cookie=alice_cookie)
            await tab_a.expect("chat.state")
            await tab_b.expect("chat.state")
            await tab_a.send({"type": "message.send", "content": "keep talking", "client_msg_id": "r-1"})
            started = await tab_b.expect("generation.started", timeout=15)
            message_id = started["message_id"]
            await tab_b.expect("generation.delta", timeout=15, message_id=message_id)

            restarted = asyncio.create_task(asyncio.to_thread(redis_server.restart, port, 0.3))
            seen_a, seen_b = await asyncio.gather(tab_a.follow(message_id, 30), tab_b.follow(message_id, 30))
            await restarted
            for tab, seen in ((tab_a, seen_a), (tab_b, seen_b)):
                assert seen.terminal is not None and seen.terminal["type"] == "generation.finished", seen.terminal
                await tab.drain(0.3)
                terminals = [f for f in tab.received if f["type"] in TERMINAL and f["message_id"] == message_id]
                assert len(terminals) == 1
                # Whatever frames were lost, the seq numbers say so and never go backwards.
                assert seen.seqs == sorted(set(seen.seqs))
                # The terminal frame carries the whole reply, rendered.
                assert script.token(script.tokens - 1).strip() in seen.terminal["html"]
            row = await db(message_row, message_id)
            assert (row.status, row.content) == ("complete", script.text())

            # The chat keeps working, from either process.
            scripted_openai.script = Script(tokens=6)
            await tab_b.send({"type": "message.send", "content": "after the restart"})
            again_b, again_a = await asyncio.gather(tab_b.follow(timeout=20), tab_a.follow(timeout=20))
            for again in (again_a, again_b):
                assert again.terminal is not None and again.terminal["type"] == "generation.finished"
                assert again.text == Script(tokens=6).text()
            await tab_a.close()
            await tab_b.close()

        started_at = time.monotonic()
        asyncio.run(scenario())
        assert time.monotonic() - started_at < 60

    rows = asyncio.run(db(chat_messages, chat_on_fake.chat.pk))
    assert [(m.role, m.content) for m in rows if m.role == "user"] == [
        ("user", "keep talking"),
        ("user", "after the restart"),
    ]
