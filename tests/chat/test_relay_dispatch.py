"""Frames relayed through the channel layer (several processes) reach the socket without a trip to
the database thread, and a process's own frames are not delivered twice; every other message still
gets channels' stale-connection cleanup first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels import consumer as channels_consumer
from channels.layers import get_channel_layer

from qtap_site.chat.delivery import relay_event
from qtap_site.chat.models import chat_group_name
from tests.chat.conftest import open_socket, send

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
