"""Bad frames, refused sockets and capacity limits: each answered precisely, the socket staying usable."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from providers.services import connection_profile_create
from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import (
    PLUGIN_NAME,
    TERMINAL,
    communicator,
    open_socket,
    png_bytes,
    receive_until,
    send,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def _expect_error(comm, frame, code: str) -> dict:
    if isinstance(frame, bytes):
        await comm.send_to(bytes_data=frame)
    else:
        await send(comm, frame)
    answer = await comm.receive_json_from(timeout=5)
    assert answer["type"] == "error", answer
    assert answer["code"] == code, answer
    assert answer["message"]
    # Still open and working.
    await send(comm, {"type": "ping"})
    assert (await comm.receive_json_from(timeout=5)) == {"type": "pong"}
    return answer


async def test_bad_frames(chat, cookie, settings):
    settings.QTAP_MAX_FRAME_BYTES = 1024
    comm, _ = await open_socket(chat.pk, cookie)
    await _expect_error(comm, "not json", "bad_request")
    await _expect_error(comm, "[1, 2]", "bad_request")
    await _expect_error(comm, {"no": "type"}, "bad_request")
    await _expect_error(comm, {"type": "message.explode"}, "bad_request")
    missing = await _expect_error(comm, {"type": "message.send"}, "bad_request")
    assert "content" in missing["message"]
    await _expect_error(comm, {"type": "message.send", "content": "x", "attachments": ["1"]}, "bad_request")
    await _expect_error(comm, {"type": "message.regenerate", "message_id": "7"}, "bad_request")
    await _expect_error(comm, {"type": "message.send", "content": "   "}, "bad_request")
    await _expect_error(comm, {"type": "image.generate", "prompt": ""}, "bad_request")
    await _expect_error(comm, b"\x00binary", "bad_request")
    await _expect_error(comm, json.dumps({"type": "message.send", "content": "x" * 2000}), "too_large")
    # Nothing was saved for any of them.
    assert await Message.objects.filter(chat=chat).acount() == 0
    await comm.disconnect()


async def test_other_users_things_are_not_found(chat, cookie, other_user, fake):
    theirs = await database_sync_to_async(attachment_create)(owner=other_user, filename="x.png", data=png_bytes())
    their_chat = await database_sync_to_async(chat_create)(user=other_user)
    their_profile = await database_sync_to_async(connection_profile_create)(
        user=other_user, name="Theirs", plugin=PLUGIN_NAME, model="m", base_url=fake.base_url
    )
    their_message = await Message.objects.acreate(chat=their_chat, role="assistant", content="secret")
    comm, _ = await open_socket(chat.pk, cookie)
    await _expect_error(comm, {"type": "message.send", "content": "x", "attachments": [theirs.pk]}, "not_found")
    await _expect_error(comm, {"type": "message.send", "content": "x", "attachments": [999999]}, "not_found")
    await _expect_error(comm, {"type": "message.send", "content": "x", "profile_id": their_profile.pk}, "not_found")
    await _expect_error(comm, {"type": "message.regenerate", "message_id": their_message.pk}, "not_found")
    await _expect_error(comm, {"type": "image.generate", "prompt": "cat", "image_profile_id": 999999}, "not_found")
    assert await Message.objects.filter(chat=chat).acount() == 0
    assert fake.requests == []
    await comm.disconnect()


async def _closed_with(comm) -> int:
    connected, _ = await comm.connect(timeout=5)
    if not connected:
        return -1
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_anonymous_and_foreign_sockets_are_refused(chat, other_user, cookie):
    assert await _closed_with(communicator(chat.pk)) == 4403
    other_cookie = await database_sync_to_async(session_cookie)(other_user)
    assert await _closed_with(communicator(chat.pk, other_cookie)) == 4403
    assert await _closed_with(communicator(999999, cookie)) == 4404
    # A foreign origin never reaches the consumer.
    assert await _closed_with(communicator(chat.pk, cookie, origin=b"https://evil.example")) == -1


async def test_busy_while_a_reply_is_running(chat, cookie, fake):
    fake.tokens = [f"b{i} " for i in range(200)]
    fake.stream_delay = 0.01
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "one"})
    await receive_until(comm, "generation.started")
    await send(comm, {"type": "message.send", "content": "two"})
    frames = await receive_until(comm, "error")
    assert frames[-1]["code"] == "busy"
    await send(comm, {"type": "generation.stop"})
    await receive_until(comm, *TERMINAL)
    assert await Message.objects.filter(chat=chat, role="user").acount() == 1
    await comm.disconnect()


async def test_per_user_limit(user, profile, cookie, fake, settings):
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 1
    fake.tokens = [f"r{i} " for i in range(200)]
    fake.stream_delay = 0.01
    first_chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    second_chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    first, _ = await open_socket(first_chat.pk, cookie)
    second, _ = await open_socket(second_chat.pk, cookie)
    await send(first, {"type": "message.send", "content": "one"})
    await receive_until(first, "generation.started")
    await send(second, {"type": "message.send", "content": "two"})
    frames = await receive_until(second, "error")
    assert frames[-1]["code"] == "rate_limited"
    await send(first, {"type": "generation.stop"})
    await receive_until(first, *TERMINAL)
    # Capacity is back.
    await send(second, {"type": "message.send", "content": "two again"})
    frames = await receive_until(second, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished"
    await first.disconnect()
    await second.disconnect()


async def test_live_generation_of_another_process_counts_stale_one_is_recovered(chat, cookie, fake):
    # A row another process is streaming (fresh heartbeat): this chat is busy, and it is reported.
    user_message = await Message.objects.acreate(chat=chat, role="user", content="q")
    live = await Message.objects.acreate(
        chat=chat, parent=user_message, role="assistant", status="streaming", content="part", seq=4,
        heartbeat_at=timezone.now(),
    )  # fmt: skip
    comm, state = await open_socket(chat.pk, cookie)
    assert state["generation"] == {"message_id": live.pk, "content": "part", "reasoning": "", "seq": 4}
    await _expect_error(comm, {"type": "message.send", "content": "x"}, "busy")
    await comm.disconnect()

    # Its process died: the heartbeat goes stale and the next connect marks it interrupted.
    await Message.objects.filter(pk=live.pk).aupdate(heartbeat_at=timezone.now() - timedelta(minutes=5))
    comm, state = await open_socket(chat.pk, cookie)
    assert state["generation"] is None
    assert state["messages_tail"][-1]["status"] == "interrupted"
    assert state["messages_tail"][-1]["content"] == "part"
    await send(comm, {"type": "message.send", "content": "again"})
    frames = await receive_until(comm, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished"
    await comm.disconnect()


def test_recover_interrupted_command(chat):
    from io import StringIO

    stale = Message.objects.create(
        chat=chat,
        role="assistant",
        status="streaming",
        content="half",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    fresh = Message.objects.create(chat=chat, role="assistant", status="streaming", heartbeat_at=timezone.now())
    out = StringIO()
    call_command("recover_interrupted", stdout=out)
    assert "1 interrupted reply recovered" in out.getvalue()
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == "interrupted" and stale.content == "half"
    assert fresh.status == "streaming"
