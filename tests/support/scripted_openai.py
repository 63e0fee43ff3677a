"""An OpenAI-dialect chat server whose streams follow a script: how many tokens, how fast, and how the
stream ends (cleanly, dropped, stalled, malformed, truncated, or with an error event).

Built on ``tests.fakes.server.FakeProvider`` (real loopback socket, request recording, ``fail_next``
for status storms). The fault, scaled and security suites and the load benchmark drive it; the
protocol-fidelity fakes live in tests/fakes/.

Run standalone (the benchmark does, so the server has a CPU of its own):
``python -m tests.support.scripted_openai --port 0 --tokens 100 --delay 0.01`` prints ``port=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

Ending = Literal["stop", "drop", "stall", "malformed", "truncated", "error"]
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Script:
    tokens: int = 5
    delay: float = 0.0  # seconds between tokens
    first_delay: float = 0.0  # seconds before the first token (after the headers)
    end: Ending = "stop"
    stall_seconds: float = 30.0  # how long a "stall" keeps the connection silent
    error_message: str = "The server had an error while processing your request."

    def token(self, index: int) -> str:
        return f"w{index} "

    def text(self) -> str:
        return "".join(self.token(i) for i in range(self.tokens))


def _chunk(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


_PREFIX = b'data: {"id":"chatcmpl-scripted","object":"chat.completion.chunk","created":0,"model":"' + MODEL.encode()
_PREFIX += b'","choices":[{"index":0,"delta":{"content":'
_SUFFIX = b'},"finish_reason":null}]}\n\n'


def token_chunk(text: str) -> bytes:
    return _PREFIX + json.dumps(text).encode() + _SUFFIX


class ScriptedOpenAI(FakeProvider):
    """``/v1/chat/completions`` streams per ``script`` (or the next of ``queue``); ``/v1/models`` lists one model."""

    def __init__(self, script: Script | None = None) -> None:
        super().__init__()
        self.script = script or Script()
        self.queue: list[Script] = []
        self.streams_started = 0
        self.streams_finished = 0  # ran to their scripted end
        self.streams_cut = 0  # the client went away first
        self.active = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def next_script(self, script: Script) -> None:
        """Serve ``script`` to the next chat request only, then go back to ``self.script``."""
        self.queue.append(script)

    def _take_script(self) -> Script:
        with self._lock:
            return self.queue.pop(0) if self.queue else self.script

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if request.method == "GET" and request.path.endswith("/models"):
            await respond(send, 200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "qtap"}]})
            return
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            await respond(send, 404, {"error": {"message": f"no route {request.path}", "type": "not_found"}})
            return
        script = self._take_script()
        with self._lock:
            self.streams_started += 1
            self.active += 1
        try:
            completed = await self._stream(script, send, receive)
        finally:
            with self._lock:
                self.active -= 1
        with self._lock:
            if completed:
                self.streams_finished += 1
            else:
                self.streams_cut += 1

    async def _stream(self, script: Script, send: Send, receive: Receive) -> bool:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")],
            }
        )
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        try:
            if script.first_delay:
                await asyncio.wait([watcher], timeout=script.first_delay)
            for index in range(script.tokens):
                if watcher.done():
                    return False
                await send({"type": "http.response.body", "body": token_chunk(script.token(index)), "more_body": True})
                if script.delay:
                    await asyncio.wait([watcher], timeout=script.delay)
            if watcher.done():
                return False
            if script.end == "drop":
                # Raising after the headers makes the server close the connection mid-body.
                raise ConnectionAbortedError("scripted drop")
            if script.end == "stall":
                await asyncio.wait([watcher], timeout=script.stall_seconds)
                return False
            if script.end == "malformed":
                await send({"type": "http.response.body", "body": b'data: {"choices": [{"delta": ', "more_body": True})
                await send({"type": "http.response.body", "body": b"\n\n", "more_body": False})
                return True
            if script.end == "error":
                body = _chunk({"error": {"message": script.error_message, "type": "server_error", "code": None}})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return True
            tail = b""
            if script.end == "stop":
                tail = _chunk(
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": MODEL,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                )
                tail += _chunk(
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": MODEL,
                        "choices": [],
                        "usage": {
                            "prompt_tokens": 7,
                            "completion_tokens": script.tokens,
                            "total_tokens": 7 + script.tokens,
                        },
                    }
                )
                tail += b"data: [DONE]\n\n"
            # "truncated": the body simply ends, with no finish reason and no [DONE].
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            return True
        finally:
            watcher.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.01)
    args = parser.parse_args(argv)
    fake = ScriptedOpenAI(Script(tokens=args.tokens, delay=args.delay))
    if args.port:
        fake_port = args.port
        import uvicorn

        # A fixed port: serve in the foreground.
        print(f"port={fake_port}", flush=True)
        uvicorn.run(fake, host="127.0.0.1", port=fake_port, log_level="error", lifespan="off", access_log=False)
        return
    fake.start()
    print(f"port={fake.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    fake.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
