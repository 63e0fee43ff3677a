"""A real Daphne process, a real websocket client, the OpenAI plugin and a local provider server."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.chat.fake_openai import VALID_KEY, ChatFake
from tests.chat.live_site import Daphne, provision, site_env


async def _until(ws, *types: str, timeout: float = 15) -> list[dict]:
    frames = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if frame["type"] in types:
                return frames


@pytest.fixture
def live(tmp_path):
    with ChatFake() as fake:
        env = site_env(tmp_path / "data")
        site = provision(env, base_url=fake.base_url, secret=VALID_KEY)
        with Daphne(env, tmp_path / "daphne.log") as daphne:
            yield fake, site, daphne


async def test_stream_and_stop_through_daphne(live):
    fake, site, daphne = live
    fake.tokens = [f"e{i} " for i in range(50)]
    chat_id = site["chat_ids"][0]
    headers = {"Cookie": f"sessionid={site['cookie']}"}
    async with connect(daphne.ws_url(chat_id), origin=daphne.origin, additional_headers=headers) as ws:
        state = json.loads(await ws.recv())
        assert state["type"] == "chat.state" and state["chat"]["id"] == chat_id
        await ws.send(json.dumps({"type": "message.send", "content": "Hello over the wire"}))
        frames = await _until(ws, "generation.finished", "generation.error")
        assert frames[-1]["type"] == "generation.finished"
        assert "".join(f["text"] for f in frames if f["type"] == "generation.delta") == fake.full_text
        assert frames[-1]["usage"] == {"input_tokens": 11, "output_tokens": 50}
        assert fake.requests[-1].json["messages"][-1]["content"] == "Hello over the wire"

        fake.tokens = [f"slow{i} " for i in range(500)]
        fake.stream_delay = 0.02
        await ws.send(json.dumps({"type": "message.send", "content": "Now slowly"}))
        await _until(ws, "generation.delta")
        await ws.send(json.dumps({"type": "generation.stop"}))
        frames = await _until(ws, "generation.finished", "generation.error", timeout=2)
        assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "cancelled"
        for _ in range(100):
            if fake.disconnected.is_set():
                break
            await asyncio.sleep(0.02)
        assert fake.disconnected.is_set()

    # A socket without the session cookie is closed with 4403.
    async with connect(daphne.ws_url(chat_id), origin=daphne.origin) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
