"""Frames relayed through the channel layer (several processes) reach the socket without a trip to
the database thread, and a process's own frames are not delivered twice; every other message still
gets channels' stale-connection cleanup first."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels import consumer as channels_consumer
from channels.layers import get_channel_layer

from qtap_site.chat.delivery import chat_group_name, relay_event
from tests.chat.conftest import open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


async def test_relayed_frames_skip_the_database_thread(chat: Any, cookie: str, monkeypatch: pytest.MonkeyPatch) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    trips: list[str] = []
    real = channels_consumer.aclose_old_connections

    async def counted() -> None:
        trips.append("cleanup")
        await real()

    monkeypatch.setattr(channels_consumer, "aclose_old_connections", counted)
    frames = [{"type": "generation.delta", "message_id": 7, "seq": seq, "text": f"t{seq}"} for seq in range(1, 6)]
    # A frame this process published itself was delivered directly; its copy from the layer is dropped.
    await get_channel_layer().group_send(chat_group_name(chat.pk), relay_event({"type": "generation.delta"}))
    for frame in frames:  # frames of a generation running in another process
        await get_channel_layer().group_send(chat_group_name(chat.pk), {**relay_event(frame), "origin": "elsewhere"})
    received = [json.loads(await comm.receive_from(timeout=2)) for _ in frames]
    assert received == frames
    assert trips == []

    await send(comm, {"type": "ping"})
    assert json.loads(await comm.receive_from(timeout=2)) == {"type": "pong"}
    assert trips == ["cleanup"], "a frame from the browser still closes stale connections first"
    await comm.disconnect()


async def test_the_next_message_right_after_the_end_is_not_refused_as_busy(
    chat: Any, cookie: str, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several processes the runner awaits the terminal frame's publish; a tab that answers the
    frame at once (it came directly) must find the chat free."""
    from qtap_site.chat import delivery

    layer = get_channel_layer()
    real_group_send = layer.group_send

    async def slow_group_send(group: str, message: dict[str, Any]) -> None:
        await asyncio.sleep(0.3)  # a slow Redis
        await real_group_send(group, message)

    monkeypatch.setattr(delivery, "single_process", lambda: False)
    monkeypatch.setattr(layer, "group_send", slow_group_send)
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    for turn in ("first", "second"):
        await send(comm, {"type": "message.send", "content": turn})
        frames = await receive_until(comm, "generation.finished", "generation.error", "error", timeout=10)
        assert frames[-1]["type"] == "generation.finished", frames[-1]
    await comm.disconnect()
