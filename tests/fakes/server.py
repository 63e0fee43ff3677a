"""The base of the local provider test servers: a raw ASGI app served by uvicorn on a real
loopback socket, in a thread, recording every request and able to inject faults.

Each protocol's fake subclasses ``FakeProvider`` and implements ``handle``. Tests use
``with FakeX() as fake: ... fake.base_url ... fake.requests[-1].json``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] | None = None  # the connection it came on (keep-alive checks)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    """A canned answer served instead of the normal one, ``times`` times."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    content_type: str = "application/json"


class ClientDisconnected(Exception):
    pass


class FakeProvider:
    """Subclasses implement ``handle(request, send, receive)`` for the non-fault path."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.disconnected = threading.Event()
        self.stream_delay = 0.0  # seconds between streamed chunks
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=0,
            log_level="error",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=type(self).__name__, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL a plugin is given; subclasses add their path prefix."""
        return self.origin

    # -- fault injection ------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        body: bytes | str | dict[str, Any] = b"",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        content_type: str = "application/json",
    ) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.faults.append(Fault(status, body, headers or {}, times, content_type))

    def _take_fault(self) -> Fault | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.faults.pop(0)
        return fault

    # -- ASGI -------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = tuple(scope["client"]) if scope.get("client") else None
        request = RecordedRequest(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            headers,
            body,
            client,  # type: ignore[arg-type]
        )
        self.requests.append(request)
        fault = self._take_fault()
        if fault is not None:
            await respond(send, fault.status, fault.body, content_type=fault.content_type, headers=fault.headers)
            return
        await self.handle(request, send, receive)

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        raise NotImplementedError

    # -- streaming helpers ------------------------------------------------------------------------

    async def stream_chunks(
        self,
        send: Send,
        receive: Receive,
        chunks: Iterable[bytes],
        *,
        content_type: str = "text/event-stream; charset=utf-8",
        headers: dict[str, str] | None = None,
        delay: float | None = None,
        drop_after: int | None = None,
    ) -> None:
        """Send ``chunks`` as a streamed 200 response, noticing when the client goes away.

        ``drop_after=n`` closes the connection abruptly after n chunks (a provider dying mid-stream).
        """
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _headers(content_type, headers),
            }
        )
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        pause = self.stream_delay if delay is None else delay
        try:
            for index, chunk in enumerate(chunks):
                if drop_after is not None and index >= drop_after:
                    raise ClientDisconnected("dropping the connection on purpose")
                if watcher.done():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if pause:
                    await asyncio.wait([watcher], timeout=pause)
            if not watcher.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                return


def _headers(content_type: str, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    pairs = [(b"content-type", content_type.encode())]
    for key, value in (extra or {}).items():
        pairs.append((key.lower().encode(), value.encode()))
    return pairs


async def respond(
    send: Send,
    status: int,
    body: bytes | str | dict[str, Any] | list[Any],
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    await send({"type": "http.response.start", "status": status, "headers": _headers(content_type, headers)})
    await send({"type": "http.response.body", "body": body})
