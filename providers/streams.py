"""Reading a streamed response: server-sent events (``iter_sse``, ``sse_json``), NDJSON lines
(``iter_ndjson``) and ``drain``, with every stream failure (a stall, a dropped connection, a body that
is no event stream) raised as a ProviderError.

May import: ``providers.errors``, ``providers.sse`` (the parser). Plugins import these names from
``providers.http``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError

from providers import errors, sse


@asynccontextmanager
async def _stream_failures(provider: str, read_timeout: float | None) -> AsyncIterator[None]:
    try:
        yield
    except httpx.ReadTimeout:
        raise errors.ProviderTimeoutError(provider, f"the stream stalled: no data for {read_timeout} s") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise errors.ProtocolError(provider, f"the connection closed mid-stream ({type(exc).__name__})") from None
    except SSEError as exc:
        raise errors.ProtocolError(provider, f"not an event stream: {exc}") from None


async def iter_sse(response: httpx.Response, *, provider: str) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events as the official SDKs parse them (comments skipped, data lines joined)."""
    read_timeout = response.request.extensions.get("timeout", {}).get("read")
    async with _stream_failures(provider, read_timeout):
        # The parsing loop is here rather than in a generator of its own: one async generator
        # fewer between the socket and the relay, per event.
        sse.check_content_type(response)
        parser = sse.SSEParser()
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
        for event in parser.close():
            yield event


def sse_json(event: ServerSentEvent, *, provider: str) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise errors.ProtocolError(provider, f"malformed JSON in stream event: {event.data[:200]!r}") from None


async def iter_ndjson(response: httpx.Response, *, provider: str) -> AsyncIterator[Any]:
    """One JSON value per line (Ollama's native stream)."""
    read_timeout = response.request.extensions.get("timeout", {}).get("read")
    async with _stream_failures(provider, read_timeout):
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                raise errors.ProtocolError(provider, f"malformed JSON line in stream: {line[:200]!r}") from None


async def drain(rest: AsyncIterator[Any], limit: float = 1.0) -> None:
    """Read what is left of a finished stream (normally just the end of the body) so the connection
    goes back to the pool instead of being closed: the next request then skips the TCP and TLS
    handshakes. A server that keeps the body open is given ``limit`` seconds, then cut off."""
    try:
        async with asyncio.timeout(limit):
            async for _ in rest:
                pass
    except (TimeoutError, errors.ProviderError):
        pass
