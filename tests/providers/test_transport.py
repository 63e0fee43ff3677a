"""The upstream transport: httpx's client API over aiohttp, against raw HTTP/1.1 servers on loopback.

Each server here is a few lines of asyncio speaking HTTP/1.1 by hand, so that every test controls the
bytes and the timing exactly (chunked bodies, a connection cut mid-body, a stall, a redirect).
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from providers.http import Timeouts, close_clients, get_client
from providers.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[tuple[str, int]]]]:
    """A loopback server; yields its base URL and the client address of every connection it took."""
    peers: list[tuple[str, int]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        server.close()
        await close_clients()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    if length := sum(lengths):
        await reader.readexactly(length)
    return head


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


TIMEOUTS = Timeouts(connect=2, read=0.5, write=2, pool=2)
EVENTS = [b'data: {"n": %d}\n\n' % i for i in range(50)]


async def test_a_chunked_stream_arrives_whole_and_the_connection_is_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            for event in EVENTS:
                writer.write(chunk(event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with serve(handler) as (base_url, peers):
        client = get_client(base_url, TIMEOUTS)
        for _ in range(2):
            async with client.stream("POST", f"{base_url}/v1/chat", json={"stream": True}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream"
                body = b"".join([part async for part in response.aiter_bytes()])
            assert body == b"".join(EVENTS)
        assert len(peers) == 1, "the second request went over the kept-alive connection"


async def test_closing_a_response_early_closes_the_connection() -> None:
    server_saw_eof = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunk(b"first"))
        await writer.drain()
        if await reader.read(1) == b"":
            server_saw_eof.set()

    async with serve(handler) as (base_url, _):
        client = get_client(base_url, TIMEOUTS)
        async with client.stream("GET", f"{base_url}/slow") as response:
            async for part in response.aiter_bytes():
                assert part == b"first"
                break
        await asyncio.wait_for(server_saw_eof.wait(), 2)


async def test_a_connection_cut_mid_body_is_a_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"partial"))
        await writer.drain()
        writer.transport.abort()

    async with serve(handler) as (base_url, _):
        client = get_client(base_url, TIMEOUTS)
        received = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("GET", f"{base_url}/") as response:
                async for part in response.aiter_bytes():
                    received.append(part)
        assert b"".join(received) == b"partial"


async def test_what_arrived_before_a_cut_is_read_even_when_the_reader_comes_late() -> None:
    """The body is read only after the server has sent five chunks and cut the connection (a reply whose
    call opened before its send was saved, a busy loop): the five chunks still come, then the error."""
    cut = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(EVENTS[0]))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"".join(chunk(event) for event in EVENTS[1:5]))
        await writer.drain()
        writer.transport.abort()
        cut.set()

    async with serve(handler) as (base_url, _):
        client = get_client(base_url, TIMEOUTS)
        received = []
        with pytest.raises(httpx.RemoteProtocolError):
            async with client.stream("GET", f"{base_url}/") as response:
                parts = response.aiter_bytes()
                received.append(await anext(parts))
                await cut.wait()
                await asyncio.sleep(0.1)  # the cut has reached the client before it reads on
                async for part in parts:
                    received.append(part)
        assert b"".join(received) == b"".join(EVENTS[:5])


async def test_a_stall_past_the_read_timeout_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"then nothing"))
        await writer.drain()
        await asyncio.sleep(5)

    async with serve(handler) as (base_url, _):
        client = get_client(base_url, TIMEOUTS)
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("GET", f"{base_url}/") as response:
                async for _ in response.aiter_bytes():
                    pass


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = get_client(f"http://127.0.0.1:{port}", TIMEOUTS)
    try:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
    finally:
        await close_clients()


async def test_redirects_are_not_followed_and_bodies_are_decoded_by_httpx() -> None:
    compressed = gzip.compress(b'{"ok": true}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if head.startswith(b"GET /moved"):
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(compressed))
            writer.write(compressed)
        await writer.drain()

    async with serve(handler) as (base_url, _):
        client = get_client(base_url, TIMEOUTS)
        moved = await client.get(f"{base_url}/moved")
        assert moved.status_code == 302 and moved.headers["location"] == "http://169.254.169.254/"
        plain = await client.get(f"{base_url}/json")
        assert plain.json() == {"ok": True}


def test_a_pool_left_on_a_closed_loop_is_dropped_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    transports: list[AiohttpTransport] = []

    async def request_and_leave_open() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = get_client(base_url, TIMEOUTS)
        assert (await client.get(base_url)).text == "ok"
        transports.append(client._transport)  # type: ignore[arg-type]
        server.close()  # the client's pool still holds the kept-alive connection

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(request_and_leave_open())
        asyncio.run(request_and_leave_open())  # its first get_client drops the first loop's pool
        assert transports[0]._session is None and transports[1]._session is not None
        AiohttpTransport.abandon_all()  # what happens at interpreter exit
        assert transports[1]._session is None
        transports.clear()
        gc.collect()
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]
