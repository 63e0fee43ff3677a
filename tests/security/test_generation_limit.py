"""The per-user limit on concurrent generations (QTAP_MAX_CONCURRENT_GENERATIONS): one user cannot
hold more streams than that, in one process or across several, and other users are not affected."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from qtap_site.chat.services import chat_create
from tests.support.data import chat_setup, db
from tests.support.markers import scaled_test
from tests.support.processes import daphne_processes
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import InProcessTab, WSClient, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

LONG = Script(tokens=2000, delay=0.01)


def _chats(user: Any, base_url: str, count: int) -> list[int]:
    setup = chat_setup(user, base_url)
    return [setup.chat.pk] + [chat_create(user=user, profile=setup.profile).pk for _ in range(count - 1)]


async def test_a_user_at_the_limit_is_refused_and_others_are_not(
    user: Any, other_user: Any, scripted_openai: ScriptedOpenAI, settings: Any
) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 2
    scripted_openai.script = LONG
    alice_chats = await db(_chats, user, scripted_openai.base_url, 3)
    mallory_chats = await db(_chats, other_user, scripted_openai.base_url, 1)
    alice_cookie = await sync_to_async(session_cookie)(user)
    mallory_cookie = await sync_to_async(session_cookie)(other_user)

    tabs = [await InProcessTab.open(chat_id, cookie=alice_cookie) for chat_id in alice_chats]
    for tab in tabs:
        await tab.expect("chat.state")
    running = []
    for tab in tabs[:2]:
        await tab.send({"type": "message.send", "content": "go"})
        running.append((await tab.expect("generation.started"))["message_id"])

    await tabs[2].send({"type": "message.send", "content": "one too many"})
    refused = await tabs[2].expect(("error", "generation.started"))
    assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
    await tabs[2].send({"type": "ping"})
    assert (await tabs[2].expect("pong"))["type"] == "pong"  # the socket stays open

    mallory = await InProcessTab.open(mallory_chats[0], cookie=mallory_cookie)
    await mallory.expect("chat.state")
    await mallory.send({"type": "message.send", "content": "my turn"})
    assert (await mallory.expect(("error", "generation.started")))["type"] == "generation.started"

    # When one of alice's replies ends, she may start another.
    await tabs[0].send({"type": "generation.stop", "message_id": running[0]})
    await tabs[0].follow(running[0], timeout=10)
    await tabs[2].send({"type": "message.send", "content": "now?"})
    assert (await tabs[2].expect(("error", "generation.started")))["type"] == "generation.started"

    for tab in [*tabs, mallory]:
        await tab.send({"type": "generation.stop"})
    for tab in [*tabs, mallory]:
        await tab.drain(0.3)
        await tab.close()


@scaled_test
@pytest.mark.timeout(90)
def test_the_limit_holds_across_processes(user: Any, scripted_openai: ScriptedOpenAI) -> None:
    scripted_openai.script = LONG
    chats = _chats(user, scripted_openai.base_url, 3)
    cookie = session_cookie(user)
    with daphne_processes(2, env={"QTAP_MAX_CONCURRENT_GENERATIONS": "2"}) as (a, b):

        async def scenario() -> None:
            tab_1 = await WSClient.open(a.ws_url(f"/ws/chats/{chats[0]}/"), cookie=cookie)
            tab_2 = await WSClient.open(a.ws_url(f"/ws/chats/{chats[1]}/"), cookie=cookie)
            tab_3 = await WSClient.open(b.ws_url(f"/ws/chats/{chats[2]}/"), cookie=cookie)
            for tab in (tab_1, tab_2, tab_3):
                await tab.expect("chat.state")
            for tab in (tab_1, tab_2):
                await tab.send({"type": "message.send", "content": "go"})
                await tab.expect("generation.started", timeout=15)
            await tab_3.send({"type": "message.send", "content": "from the other process"})
            refused = await tab_3.expect(("error", "generation.started"), timeout=15)
            assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
            for tab in (tab_1, tab_2, tab_3):
                await tab.send({"type": "generation.stop"})
                await asyncio.sleep(0)
            for tab in (tab_1, tab_2, tab_3):
                await tab.close()

        asyncio.run(scenario())
