"""Fault suite fixtures: the real ASGI application in this process, the real provider plugins, and
local provider servers on loopback that misbehave on cue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

from qtap_site.chat import delivery
from tests.support.fixtures import alice_cookie, chat_on_fake, close_worker_connections, scripted_openai

__all__ = [
    "alice_cookie",
    "chat_on_fake",
    "close_worker_connections",
    "fresh_channel_state",
    "scripted_openai",
]


@pytest.fixture(autouse=True)
def fresh_channel_state(close_worker_connections: None) -> Iterator[None]:
    # Each test has its own event loop: a fresh channel layer and no runner state left from another.
    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()
    yield
    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()
