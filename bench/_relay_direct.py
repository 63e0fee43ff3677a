"""The relay benchmark's direct arms: bare httpx and bare aiohttp clients reading the local upstream,
each released at once, timing the first token and counting tokens (``relay`` compares the site with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx

from bench._common import CPU
from tests.chat.fake_openai import VALID_KEY

BODY = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "go"}]}
HEADERS = {"Authorization": f"Bearer {VALID_KEY}"}


class Tally:
    """Time to first token and tokens counted, from the JSON chunks of one stream."""

    def __init__(self) -> None:
        self.sent = time.perf_counter()
        self.first: float | None = None
        self.tokens = 0

    def chunk(self, data: str | bytes) -> None:
        for choice in json.loads(data).get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                if self.first is None:
                    self.first = time.perf_counter()
                self.tokens += text.count(" ")

    def result(self) -> tuple[float, int]:
        return ((self.first or time.perf_counter()) - self.sent) * 1000, self.tokens


async def direct_client(client: httpx.AsyncClient, base_url: str, start: asyncio.Event) -> tuple[float, int]:
    await start.wait()
    tally = Tally()
    async with client.stream("POST", f"{base_url}/chat/completions", json=BODY, headers=HEADERS) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                tally.chunk(line[6:])
    return tally.result()


async def run_direct(base_url: str, n: int, cpu: CPU | None = None) -> tuple[list[tuple[float, int]], float]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(limits=limits, timeout=120, trust_env=False) as client:
        await direct_client(client, base_url, _set(asyncio.Event()))  # warm the pool
        start = asyncio.Event()
        tasks = [asyncio.create_task(direct_client(client, base_url, start)) for _ in range(n)]
        await asyncio.sleep(0.05)
        results, wall = await release_all(start, tasks, cpu)
    return results, wall


# ---- direct with aiohttp: the faster client the site itself uses upstream --------------------------


async def aiohttp_client(session: Any, base_url: str, start: asyncio.Event) -> tuple[float, int]:
    await start.wait()
    tally = Tally()
    rest = b""
    async with session.post(f"{base_url}/chat/completions", json=BODY, headers=HEADERS) as response:
        while chunk := await response.content.readany():
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    tally.chunk(line[6:])
    return tally.result()


async def run_direct_aiohttp(base_url: str, n: int) -> tuple[list[tuple[float, int]], float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=n + 10)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await aiohttp_client(session, base_url, _set(asyncio.Event()))  # warm the pool
        start = asyncio.Event()
        tasks = [asyncio.create_task(aiohttp_client(session, base_url, start)) for _ in range(n)]
        await asyncio.sleep(0.05)
        results, wall = await release_all(start, tasks, None)
    return results, wall


async def release_all(start: asyncio.Event, tasks: list[asyncio.Task[Any]], cpu: CPU | None) -> tuple[list[Any], float]:
    """Let every waiting client go at once; their results and the wall time until the last one ended."""
    with cpu or contextlib.nullcontext():
        began = time.perf_counter()
        start.set()
        results = await asyncio.gather(*tasks)
        return list(results), time.perf_counter() - began


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event
