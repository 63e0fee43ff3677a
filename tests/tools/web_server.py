"""Small HTTP/1.1 sites for the web fetch tests: a few lines of asyncio on a loopback address, in the
test's own event loop, answering canned replies by path and recording every request they get (so a test
can say a refused target was never contacted)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response's head is sent
    stall: bool = False  # send the head and half the body, then wait for the client to go away


@dataclass
class Site:
    host: str
    port: int = 0
    routes: dict[str, Reply] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers)
    client_left: asyncio.Event = field(default_factory=asyncio.Event)  # a stalled reply's client hung up

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect", 404: "Not Found"}


async def _answer(site: Site, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    line, *header_lines = head.decode("latin-1").split("\r\n")
    path = line.split(" ")[1]
    headers = {}
    for header in header_lines:
        if ":" in header:
            name, value = header.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    site.requests.append((path, headers))
    reply = site.routes.get(path.split("?", 1)[0], Reply(404, "no such page", "text/plain"))
    if reply.delay:
        await asyncio.sleep(reply.delay)
    body = reply.body.encode() if isinstance(reply.body, str) else reply.body
    lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Whatever')}", f"Content-Length: {len(body)}"]
    if reply.content_type:
        lines.append(f"Content-Type: {reply.content_type}")
    lines += [f"{k}: {v}" for k, v in reply.headers.items()]
    lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if reply.stall:
        writer.write(head_bytes + body[: len(body) // 2])
        await writer.drain()
        if await reader.read() == b"":
            site.client_left.set()
        return
    writer.write(head_bytes + body)
    await writer.drain()


@contextlib.asynccontextmanager
async def serve(routes: dict[str, Reply] | None = None, host: str = "127.0.0.1") -> AsyncIterator[Site]:
    """A site on ``host`` answering ``routes`` (path → reply; ``site.routes`` may be filled later)."""
    site = Site(host, routes=dict(routes or {}))

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _answer(site, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, host, 0)
    site.port = server.sockets[0].getsockname()[1]
    try:
        yield site
    finally:
        server.close()
