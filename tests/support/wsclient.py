"""A websocket client for tests against a real server: signs in with a Django session cookie and
sends and receives the protocol's JSON frames with timeouts."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

TERMINAL = ("generation.finished", "generation.error")


def session_cookie(user: Any) -> str:
    """A ``Cookie`` header value for a signed-in session of ``user`` (sync: call through sync_to_async
    from async code). The session row is written to the current database."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def origin_of(ws_url: str) -> str:
    """The Origin a browser on that server's page would send."""
    return "http" + ws_url[2:].split("/ws/", 1)[0] if ws_url.startswith("ws") else ws_url


@dataclass
class Generation:
    """What one tab saw of one generation."""

    message_id: int | None = None
    started: dict[str, Any] | None = None
    deltas: list[dict[str, Any]] = field(default_factory=list)
    reasoning: list[dict[str, Any]] = field(default_factory=list)
    terminal: dict[str, Any] | None = None
    first_delta_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(d["text"] for d in self.deltas)

    @property
    def seqs(self) -> list[int]:
        return [d["seq"] for d in self.deltas]


class Tab:
    """What a browser tab does with the socket: send frames, read frames, follow a generation."""

    chat_id: int = 0

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def _send_text(self, text: str) -> None:
        raise NotImplementedError

    async def _recv_text(self, timeout: float) -> str:
        raise NotImplementedError

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self._send_text(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            raw = await self._recv_text(timeout)
        except TimeoutError:
            seen = [f.get("type") for f in self.received[-10:]]
            raise TimeoutError(f"no frame within {timeout} s; last frames seen: {seen}") from None
        frame = json.loads(raw)
        self.received.append(frame)
        return frame

    async def expect(self, kind: str | tuple[str, ...], timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Receive until a frame of ``kind`` (and with the ``match`` fields) arrives; answer it."""
        kinds = (kind,) if isinstance(kind, str) else kind
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kinds} frame within {timeout} s; saw {[f.get('type') for f in self.received]}")
            frame = await self.recv(left)
            if frame.get("type") in kinds and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def follow(self, message_id: int | None = None, timeout: float = 30.0) -> Generation:
        """Collect one generation's frames up to and including its terminal event.

        With ``message_id`` None the first ``generation.started`` (or terminal event) seen decides which
        generation. Frames of other generations are left in ``received``.
        """
        generation = Generation(message_id=message_id)
        deadline = time.monotonic() + timeout
        while generation.terminal is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"generation {generation.message_id} had no terminal event within {timeout} s "
                    f"({len(generation.deltas)} deltas)"
                )
            frame = await self.recv(left)
            kind = frame.get("type")
            if generation.message_id is None and kind in ("generation.started", *TERMINAL):
                generation.message_id = frame["message_id"]
            if generation.message_id is None or frame.get("message_id") != generation.message_id:
                continue
            if kind == "generation.started":
                generation.started = frame
            elif kind == "generation.delta":
                if generation.first_delta_at is None:
                    generation.first_delta_at = time.monotonic()
                generation.deltas.append(frame)
            elif kind == "generation.reasoning":
                generation.reasoning.append(frame)
            elif kind in TERMINAL:
                generation.terminal = frame
        return generation

    def frames(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [f for f in self.received if f.get("type") == kind and all(f.get(k) == v for k, v in match.items())]

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Read whatever arrives until the socket has been quiet for ``quiet`` seconds."""
        frames = []
        while await self._has_output(quiet):
            frames.append(await self.recv(quiet))
        return frames

    async def _has_output(self, timeout: float) -> bool:
        raise NotImplementedError


class WSClient(Tab):
    """A tab on a real server, over a real socket."""

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__()
        self.connection = connection
        self._pending: list[str] = []  # read by _has_output, not yet handed out

    @classmethod
    async def open(
        cls, url: str, *, cookie: str | None = None, origin: str | None = "auto", timeout: float = 10.0
    ) -> WSClient:
        """Connect; raises ``InvalidStatus`` when the handshake is refused."""
        headers = {"Cookie": cookie} if cookie else {}
        if origin == "auto":
            origin = origin_of(url)
        connection = await connect(
            url,
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]
            open_timeout=timeout,
            max_size=None,
            ping_interval=None,
            close_timeout=2,
        )
        client = cls(connection)
        if "/ws/chats/" in url:
            client.chat_id = int(url.split("/ws/chats/", 1)[1].split("/", 1)[0])
        return client

    async def _send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def _recv_text(self, timeout: float) -> str:
        if self._pending:
            return self._pending.pop(0)
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        return raw if isinstance(raw, str) else raw.decode()

    async def _has_output(self, timeout: float) -> bool:
        if self._pending:
            return True
        try:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            return False
        self._pending.append(raw if isinstance(raw, str) else raw.decode())
        return True

    async def closed_with(self, timeout: float = 10.0) -> int | None:
        """Wait for the server to close the socket; answer the close code."""
        try:
            while True:
                await asyncio.wait_for(self.connection.recv(), timeout)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None

    async def close(self) -> None:
        await self.connection.close()


class InProcessTab(Tab):
    """A tab on the ASGI application in this process (Channels' WebsocketCommunicator), with the
    same middleware stack as a served site: origin check, session auth, URL routing."""

    def __init__(self, communicator: Any) -> None:
        super().__init__()
        self.communicator = communicator

    @classmethod
    async def open(
        cls, chat_id: int, *, cookie: str | None, origin: str = "http://127.0.0.1", timeout: float = 10.0
    ) -> InProcessTab:
        from channels.testing import WebsocketCommunicator

        from qtap_site.asgi import application

        # A browser sends the server's Host with the page's Origin; the origin check compares them.
        headers = [(b"host", b"127.0.0.1"), (b"origin", origin.encode())]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(application, f"/ws/chats/{chat_id}/", headers=headers)
        connected, code = await communicator.connect(timeout=timeout)
        if not connected:
            raise ConnectionRefusedError(f"the socket was refused with {code}")
        tab = cls(communicator)
        tab.chat_id = chat_id
        return tab

    async def _send_text(self, text: str) -> None:
        # send_input, not send_to: a browser may send an empty text frame, send_to refuses one.
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def _recv_text(self, timeout: float) -> str:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            raise ConnectionError(f"the server closed the socket with {output.get('code')}")
        return str(output["text"])

    async def _has_output(self, timeout: float) -> bool:
        # receive_nothing leaves the application running; a timed-out receive_output would cancel it.
        return not await self.communicator.receive_nothing(timeout)

    async def close(self) -> None:
        await self.communicator.disconnect()


async def refusal(url: str, *, cookie: str | None = None, origin: str | None = "auto", timeout: float = 10.0) -> int:
    """How the server refuses a socket: the close code after accepting, or the handshake's HTTP status.

    Fails the test when the server keeps the socket open and sends data instead.
    """
    try:
        client = await WSClient.open(url, cookie=cookie, origin=origin, timeout=timeout)
    except InvalidStatus as exc:
        return exc.response.status_code
    try:
        raw = await asyncio.wait_for(client.connection.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else 1006
    await client.close()
    raise AssertionError(f"the socket was not refused; the server sent {raw[:200]!r}")
