"""Sample attachments and small helpers shared by the native provider tests and benchmarks."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from providers.contract import Attachment, Finish, ReasoningDelta, StreamEvent, TextDelta, Usage
from providers.http import RetryPolicy

FAST_RETRY = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.05)


def png_bytes(size: tuple[int, int] = (4, 4), color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(size: tuple[int, int] = (4, 4), color: str = "blue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 100 100]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def image_attachment(name: str = "pelican.png") -> Attachment:
    return Attachment(name, "image/png", png_bytes())


def pdf_attachment(name: str = "report.pdf") -> Attachment:
    return Attachment(name, "application/pdf", PDF_BYTES)


class Collected:
    """Everything a stream yielded, in order, with the parts tests look at."""

    def __init__(self, events: list[StreamEvent]) -> None:
        self.events = events
        self.text = "".join(e.text for e in events if isinstance(e, TextDelta))
        self.reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        usages = [e for e in events if isinstance(e, Usage)]
        finishes = [e for e in events if isinstance(e, Finish)]
        assert len(usages) <= 1, f"more than one Usage: {usages}"
        assert len(finishes) == 1 and events[-1] is finishes[0], f"Finish must come once, last: {events[-5:]}"
        self.usage = usages[0] if usages else None
        self.finish = finishes[0].reason


async def collect(stream: AsyncIterator[StreamEvent]) -> Collected:
    return Collected([event async for event in stream])


def assert_no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text, f"the key leaked into: {text[:300]!r}"
    # a key's recognisable tail must not leak either
    for text in texts:
        assert secret[-12:] not in text


def debug_logging(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)


# ---- stopping early: the two ways a consumer stops a stream, and what the server must see --------


async def close_after_first_text(stream: AsyncIterator[StreamEvent]) -> None:
    """Read up to the first text, then close the generator (what the runner does on stop)."""
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]


async def cancel_after_first_text(stream: AsyncIterator[StreamEvent]) -> None:
    """Consume in a task and cancel it once text has arrived (what a cancelled generation does)."""
    first = asyncio.Event()

    async def consume() -> None:
        async for event in stream:
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def server_saw_disconnect(fake: Any, within: float = 1.0) -> bool:
    return await asyncio.to_thread(fake.disconnected.wait, within)
