"""A server-sent-events parser working on the response's bytes.

It follows the WHATWG event-stream rules exactly as ``httpx_sse`` applies them (lines end at CRLF,
CR or LF; ``:`` lines are comments; ``data`` lines are joined with newlines; the last event id is
kept across events) and yields the same ``ServerSentEvent`` objects. It exists because it is
cheaper: ``httpx_sse`` stacks three async generators (text decoding, line splitting, event
decoding) over ``aiter_bytes``; here one loop splits the bytes into lines and decodes only complete
lines. Profiled in the relay benchmark, that halved the parsing cost per streamed token.

May import: nothing of qtap's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import httpx
from httpx_sse import ServerSentEvent, SSEError


def check_content_type(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "").partition(";")[0]
    if "text/event-stream" not in content_type:
        raise SSEError(f"Expected response header Content-Type to contain 'text/event-stream', got {content_type!r}")


class SSEParser:
    """Feed it bytes as they arrive; it answers the events they complete."""

    def __init__(self) -> None:
        self.rest = b""  # an incomplete last line (may end with a CR whose LF is still to come)
        self.event = ""
        self.data: list[str] = []
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buffer = self.rest + chunk if self.rest else chunk
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF split across reads: keep it.
            held = b"\r" if buffer.endswith(b"\r") else b""
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        lines = buffer.split(b"\n")
        self.rest = lines.pop()
        return self._lines(lines)

    def close(self) -> list[ServerSentEvent]:
        """The end of the body: an unterminated last line still counts as a line."""
        rest, self.rest = self.rest, b""
        return self._lines([rest.rstrip(b"\r")]) if rest else []

    def _lines(self, lines: Iterable[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        for raw in lines:
            if not raw:
                if self.event or self.data or self.last_event_id or self.retry is not None:
                    events.append(ServerSentEvent(self.event, "\n".join(self.data), self.last_event_id, self.retry))
                    self.event, self.data, self.retry = "", [], None
                continue
            line = raw.decode("utf-8", "replace")
            if line[0] == ":":
                continue  # a comment (keep-alive)
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value
            elif name == "id":
                if "\0" not in value:
                    self.last_event_id = value
            elif name == "retry":
                with contextlib.suppress(ValueError):  # a malformed retry is ignored, as the spec says
                    self.retry = int(value)
        return events
