"""Stopping a reply, and every way a generation can fail: one terminal event each time, text kept."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from providers.models import ConnectionProfile
from providers.plugin_state import plugin_set_enabled
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import PLUGIN_NAME, TERMINAL, deltas, open_socket, receive_until, send
from tests.support.data import CHAT_COMPLETIONS

pytestmark = pytest.mark.django_db(transaction=True)


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _terminal_count(frames) -> int:
    return sum(1 for f in frames if f["type"] in TERMINAL)


async def test_stop_cancels_upstream_and_keeps_partial_text(chat, cookie, fake):
    fake.tokens = [f"s{i} " for i in range(400)]
    fake.stream_delay = 0.02
    comm, _ = await open_socket(chat.pk, cookie)
    other, _ = await open_socket(chat.pk, cookie)  # the stop may come from any tab
    await send(comm, {"type": "message.send", "content": "Talk slowly"})
    frames = await receive_until(comm, "generation.delta")
    while len(deltas(frames)) < 3:
        frames.append(await comm.receive_json_from(timeout=5))
    message_id = frames[-1]["message_id"]

    stopped_at = time.monotonic()
    await send(other, {"type": "generation.stop", "message_id": message_id})
    frames += await receive_until(comm, *TERMINAL, timeout=2)
    elapsed = time.monotonic() - stopped_at
    finished = frames[-1]
    assert finished["type"] == "generation.finished" and finished["finish_reason"] == "cancelled"
    assert elapsed < 0.3, f"stop took {elapsed * 1000:.0f} ms"
    assert _terminal_count(frames) == 1
    await _wait_for(fake.disconnected.is_set, timeout=2)  # the upstream response was closed

    partial = "".join(f["text"] for f in deltas(frames))
    assert partial and fake.full_text.startswith(partial) and partial != fake.full_text
    message = await Message.objects.aget(pk=message_id)
    assert message.status == "cancelled" and message.finish_reason == "cancelled"
    assert message.content == partial
    assert await comm.receive_nothing(timeout=0.2)  # no further frames after the terminal one
    await comm.disconnect()
    await other.disconnect()


async def test_stop_without_message_id_and_when_idle(chat, cookie, fake):
    fake.tokens = [f"x{i} " for i in range(300)]
    fake.stream_delay = 0.02
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "generation.stop"})  # nothing running: ignored, socket fine
    await send(comm, {"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    await send(comm, {"type": "message.send", "content": "Go"})
    await receive_until(comm, "generation.delta")
    await send(comm, {"type": "generation.stop"})
    frames = await receive_until(comm, *TERMINAL, timeout=2)
    assert frames[-1]["finish_reason"] == "cancelled"
    await comm.disconnect()


async def _run_and_collect(chat, cookie, content: str = "Hi", **extra):
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": content, **extra})
    frames = await receive_until(comm, *TERMINAL, timeout=15)
    assert await comm.receive_nothing(timeout=0.1)
    await comm.disconnect()
    assert _terminal_count(frames) == 1
    return frames


async def test_bad_key_is_an_authentication_error(user, plugin, fake, cookie):
    key = await database_sync_to_async(api_key_create)(
        user=user, plugin=PLUGIN_NAME, label="bad", secret="sk-wrong-key-000"
    )
    profile = await database_sync_to_async(connection_profile_create)(
        user=user,
        name="Bad",
        plugin=PLUGIN_NAME,
        model="m",
        api_key=key,
        base_url=fake.base_url,
        parameters=CHAT_COMPLETIONS,
    )
    chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    frames = await _run_and_collect(chat, cookie)
    error = frames[-1]
    assert error["type"] == "generation.error"
    assert error["code"] == "authentication" and error["retryable"] is False
    assert "Incorrect API key" in error["message"] and "sk-wrong" not in error["message"]
    message = await Message.objects.aget(pk=error["message_id"])
    assert message.status == "error" and message.error_code == "authentication"


async def test_rate_limit_after_retries(chat, cookie, fake):
    fake.fail_next(
        429,
        {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
        headers={"retry-after-ms": "10"},
        times=3,
    )
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["type"] == "generation.error"
    assert frames[-1]["code"] == "rate_limited" and frames[-1]["retryable"] is True
    assert len(fake.requests) == 3  # the first try and two retries


async def test_retry_then_success(chat, cookie, fake):
    fake.fail_next(503, {"error": {"message": "busy"}}, headers={"retry-after-ms": "10"})
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["type"] == "generation.finished"
    assert "".join(f["text"] for f in deltas(frames)) == fake.full_text


async def test_drop_mid_stream_keeps_partial_text(chat, cookie, fake):
    fake.tokens = [f"d{i} " for i in range(20)]
    fake.drop_after = 6  # the role chunk and five tokens
    frames = await _run_and_collect(chat, cookie)
    error = frames[-1]
    assert error["type"] == "generation.error" and error["code"] == "protocol"
    partial = "".join(f["text"] for f in deltas(frames))
    assert partial == "d0 d1 d2 d3 d4 "
    message = await Message.objects.aget(pk=error["message_id"])
    assert message.status == "error" and message.content == partial


async def test_stream_ending_without_finish_is_an_error(chat, cookie, fake):
    fake.no_finish = True
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["type"] == "generation.error" and frames[-1]["code"] == "protocol"
    message = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert message.content == fake.full_text


async def test_no_profile(user, cookie):
    chat = await database_sync_to_async(chat_create)(user=user)
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["type"] == "generation.error" and frames[-1]["code"] == "no_profile"
    assert [f["message"]["role"] for f in frames if f["type"] == "message.created"] == ["user", "assistant"]


async def test_missing_api_key(user, plugin, fake, cookie):
    profile = await database_sync_to_async(connection_profile_create)(
        user=user, name="Keyless", plugin=PLUGIN_NAME, model="m", base_url=fake.base_url
    )
    chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["code"] == "missing_api_key"
    assert fake.requests == []


async def test_disabled_plugin(chat, cookie, fake):
    await database_sync_to_async(plugin_set_enabled)(name=PLUGIN_NAME, enabled=False)
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["code"] == "provider_unavailable" and "disabled" in frames[-1]["message"]
    assert fake.requests == []


async def test_unknown_plugin(user, cookie):
    profile = await ConnectionProfile.objects.acreate(user=user, name="Gone", plugin="qtap-plugin-gone", model="m")
    chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    frames = await _run_and_collect(chat, cookie)
    assert frames[-1]["code"] == "provider_unavailable" and "qtap-plugin-gone" in frames[-1]["message"]


async def test_unsupported_attachment_is_refused_before_any_network(chat, user, cookie, fake):
    from qtap_site.chat.attachments import attachment_create

    # OpenAI takes images and PDFs, not text files: the send is refused before anything is saved.
    attachment = await database_sync_to_async(attachment_create)(owner=user, filename="doc.txt", data=b"notes")
    assert attachment.mime_type == "text/plain"
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Read this", "attachments": [attachment.pk]})
    frames = await receive_until(comm, "error", *TERMINAL, timeout=15)
    await comm.disconnect()
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "unsupported_attachment"
    assert "doc.txt" in frames[-1]["message"]
    assert not await Message.objects.filter(chat=chat).aexists()
    assert fake.requests == []


async def test_stop_through_the_control_group_reaches_the_owning_task(chat, cookie, fake):
    """How a stop from another process arrives: a generation.cancel on the chat's control group,
    received by this process's listener, which cancels the task it owns."""
    from channels.layers import get_channel_layer

    from qtap_site.chat.delivery import control_group_name

    fake.tokens = [f"c{i} " for i in range(400)]
    fake.stream_delay = 0.02
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Go"})
    frames = await receive_until(comm, "generation.delta")
    await get_channel_layer().group_send(
        control_group_name(chat.pk), {"type": "generation.cancel", "chat_id": chat.pk, "message_id": None}
    )
    frames += await receive_until(comm, *TERMINAL, timeout=2)
    assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "cancelled"
    await _wait_for(fake.disconnected.is_set, timeout=2)
    message = await Message.objects.aget(pk=frames[-1]["message_id"])
    assert message.status == "cancelled"
    await comm.disconnect()


async def test_deleting_a_chat_stops_the_reply_being_written_for_it(chat, cookie, fake, user):
    from django.test import Client

    fake.tokens = [f"d{i} " for i in range(400)]
    fake.stream_delay = 0.02
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Write a lot"})
    await receive_until(comm, "generation.delta")

    def delete_from_the_chat_list() -> int:
        client = Client()
        client.force_login(user)
        return client.post(f"/chats/{chat.pk}/delete/").status_code

    assert await database_sync_to_async(delete_from_the_chat_list)() == 302
    frames = await receive_until(comm, *TERMINAL, timeout=3)
    assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "cancelled"
    await _wait_for(fake.disconnected.is_set, timeout=2)
    assert not await Message.objects.filter(chat_id=chat.pk).aexists()
    await comm.disconnect()
