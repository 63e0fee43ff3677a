"""Faults that happen after a stream has started (HTTP 200 already sent), shared by the native fakes.

A fake builds the normal list of chunks and hands it to ``send_stream`` with the fault the test asked
for; the fault decides what the client sees: a chunk that is not valid JSON, the provider's own
mid-stream error, a clean but early end, the connection cut, or a stall longer than the client's read timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from tests.fakes.server import FakeProvider, Receive, Send, _headers

FaultKind = Literal["malformed", "drop", "error", "truncate", "stall"]


@dataclass
class StreamFault:
    kind: FaultKind
    after: int = 1  # normal chunks sent before the fault
    seconds: float = 3.0  # length of a stall


async def send_stream(
    fake: FakeProvider,
    send: Send,
    receive: Receive,
    chunks: list[bytes],
    *,
    content_type: str,
    fault: StreamFault | None = None,
    malformed: bytes = b"",
    error: bytes = b"",
    headers: dict[str, str] | None = None,
    delay: float | None = None,
) -> None:
    if fault is None:
        await fake.stream_chunks(send, receive, chunks, content_type=content_type, headers=headers, delay=delay)
    elif fault.kind == "malformed":
        spoiled = [*chunks[: fault.after], malformed, *chunks[fault.after :]]
        await fake.stream_chunks(send, receive, spoiled, content_type=content_type, headers=headers, delay=delay)
    elif fault.kind == "error":
        # The provider reports the failure in-band and ends the response cleanly.
        cut = [*chunks[: fault.after], error]
        await fake.stream_chunks(send, receive, cut, content_type=content_type, headers=headers, delay=delay)
    elif fault.kind == "truncate":
        # A clean end of the response before the provider said it was done.
        cut = chunks[: fault.after]
        await fake.stream_chunks(send, receive, cut, content_type=content_type, headers=headers, delay=delay)
    elif fault.kind == "drop":
        await fake.stream_chunks(
            send, receive, chunks, content_type=content_type, headers=headers, delay=delay, drop_after=fault.after
        )
    else:
        await _stall(fake, send, receive, chunks, content_type, headers, fault)


async def _stall(
    fake: FakeProvider,
    send: Send,
    receive: Receive,
    chunks: list[bytes],
    content_type: str,
    headers: dict[str, str] | None,
    fault: StreamFault,
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": _headers(content_type, headers)})
    watcher = asyncio.ensure_future(fake._watch_disconnect(receive))
    try:
        for chunk in chunks[: fault.after]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.wait([watcher], timeout=fault.seconds)
        if watcher.done():
            return
        for chunk in chunks[fault.after :]:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
