"""A real MCP server for the MCP plugin's tests: the ``mcp`` SDK's own ``MCPServer`` over Streamable HTTP,
served by uvicorn on a loopback port in a thread, behind a bearer token.

What it records is what the tests assert on, from the server's side: the headers of every request that
reached it (so a test sees the user's header arrive, and that nothing arrives when a call is refused), the
calls its tools ran, and whether the slow tool was cancelled or its client went away.

``with McpTestServer(token="t0ken") as server: ... server.url ... server.requests`` — ``stop()`` takes it
down (a test of a server that is down), ``start()`` brings it back on a fresh port.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ImageContent, TextContent

Scope = dict[str, Any]

TOKEN = "s3cret-token"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24  # not a picture anyone sees: only its size and type are read


@dataclass
class Seen:
    """The server side of the story: requests that passed the door, tool runs, the slow tool's fate."""

    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each request, lower-cased
    refused: list[dict[str, str]] = field(default_factory=list)  # requests turned away for their token
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    slow_started: threading.Event = field(default_factory=threading.Event)
    slow_cancelled: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)


def build_server(seen: Seen) -> MCPServer:
    server: MCPServer = MCPServer(name="qtap-test", instructions="A server the tests talk to.")

    @server.tool(description="Answer the text given, prefixed with 'echo: '.")
    def echo(text: str) -> str:
        seen.calls.append(("echo", {"text": text}))
        return f"echo: {text}"

    @server.tool(description="Add two whole numbers.")
    def add(a: int, b: int) -> int:
        seen.calls.append(("add", {"a": a, "b": b}))
        return a + b

    @server.tool(description="Answer a caption and a small picture.")
    def picture() -> list[TextContent | ImageContent]:
        seen.calls.append(("picture", {}))
        data = base64.b64encode(PNG_BYTES).decode()
        return [TextContent(text="a picture:"), ImageContent(data=data, mime_type="image/png")]

    @server.tool(description="Always fails, in words.")
    def broken() -> str:
        seen.calls.append(("broken", {}))
        raise ValueError("the broken tool broke, as it always does")

    @server.tool(description="Take a long time (until cancelled).")
    async def slow(seconds: float = 30.0) -> str:
        seen.calls.append(("slow", {"seconds": seconds}))
        seen.slow_started.set()
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            seen.slow_cancelled.set()
            raise
        return "finally done"

    return server


class _Door:
    """The ASGI app in front of the MCP app: a request without ``Authorization: Bearer <token>`` is
    answered 401 and goes no further; every request is recorded, and a dropped connection noticed."""

    def __init__(self, app: Any, token: str, seen: Seen) -> None:
        self._app = app
        self._token = token
        self._seen = seen

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("authorization") != f"Bearer {self._token}":
            self._seen.refused.append(headers)
            body = b'{"error": "invalid_token", "error_description": "a valid bearer token is required"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self._seen.requests.append(headers)

        async def watching_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._seen.disconnected.set()
            return dict(message)

        await self._app(scope, watching_receive, send)


class McpTestServer:
    def __init__(self, *, token: str = TOKEN, path: str = "/mcp") -> None:
        self.token = token
        self.path = path
        self.seen = Seen()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def requests(self) -> list[dict[str, str]]:
        return self.seen.requests

    def start(self) -> McpTestServer:
        app = build_server(self.seen).streamable_http_app(streamable_http_path=self.path)
        config = uvicorn.Config(
            _Door(app, self.token, self.seen),
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="on",  # the SDK's session manager runs in the app's lifespan
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="McpTestServer", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # open SSE streams must not hold the test up
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> McpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def wait_for(event: threading.Event, timeout: float) -> bool:
    """Wait for a server-side event without blocking the test's event loop."""
    deadline = time.monotonic() + timeout
    while not event.is_set():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
