"""Fixtures of the chat tests: a local OpenAI-dialect server, a test plugin, a profile, a chat, and
websocket communicators on the real ASGI application with session-cookie auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from providers.registry import registry
from providers.services import api_key_create, connection_profile_create, image_profile_create
from qtap_site.chat import delivery
from qtap_site.chat.services import chat_create
from tests.chat.fake_openai import VALID_KEY, ChatFake
from tests.support.data import CHAT_COMPLETIONS

HOST = b"127.0.0.1"
ORIGIN = b"http://127.0.0.1"
PLUGIN_NAME = "qtap-plugin-openai"
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def fresh_channel_state() -> Iterator[None]:
    # Each test runs on its own event loop: start with a fresh in-memory layer and no runner state.
    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()
    yield
    channel_layers.backends.pop("default", None)
    delivery._running.clear()


@pytest.fixture
def plugin() -> Any:
    """The bundled OpenAI plugin, talking to the local OpenAI-dialect server."""
    return registry.get(PLUGIN_NAME)


@pytest.fixture
def fake() -> Iterator[ChatFake]:
    with ChatFake() as server:
        yield server


@pytest.fixture
def api_key(user, plugin):
    return api_key_create(user=user, plugin=PLUGIN_NAME, label="test", secret=VALID_KEY)


@pytest.fixture
def profile(user, plugin, api_key, fake):
    return connection_profile_create(
        user=user, name="Test", plugin=PLUGIN_NAME, model=MODEL, api_key=api_key, base_url=fake.base_url,
        parameters=CHAT_COMPLETIONS,
    )  # fmt: skip


@pytest.fixture
def image_profile(user, plugin, api_key, fake):
    return image_profile_create(
        user=user, name="Pictures", plugin=PLUGIN_NAME, model="dall-e-3", api_key=api_key, base_url=fake.base_url,
        is_default=True,
    )  # fmt: skip


@pytest.fixture
def chat(user, profile):
    return chat_create(user=user, profile=profile, system_prompt="Be brief.")


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def cookie(user) -> str:
    return session_cookie(user)


def communicator(chat_id: int, cookie: str | None = None, *, origin: bytes = ORIGIN) -> WebsocketCommunicator:
    from qtap_site.asgi import application

    headers = [(b"host", HOST), (b"origin", origin)]  # a browser sends both; the origin check needs both
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/chats/{chat_id}/", headers=headers)


async def open_socket(chat_id: int, cookie: str) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Connect and read the chat.state frame."""
    comm = communicator(chat_id, cookie)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    state = await comm.receive_json_from(timeout=5)
    assert state["type"] == "chat.state"
    return comm, state


async def send(comm: WebsocketCommunicator, frame: dict[str, Any] | str) -> None:
    await comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))


async def receive_until(comm: WebsocketCommunicator, *types: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Frames up to and including the first one whose type is in ``types``."""
    frames: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"no {types} within {timeout}s; got {[f['type'] for f in frames]}")
        frame = await comm.receive_json_from(timeout=remaining)
        frames.append(frame)
        if frame["type"] in types:
            return frames


def deltas(frames: list[dict[str, Any]], kind: str = "generation.delta") -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == kind]


TERMINAL = ("generation.finished", "generation.error")


def png_bytes(size: tuple[int, int] = (4, 4), colour: str = "red") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()
