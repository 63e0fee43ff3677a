"""The tool-loop benchmark's upstream: a Chat Completions server on a real loopback socket (uvicorn in a
thread of its own) that answers a request with tool calls, and a request carrying their results with a
short text, and keeps its own clock of both ends of the gap the benchmark measures.

For every tool-call turn it notes the monotonic time just after it sent the turn's last chunk
(``data: [DONE]``), keyed by the turn's first call id; for every request that carries tool results, the
monotonic time it arrived (headers and body read), keyed by the first result's call id. The difference
is the time qtap took from the model's call to its next upstream request. Both clocks are read in the
server's thread, never in the site's code; so are the process's and this thread's CPU times at both
ends. The site runs in this process, one reply at a time: the process's CPU less the server thread's is
what the gap cost the site in CPU, a figure the machine's load does not stretch.

A module of helpers, not a benchmark (``python -m bench`` skips names with ``_``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from tests.chat.tool_support import ScriptedUpstream, _chunks
from tests.fakes.server import Receive, RecordedRequest, Send, _headers, respond

FINAL_TEXT = "Done."


class TimedUpstream(ScriptedUpstream):
    """Tool-call turns of ``calls`` parallel ``echo`` calls; the turn after them answers ``FINAL_TEXT``."""

    def __init__(self, calls: int = 1) -> None:
        super().__init__([{"text": FINAL_TEXT}])
        self.calls = calls
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # first call id -> the clocks when its turn's [DONE] was sent / the next request was read
        self.done_at: dict[str, tuple[float, float, float]] = {}
        self.arrived_at: dict[str, tuple[float, float, float]] = {}
        self.results_seen: dict[str, int] = {}  # first call id -> how many results that request carried
        self.chat_count = 0

    def reset(self) -> None:
        """Forget what earlier replies left (the requests too, so memory stays flat over a long run)."""
        with self._lock:
            self.done_at.clear()
            self.arrived_at.clear()
            self.results_seen.clear()
            self.requests.clear()
            self.chat_count = 0

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        arrived = _clocks()
        if not request.path.endswith("/chat/completions"):
            await respond(send, 200, {"object": "list", "data": [{"id": "tool-model", "object": "model"}]})
            return
        body = request.json or {}
        results = [m for m in body.get("messages", ()) if m.get("role") == "tool"]
        with self._lock:
            self.chat_count += 1
            if results:
                # The last turn's results are the trailing tool messages; the first of them names the turn.
                trailing = _trailing_tool_messages(body["messages"])
                key = trailing[0]["tool_call_id"]
                self.arrived_at.setdefault(key, arrived)
                self.results_seen[key] = len(trailing)
        if results:
            await self._stream(send, _chunks({"text": FINAL_TEXT}), key=None)
            return
        first = next(self._ids)
        calls = [
            (f"call_{first}_{i}", "echo", json.dumps({"text": f"c{self.calls} {first}.{i}"})) for i in range(self.calls)
        ]
        await self._stream(send, _chunks({"calls": calls}), key=calls[0][0])

    async def _stream(self, send: Send, chunks: list[bytes], *, key: str | None) -> None:
        """The chunks one by one (as an upstream sends them), noting the time once [DONE] is out."""
        await send({"type": "http.response.start", "status": 200, "headers": _headers("text/event-stream", None)})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if key is not None:
            sent = _clocks()
            with self._lock:
                self.done_at[key] = sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def gaps_ms(self) -> dict[str, tuple[float, float]]:
        """First call id -> milliseconds from its turn's [DONE] to the next request: wall-clock, and the CPU
        time the site spent meanwhile (this process's, less this server thread's own)."""
        with self._lock:
            gaps = {}
            for key, (wall, process, thread) in self.done_at.items():
                if key in self.arrived_at:
                    wall2, process2, thread2 = self.arrived_at[key]
                    gaps[key] = ((wall2 - wall) * 1000, ((process2 - process) - (thread2 - thread)) * 1000)
            return gaps


def _clocks() -> tuple[float, float, float]:
    """Monotonic time, this process's CPU time and this (server) thread's CPU time."""
    return time.monotonic(), time.process_time(), time.thread_time()


def _trailing_tool_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    return trailing[::-1]
