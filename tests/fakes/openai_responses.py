"""A local server speaking the OpenAI Responses API (``POST {base}/responses``), for OpenAI and xAI.

It is ``FakeOpenAI`` (same flavours, error bodies, key check, ``/models``, ``/api-key`` and
``/chat/completions``) plus the Responses endpoint, so one fake answers a plugin on either API::

    from tests.fakes.openai_responses import FakeResponses

    with FakeResponses("openai") as fake:         # "openai" | "xai"
        fake.base_url                             # http://127.0.0.1:PORT/v1
        fake.responses_requests[-1].json          # what the client sent to /responses

What ``POST {base}/responses`` (``stream: true``) gets:
    default                  the recording openai_responses_stream_reasoning_summary.sse, byte for byte
    FakeResponses(fixture=name), fake.responses_fixture = name    another recording, byte for byte
    fake.reply(["Hel", "lo"], reasoning=["**Plan**\\n\\nthink"], usage=(13, 5), cached=0, reasoning_tokens=3,
               status="completed", incomplete=None, encrypted="gAAA…", item_id="rs_fake")
                             a scripted stream in the recorded order: created, in_progress, the reasoning
                             item with one summary part per paragraph (reasoning=(): no reasoning item),
                             the message with one output_text part and its deltas, then
                             ``response.<status>`` (``incomplete`` = the incomplete reason)
    fake.reply([], function_calls=[("call_1", "multiply", '{"a":2}'), ("call_2", "add", "{}")], piece=4)
                             a turn that calls tools, after any reasoning and text: per call an
                             ``output_item.added`` function_call (``id`` fc_…, ``call_id``, ``name``), its
                             ``function_call_arguments.delta`` pieces and ``.done``, then ``output_item.done``;
                             the calls are in ``response.completed``'s output too (no text: no message item)
    fake.queue(fake.scripted(...)), fake.queue(fake.recording(name))
                             streams answered in turn, one per request (either endpoint), before anything
                             above; TOOLCALL_FIXTURE (+ TOOLCALL_TURN2_FIXTURE) and
                             REASONING_TOOLCALL_FIXTURE are the recorded function-call streams
    fake.synthetic(2000)     a long stream of N one-token text deltas (the benchmarks' mode)
    fake.events = [{...}, ...]  events of your own, each sent as ``event: <type>`` + ``data: <json>``
    fake.chunks = [b"...", ...] raw bytes, one write each (wins over everything above; on both endpoints)
    fake.drop_after = n      the connection is cut after n chunks (a provider dying mid-stream)
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.fixtures import fixture_bytes
from tests.fakes.openai_dialect import FakeOpenAI, split_events
from tests.fakes.server import Receive, RecordedRequest, Send, respond

DEFAULT_FIXTURE = "openai_responses_stream_reasoning_summary.sse"
TOOLCALL_FIXTURE = "openai_responses_stream_toolcall.sse"  # gpt-5.5 calls multiply(1231, 2331)
TOOLCALL_TURN2_FIXTURE = "openai_responses_stream_toolcall_turn2.sse"  # its answer once given the result
REASONING_TOOLCALL_FIXTURE = "openai_responses_stream_reasoning_toolcall.sse"  # gpt-5-mini: reasoning, then a call
RESPONSES_FLAVOURS = ("openai", "xai")


def event(payload: dict[str, Any]) -> bytes:
    """One Responses stream event as OpenAI frames it: the type twice, as ``event:`` and in the JSON."""
    return f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


class FakeResponses(FakeOpenAI):
    def __init__(self, flavour: str = "openai", *, fixture: str | None = None) -> None:
        if flavour not in RESPONSES_FLAVOURS:
            raise ValueError(f"unknown Responses flavour {flavour!r}; one of {RESPONSES_FLAVOURS}")
        super().__init__(flavour)
        self.responses_fixture = fixture or DEFAULT_FIXTURE
        self.events: list[dict[str, Any]] | None = None
        self.drop_after: int | None = None
        self.model = "o3-mini" if flavour == "openai" else "grok-4.3"

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]

    # -- scripting -------------------------------------------------------------------------------

    def reply(self, texts: list[str] | tuple[str, ...], **script: Any) -> None:
        """Answer every Responses request with this scripted stream (``scripted``'s arguments)."""
        self.events = self._script(texts, **script)

    def scripted(self, texts: list[str] | tuple[str, ...] = (), **script: Any) -> list[bytes]:
        """The Responses stream ``reply`` would answer with, as bytes (for ``queue``)."""
        numbered = [{**e, "sequence_number": n} for n, e in enumerate(self._script(texts, **script))]
        return [event(e) for e in numbered]

    def _script(
        self,
        texts: list[str] | tuple[str, ...],
        *,
        function_calls: list[tuple[str, str, str]] | tuple[tuple[str, str, str], ...] = (),
        piece: int = 4,
        reasoning: list[str] | tuple[str, ...] = (),
        usage: tuple[int, int] | None = (13, 5),
        cached: int | None = 0,
        reasoning_tokens: int | None = 0,
        status: str = "completed",
        incomplete: str | None = None,
        encrypted: str = "gAAAAABfake-encrypted-reasoning==",
        item_id: str | None = "rs_fake0001",
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response("in_progress", [], None)},
            {"type": "response.in_progress", "response": self._response("in_progress", [], None)},
        ]
        output: list[dict[str, Any]] = []
        if reasoning:
            item: dict[str, Any] = {"type": "reasoning", "encrypted_content": encrypted, "summary": []}
            if item_id is not None:
                item = {"id": item_id, **item}
            events.append({"type": "response.output_item.added", "output_index": 0, "item": item})
            for index, paragraph in enumerate(reasoning):
                part = {"type": "summary_text", "text": ""}
                events.append(self._summary("response.reasoning_summary_part.added", item_id, index, part=part))
                events.append(self._summary("response.reasoning_summary_text.delta", item_id, index, delta=paragraph))
                events.append(self._summary("response.reasoning_summary_text.done", item_id, index, text=paragraph))
                part = {"type": "summary_text", "text": paragraph}
                events.append(self._summary("response.reasoning_summary_part.done", item_id, index, part=part))
            done = {**item, "summary": [{"type": "summary_text", "text": p} for p in reasoning]}
            events.append({"type": "response.output_item.done", "output_index": 0, "item": done})
            output.append(done)
        if texts or not function_calls:
            self._message(events, output, texts)
        for call_id, name, arguments in function_calls:
            self._function_call(events, output, call_id, name, arguments, piece)
        counts = None
        if usage is not None:
            counts = {
                "input_tokens": usage[0],
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": usage[1],
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": usage[0] + usage[1],
            }
        final = self._response(status, output, counts)
        if incomplete is not None:
            final["incomplete_details"] = {"reason": incomplete}
        events.append({"type": f"response.{status}", "response": final})
        return events

    def _message(self, events: list[dict[str, Any]], output: list[Any], texts: list[str] | tuple[str, ...]) -> None:
        message_index = len(output)
        message = {"id": "msg_fake0001", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        events.append({"type": "response.output_item.added", "output_index": message_index, "item": message})
        where = {"item_id": "msg_fake0001", "output_index": message_index, "content_index": 0}
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events.append({"type": "response.content_part.added", **where, "part": part})
        for text in texts:
            events.append({"type": "response.output_text.delta", **where, "delta": text, "logprobs": []})
        whole = "".join(texts)
        events.append({"type": "response.output_text.done", **where, "text": whole, "logprobs": []})
        events.append({"type": "response.content_part.done", **where, "part": {**part, "text": whole}})
        content = [{**part, "text": whole}]
        message = {**message, "status": "completed", "content": content}
        events.append({"type": "response.output_item.done", "output_index": message_index, "item": message})
        output.append(message)

    @staticmethod
    def _function_call(
        events: list[dict[str, Any]], output: list[Any], call_id: str, name: str, arguments: str, piece: int
    ) -> None:
        """One function_call item as OpenAI streams it: announced, its arguments in pieces, done."""
        index = len(output)
        item = {
            "id": f"fc_fake{index:04d}",
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": name,
        }
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        where = {"item_id": item["id"], "output_index": index}
        for at in range(0, len(arguments), piece):
            delta = arguments[at : at + piece]
            events.append({"type": "response.function_call_arguments.delta", **where, "delta": delta})
        events.append({"type": "response.function_call_arguments.done", **where, "arguments": arguments})
        done = {**item, "status": "completed", "arguments": arguments}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        output.append(done)

    def synthetic(self, tokens: int, *, delay: float = 0.0, token: str = "tok ") -> None:  # noqa: S107 - a word
        """N text deltas of ``token`` each, then ``response.completed`` with usage."""
        self.reply([token] * tokens, usage=(10, tokens))
        self.stream_delay = delay

    def _response(self, status: str, output: list[Any], usage: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "id": "resp_fake0001",
            "object": "response",
            "created_at": 1757687055,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "model": self.model,
            "output": output,
            "usage": usage,
        }

    @staticmethod
    def _summary(kind: str, item_id: str | None, index: int, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "item_id": item_id or "", "output_index": 0, "summary_index": index, **fields}

    # -- ASGI handling ---------------------------------------------------------------------------

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if request.method == "POST" and request.path == self.prefix + "/responses":
            authorised = request.headers.get("authorization") == f"Bearer {self.api_key}"
            if self.api_key is not None and not authorised:
                status, body, _ = self.bad_key_answer()
                await respond(send, status, body)
                return
            await self.stream_chunks(send, receive, self._responses_chunks(), drop_after=self.drop_after)
            return
        await super().handle(request, send, receive)

    def _responses_chunks(self) -> list[bytes]:
        if self.replies:
            return self.replies.pop(0)
        if self.chunks is not None:
            return list(self.chunks)
        if self.events is not None:
            numbered = [{**e, "sequence_number": n} for n, e in enumerate(self.events)]
            return [event(e) for e in numbered]
        return split_events(fixture_bytes(self.responses_fixture))


__all__ = [
    "DEFAULT_FIXTURE",
    "REASONING_TOOLCALL_FIXTURE",
    "TOOLCALL_FIXTURE",
    "TOOLCALL_TURN2_FIXTURE",
    "FakeResponses",
    "event",
]
