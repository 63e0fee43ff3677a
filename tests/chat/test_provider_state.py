"""A reply's provider state (Anthropic's signed thinking here) goes from the stream into the message row,
back to the same plugin on the next turn exactly as received, to no other plugin, and nowhere a person or a
log can see it: not in a frame, the chat page, the admin or a log line."""

from __future__ import annotations

import json
import logging
import re

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.fixtures import fixture_bytes
from tests.support.data import CHAT_COMPLETIONS

pytestmark = pytest.mark.django_db(transaction=True)

ANTHROPIC = "qtap-plugin-anthropic"
SIGNATURE = re.search(rb'"signature_delta","signature":"([^"]+)"', fixture_bytes("anthropic_stream_thinking.sse"))
RECORDED_SIGNATURE = SIGNATURE.group(1).decode() if SIGNATURE else ""


@pytest.fixture
def anthropic():
    with FakeAnthropic() as server:
        server.reply = "thinking"
        yield server


@pytest.fixture
def thinking_chat(user, anthropic):
    key = api_key_create(user=user, plugin=ANTHROPIC, label="claude", secret=anthropic.api_key)
    profile = connection_profile_create(
        user=user,
        name="Claude",
        plugin=ANTHROPIC,
        model="claude-haiku-4-5",
        api_key=key,
        base_url=anthropic.base_url,
        parameters={"reasoning_budget_tokens": 1024},
    )
    return chat_create(user=user, profile=profile)


async def turn(comm, content: str, **extra) -> list[dict]:
    await send(comm, {"type": "message.send", "content": content, **extra})
    return await receive_until(comm, *TERMINAL, timeout=20)


async def test_the_state_round_trips_to_its_own_plugin_and_no_other(
    thinking_chat, cookie, anthropic, fake, user, api_key, caplog
) -> None:
    assert RECORDED_SIGNATURE
    caplog.set_level(logging.DEBUG)
    comm, _ = await open_socket(thinking_chat.pk, cookie)
    first = await turn(comm, "Name a pelican")
    assert first[-1]["type"] == "generation.finished", first[-1]
    assert [f for f in first if f["type"] == "generation.reasoning"], "the thinking streamed as reasoning"
    assert anthropic.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}

    reply = await Message.objects.filter(chat=thinking_chat, role="assistant").alatest("id")
    assert reply.provider_state and reply.provider_state[0]["signature"] == RECORDED_SIGNATURE

    second = await turn(comm, "Another one")
    assert second[-1]["type"] == "generation.finished", second[-1]
    sent = anthropic.requests[-1].json
    assistant = next(m for m in sent["messages"] if m["role"] == "assistant")
    assert assistant["content"][0]["type"] == "thinking"
    assert assistant["content"][0]["signature"] == RECORDED_SIGNATURE  # the bytes as received

    # The chat moves to an OpenAI profile: none of Anthropic's state goes there.
    openai = await database_sync_to_async(connection_profile_create)(
        user=user, name="GPT", plugin="qtap-plugin-openai", model="gpt-4o-mini", api_key=api_key,
        base_url=fake.base_url, parameters=CHAT_COMPLETIONS,
    )  # fmt: skip
    third = await turn(comm, "And in OpenAI's words?", profile_id=openai.pk)
    assert third[-1]["type"] == "generation.finished", third[-1]
    assert RECORDED_SIGNATURE not in fake.chat_requests[-1].body.decode()
    await comm.disconnect()

    # Nowhere to be seen: frames, the chat page, the admin, the log.
    frames = json.dumps(first + second + third)
    assert RECORDED_SIGNATURE not in frames and "provider_state" not in frames

    def pages() -> list[tuple[int, str]]:
        client = Client()
        client.force_login(user)
        user.is_staff = user.is_superuser = True
        user.save()
        urls = [f"/chats/{thinking_chat.pk}/", f"/admin/chat/message/{reply.pk}/change/", "/admin/chat/message/"]
        return [(r.status_code, r.content.decode()) for r in (client.get(url) for url in urls)]

    shown = await database_sync_to_async(pages)()
    assert [status for status, _ in shown] == [200, 200, 200]
    assert "Name a pelican" in shown[0][1] and "Pouch" in shown[0][1]  # the reply is on the page, its state is not
    for _, page in shown:
        assert RECORDED_SIGNATURE not in page
    assert all(RECORDED_SIGNATURE not in record.getMessage() for record in caplog.records)


async def test_an_old_reply_without_state_still_continues_the_conversation(thinking_chat, cookie, anthropic) -> None:
    user_message = await Message.objects.acreate(chat=thinking_chat, role="user", content="Earlier question")
    await Message.objects.acreate(
        chat=thinking_chat, parent=user_message, role="assistant", content="Earlier answer", plugin=ANTHROPIC
    )
    comm, _ = await open_socket(thinking_chat.pk, cookie)
    frames = await turn(comm, "Go on")
    assert frames[-1]["type"] == "generation.finished", frames[-1]
    sent = anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert json.dumps(sent[1]).count("Earlier answer") == 1 and "signature" not in json.dumps(sent[1])
    await comm.disconnect()


async def test_the_meta_line_shows_cached_and_reasoning_tokens(thinking_chat, cookie, anthropic, user) -> None:
    anthropic.reply = "cached"  # 1,111 input tokens read from the cache (the recorded figures)
    comm, _ = await open_socket(thinking_chat.pk, cookie)
    frames = await turn(comm, "Again, from the cache")
    finished = frames[-1]
    assert finished["type"] == "generation.finished", finished
    assert finished["usage"]["cached_input_tokens"] == 1111
    assert "1111 cached" in finished["message_html"]
    await comm.disconnect()
    row = await Message.objects.filter(chat=thinking_chat, role="assistant").alatest("id")
    assert (row.cached_input_tokens, row.cache_write_tokens) == (1111, 418)

    def page() -> str:
        client = Client()
        client.force_login(user)
        return client.get(f"/chats/{thinking_chat.pk}/").content.decode()

    assert "1111 cached" in await database_sync_to_async(page)()


async def test_sampling_parameters_a_model_refuses_are_dropped_and_the_reply_says_so(
    user, api_key, fake, cookie
) -> None:
    profile = await database_sync_to_async(connection_profile_create)(
        user=user, name="o3", plugin="qtap-plugin-openai", model="o3-mini", api_key=api_key, base_url=fake.base_url,
        parameters={**CHAT_COMPLETIONS, "temperature": 0.3, "max_tokens": 200},
    )  # fmt: skip
    chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    comm, _ = await open_socket(chat.pk, cookie)
    finished = (await turn(comm, "Think"))[-1]
    assert finished["type"] == "generation.finished", finished
    body = fake.chat_requests[-1].json
    assert "temperature" not in body and body["max_completion_tokens"] == 200  # dropped; kept
    note = "temperature not sent: o3-mini does not take it."
    assert note in finished["message_html"]
    await comm.disconnect()
    row = await Message.objects.filter(chat=chat, role="assistant").alatest("id")
    assert row.notes == note
