"""The chat socket as Daphne serves it, over a real loopback connection: frame size limits and the
origin check, as a browser meets them.

SPEC §5: a frame over QTAP_MAX_FRAME_BYTES (256 KiB) answers ``error too_large`` and the socket stays
open; one over Daphne's own 1 MiB message cap closes the socket with 1009 (message too big), a close
frame the client can read, not a dropped connection (1006).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.support.data import ChatSetup
from tests.support.processes import DaphneProcess, daphne_processes
from tests.support.wsclient import WSClient, refusal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

MIB = 1024 * 1024


@pytest.fixture
def daphne(chat_on_fake: ChatSetup) -> Iterator[DaphneProcess]:
    with daphne_processes(1) as (server,):
        yield server


def chat_url(server: DaphneProcess, setup: ChatSetup) -> str:
    return server.ws_url(f"/ws/chats/{setup.chat.pk}/")


def oversized(size: int) -> str:
    frame = json.dumps({"type": "message.send", "content": ""})
    return frame.replace('""', '"' + "x" * (size - len(frame) + 2) + '"')


def test_a_frame_over_one_mib_closes_the_socket_with_1009(
    daphne: DaphneProcess, chat_on_fake: ChatSetup, alice_cookie: str
) -> None:
    async def scenario() -> int | None:
        tab = await WSClient.open(chat_url(daphne, chat_on_fake), cookie=alice_cookie)
        await tab.expect("chat.state")
        await tab.send(oversized(3 * MIB // 2))
        return await tab.closed_with(timeout=10)

    assert asyncio.run(scenario()) == 1009
    assert daphne.alive()
    assert "Traceback" not in daphne.logs()


def test_a_frame_over_the_frame_limit_but_under_one_mib_is_too_large_and_the_socket_stays_open(
    daphne: DaphneProcess, chat_on_fake: ChatSetup, alice_cookie: str
) -> None:
    async def scenario() -> None:
        tab = await WSClient.open(chat_url(daphne, chat_on_fake), cookie=alice_cookie)
        await tab.expect("chat.state")
        for size in (256 * 1024 + 1, MIB - 64):
            await tab.send(oversized(size))
            answer = await tab.recv(timeout=10)
            assert answer["type"] == "error" and answer["code"] == "too_large", answer
            await tab.send({"type": "ping"})
            assert await tab.recv(timeout=10) == {"type": "pong"}
        await tab.close()

    asyncio.run(scenario())


def test_the_origin_check_compares_scheme_host_and_port_of_the_real_handshake(
    daphne: DaphneProcess, chat_on_fake: ChatSetup, alice_cookie: str
) -> None:
    url = chat_url(daphne, chat_on_fake)
    other_port = daphne.port + 1 if daphne.port < 65535 else daphne.port - 1

    async def scenario() -> None:
        tab = await WSClient.open(url, cookie=alice_cookie)  # the page's own origin
        assert (await tab.expect("chat.state"))["chat"]["id"] == chat_on_fake.chat.pk
        await tab.close()
        for origin in (
            f"http://127.0.0.1:{other_port}",
            f"http://localhost:{other_port}",
            f"https://127.0.0.1:{daphne.port}",
            f"http://localhost:{daphne.port}",
            "http://127.0.0.1",
            "https://evil.example",
        ):
            assert await refusal(url, cookie=alice_cookie, origin=origin) == 403, origin

    asyncio.run(scenario())
