"""A local server speaking the OpenAI Chat Completions dialect, one class for every flavour.

Usage (the API other tests and the benchmarks rely on; keep it stable)::

    from tests.fakes.openai_dialect import FakeOpenAI

    with FakeOpenAI("openai") as fake:            # "openai" | "xai" | "gab" | "openrouter" | "compatible"
        fake.base_url                             # http://127.0.0.1:PORT/v1   (OpenRouter: .../api/v1)
        ...plugin or client pointed at fake.base_url...
        fake.requests[-1].json                    # what the client sent (RecordedRequest: method, path,
        fake.chat_requests                        #   query, headers, body, json); chat POSTs only

What a chat request gets (``POST {base}/chat/completions``, ``stream: true``):
    default                  the recorded fixture replayed byte for byte: openrouter_chat_stream.sse for
                             "openrouter", openai_chat_stream_text.sse for the others
    fake.reply(["Hel", "lo"], finish="stop", usage=(3, 2), cost=None, reasoning=(), done=True)
                             a scripted stream in the flavour's shape (usage=None: no usage chunk;
                             done=False: no [DONE]; finish=None: no finish_reason); ``reasoning``
                             deltas go out as ``delta.reasoning_content`` (llama.cpp, vLLM, DeepSeek) or,
                             with ``reasoning_field="reasoning"``, as ``delta.reasoning`` (Ollama, OpenRouter);
                             ``cached=``, ``cache_write=`` and ``reasoning_tokens=`` add the usage details
                             (``prompt_tokens_details`` / ``completion_tokens_details``)
    FakeOpenAI("openrouter", fixture="openrouter_chat_stream_reasoning_details.sse")
                             any recording replayed byte for byte instead (also
                             openrouter_chat_stream_reasoning_encrypted.sse: OpenRouter's reasoning_details;
                             TOOLCALL_FIXTURE, openai_chat_stream_toolcall.sse: one call to ``multiply``)
    fake.reply([], tool_calls=[("call_1", "multiply", '{"a":2,"b":3}'), ("call_2", "add", "{}")])
                             a turn that calls tools: each call's first fragment carries ``index``, ``id``,
                             ``type`` and ``function.name``, the next ones ``function.arguments`` in pieces of
                             ``piece`` characters (None: the whole text in the first fragment, as some servers
                             send it); ``interleave=True`` alternates the calls' pieces; the finish is then
                             ``tool_calls`` unless ``finish`` says otherwise; ``reasoning_details`` fragments
                             (OpenRouter's) go out first, one chunk each
    fake.queue(fake.scripted(...)), fake.queue(fake.recording(name))
                             streams answered in turn, one per chat request, before ``chunks`` or the
                             fixture (``scripted`` takes what ``reply`` takes and returns the bytes)
    fake.synthetic(2000, delay=0.0, token="tok ")
                             a long stream of N one-token deltas, then finish, usage and [DONE]
    fake.chunks = [b"data: ...\\n\\n", ...]  raw bytes, sent one write each
    ``stream: false`` gets one chat.completion JSON built from the same script (reasoning included).
    fake.stream_delay = 0.01 pauses between chunks (seconds).

Faults:
    fake.fail_next(status, body, headers=..., times=n)   any canned answer (from FakeProvider)
    fake.fail_with(status, message=None, headers=None, times=1)
                             an error body in the flavour's own shape (xAI's {"code","error"},
                             OpenRouter's {"error":{"code":int,...}}, llama.cpp's, OpenAI's)
    fake.bad_key_answer()    the flavour's answer to a wrong key (xAI: HTTP 400)
    fake.api_key = "sk-..."  requests without ``Authorization: Bearer <that key>`` get bad_key_answer()
    fake.mid_stream(after=n, kind="error" | "malformed" | "drop" | "stall", seconds=..., message=...)
                             the next stream breaks after n chunks: an error event, a chunk that is
                             not JSON, the connection cut mid-body, or silence for ``seconds``
    fake.disconnected        threading.Event set when a client hangs up mid-stream
    fake.clients             (host, port) of the connection each request came on (keep-alive checks)

Other endpoints: ``GET {base}/models`` (openrouter_models.json byte for byte for "openrouter"),
``POST {base}/images/generations`` (``fake.image_mode = "b64" | "url"``; URLs point at the fake
itself, ``GET /files/<name>``, or at ``fake.image_url`` when set), ``GET {base}/api-key`` (xAI;
``fake.key_flags`` adds blocked flags),
``GET {base}/key`` (OpenRouter).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes.fixtures import fixture_bytes
from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

FLAVOURS = ("openai", "xai", "gab", "openrouter", "compatible")
PREFIX = {"openrouter": "/api/v1"}
FIXTURE = {"openrouter": "openrouter_chat_stream.sse"}
DEFAULT_FIXTURE = "openai_chat_stream_text.sse"
TOOLCALL_FIXTURE = "openai_chat_stream_toolcall.sse"
AUTO = "auto"  # a scripted stream's finish: tool_calls when it calls tools, else stop

# A scripted tool call: (id, name, argument text as the server streams it).
ScriptedCall = tuple[str, str, str]

# A real 1x1 PNG and a small JPEG header+body, so MIME sniffing has real magic numbers to read.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
JPEG_BYTES = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb") + b"\x00" * 64 + b"\xff\xd9"


def sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def split_events(raw: bytes) -> list[bytes]:
    """Cut a recorded stream into its events, keeping every byte (joined they equal ``raw``)."""
    parts = raw.split(b"\n\n")
    events = [p + b"\n\n" for p in parts[:-1]]
    if parts[-1]:
        events.append(parts[-1])
    return events


@dataclass
class MidStream:
    after: int
    kind: str  # "error" | "malformed" | "drop" | "stall"
    seconds: float = 0.0
    message: str = "The server had an error while processing your request."
    code: str = "server_error"


class FakeOpenAI(FakeProvider):
    def __init__(self, flavour: str = "openai", *, fixture: str | None = None) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; one of {FLAVOURS}")
        super().__init__()
        self.flavour = flavour
        self.prefix = PREFIX.get(flavour, "/v1")
        self.fixture = fixture or FIXTURE.get(flavour, DEFAULT_FIXTURE)
        self.chunks: list[bytes] | None = None
        self.replies: list[list[bytes]] = []  # queued streams, one per request, before chunks/fixture
        self.api_key: str | None = None
        self.image_mode = "b64"
        self.image_url: str | None = None  # an image URL to answer with instead of the fake's own
        self.image_bytes = PNG_1X1
        self.key_flags: dict[str, bool] = {}
        self.model = "gpt-4o-mini" if flavour != "openrouter" else "openai/gpt-4o"
        self._mid: MidStream | None = None
        self.clients: list[tuple[Any, ...]] = []

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.clients.append(tuple(scope.get("client") or ()))  # which connection each request used
        await super().__call__(scope, receive, send)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/chat/completions")]

    # -- scripting -------------------------------------------------------------------------------

    def queue(self, chunks: list[bytes]) -> None:
        """Answer the next request not yet answered from the queue with ``chunks``."""
        self.replies.append(list(chunks))

    @staticmethod
    def recording(name: str) -> list[bytes]:
        """A recorded stream's events, byte for byte (for ``queue``)."""
        return split_events(fixture_bytes(name))

    def reply(self, texts: list[str] | tuple[str, ...], **script: Any) -> None:
        """Answer every chat request with this scripted stream (``scripted``'s arguments)."""
        self.chunks = self.scripted(texts, **script)

    def scripted(
        self,
        texts: list[str] | tuple[str, ...] = (),
        *,
        tool_calls: list[ScriptedCall] | tuple[ScriptedCall, ...] = (),
        piece: int | None = 4,
        interleave: bool = False,
        reasoning_details: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
        finish: str | None = AUTO,
        usage: tuple[int, int] | None = (3, 2),
        cost: float | None = None,
        reasoning: list[str] | tuple[str, ...] = (),
        reasoning_field: str = "reasoning_content",
        done: bool = True,
        cached: int | None = None,
        cache_write: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> list[bytes]:
        chunks = [self._chunk({"role": "assistant", "content": ""})]
        chunks += [self._chunk({reasoning_field: r}) for r in reasoning]
        chunks += [self._chunk({"reasoning": d.get("text"), "reasoning_details": [d]}) for d in reasoning_details]
        chunks += [self._chunk({"content": t}) for t in texts]
        chunks += [self._chunk({"tool_calls": [f]}) for f in _fragments(tool_calls, piece, interleave)]
        if finish == AUTO:
            finish = "tool_calls" if tool_calls else "stop"
        if finish is not None:
            chunks.append(self._chunk({}, finish=finish))
        if usage is not None:
            details = {"cached": cached, "cache_write": cache_write, "reasoning_tokens": reasoning_tokens}
            chunks.append(self._usage_chunk(*usage, cost=cost, **details))
        if done:
            chunks.append(b"data: [DONE]\n\n")
        return chunks

    def synthetic(self, tokens: int, *, delay: float = 0.0, token: str = "tok ") -> None:  # noqa: S107 - a word, not a secret
        """N deltas of ``token`` each (the long-stream mode for the chat tests and benchmarks)."""
        self.reply([token] * tokens, usage=(10, tokens))
        self.stream_delay = delay

    def mid_stream(
        self, *, after: int, kind: str, seconds: float = 0.0, message: str | None = None, code: str = "server_error"
    ) -> None:
        if kind not in ("error", "malformed", "drop", "stall"):
            raise ValueError(f"unknown mid-stream fault {kind!r}")
        self._mid = MidStream(after, kind, seconds, message or MidStream.message, code)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self.flavour == "openrouter":
            delta = {"role": "assistant", **delta}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        body: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1747148050,
            "model": self.model,
            "choices": [choice],
        }
        if self.flavour == "openai":
            body["usage"] = None
        return sse(body)

    def _usage_chunk(
        self,
        prompt: int,
        completion: int,
        *,
        cost: float | None = None,
        cached: int | None = None,
        cache_write: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> bytes:
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
        usage["total_tokens"] = prompt + completion
        if cached is not None or cache_write is not None:
            prompt_details = {"cached_tokens": cached or 0, "audio_tokens": 0}
            if cache_write is not None:
                prompt_details["cache_write_tokens"] = cache_write
            usage["prompt_tokens_details"] = prompt_details
        if reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens, "audio_tokens": 0}
        if self.flavour == "openrouter":
            usage["cost"] = cost if cost is not None else 0.0001
            choices: list[Any] = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        else:
            choices = []
        return sse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": self.model,
                "choices": choices,
                "usage": usage,
            }
        )

    # -- error bodies ----------------------------------------------------------------------------

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        if self.flavour == "xai":
            code = {
                400: "Client specified an invalid argument",
                403: "The caller does not have permission",
                404: "Some requested entity was not found",
                429: "Some resource has been exhausted",
                503: "The service is currently unavailable",
            }.get(status, "Internal error")
            return {"code": code, "error": message}
        if self.flavour == "openrouter":
            return {"error": {"code": status, "message": message}}
        if self.flavour == "compatible":
            kind = {401: "authentication_error", 503: "unavailable_error"}.get(status, "server_error")
            return {"error": {"code": status, "message": message, "type": kind}}
        kind = {401: "invalid_request_error", 429: "requests", 402: "insufficient_credits"}.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def fail_with(
        self, status: int, message: str | None = None, *, headers: dict[str, str] | None = None, times: int = 1
    ) -> str:
        """Queue a flavour-shaped error; returns the message so tests can look for it."""
        text = message or f"fake upstream error {status}"
        self.fail_next(status, self.error_body(status, text), headers=headers, times=times)
        return text

    def bad_key_answer(self) -> tuple[int, dict[str, Any], str]:
        if self.flavour == "xai":
            text = "Incorrect API key provided: xa***ng. You can obtain an API key from https://console.x.ai."
            return 400, self.error_body(400, text), text
        if self.flavour == "openai":
            text = "Incorrect API key provided: sk-wr***ng. You can find your API key at https://platform.openai.com."
            return (
                401,
                {"error": {"message": text, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
                text,
            )
        text = "Invalid API Key" if self.flavour == "compatible" else "User not found."
        return 401, self.error_body(401, text), text

    # -- ASGI handling ---------------------------------------------------------------------------

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if request.method == "GET" and request.path.startswith("/files/"):
            await respond(send, 200, self.image_bytes, content_type="image/png")
            return
        if not request.path.startswith(self.prefix + "/"):
            await respond(send, 404, self.error_body(404, f"no route {request.path}"))
            return
        route = request.path[len(self.prefix) :]
        public = route == "/models" and self.flavour == "openrouter"
        authorised = request.headers.get("authorization") == f"Bearer {self.api_key}"
        if self.api_key is not None and not public and not authorised:
            status, body, _ = self.bad_key_answer()
            await respond(send, status, body)
            return
        if request.method == "POST" and route == "/chat/completions":
            await self._chat(request, send, receive)
        elif request.method == "GET" and route == "/models":
            await self._models(send)
        elif request.method == "POST" and route == "/images/generations":
            await self._images(request, send)
        elif request.method == "GET" and route == "/api-key" and self.flavour == "xai":
            flags = {"team_blocked": False, "api_key_blocked": False, "api_key_disabled": False, **self.key_flags}
            await respond(send, 200, {"redacted_api_key": "xai-...b14o", "name": "test key", "acls": [], **flags})
        elif request.method == "GET" and route == "/key" and self.flavour == "openrouter":
            await respond(send, 200, {"data": {"label": "sk-or-v1-au7...890", "limit": 100, "usage": 25.5}})
        else:
            await respond(send, 404, self.error_body(404, f"no route {request.method} {route}"))

    def _stream_chunks(self) -> list[bytes]:
        if self.replies:
            return self.replies.pop(0)
        if self.chunks is not None:
            return list(self.chunks)
        return split_events(fixture_bytes(self.fixture))

    async def _chat(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        body = request.json or {}
        chunks = self._stream_chunks()
        if not body.get("stream"):
            await respond(send, 200, _completion(chunks, self.model))
            return
        mid, self._mid = self._mid, None
        if mid is None:
            await self.stream_chunks(send, receive, chunks)
            return
        head, tail = chunks[: mid.after], chunks[mid.after :]
        if mid.kind == "drop":
            await self.stream_chunks(send, receive, chunks, drop_after=mid.after)
        elif mid.kind == "malformed":
            await self.stream_chunks(send, receive, [*head, b'data: {"id": "chatcmpl-fake", "choices": [{\n\n'])
        elif mid.kind == "error":
            await self.stream_chunks(send, receive, [*head, sse(self._stream_error(mid))])
        else:
            await self._stall(send, receive, head, tail, mid.seconds)

    async def _stall(self, send: Send, receive: Receive, head: list[bytes], tail: list[bytes], seconds: float) -> None:
        """Send ``head``, go silent for ``seconds`` (less if the client hangs up), then the rest."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8")],
            }
        )
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        try:
            for chunk in head:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.wait([watcher], timeout=seconds)
            if watcher.done():
                return
            for chunk in tail:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()

    def _stream_error(self, mid: MidStream) -> dict[str, Any]:
        error = {"message": mid.message, "type": mid.code, "param": None, "code": mid.code}
        if self.flavour == "openrouter":
            return {
                "id": "gen-fake",
                "object": "chat.completion.chunk",
                "model": self.model,
                "error": {"code": mid.code, "message": mid.message},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            }
        return {"error": error}

    async def _models(self, send: Send) -> None:
        if self.flavour == "openrouter":
            await respond(send, 200, fixture_bytes("openrouter_models.json"))
            return
        owner = {"xai": "xai", "compatible": "llamacpp"}.get(self.flavour, "openai")
        ids = {"xai": ["grok-3", "grok-3-mini", "grok-2-image-1212"], "gab": ["arya", "gpt-4o"]}.get(
            self.flavour, ["gpt-4o-mini", "gpt-4o", "o3-mini"]
        )
        data = [{"id": i, "object": "model", "created": 1686935002, "owned_by": owner} for i in ids]
        if self.flavour == "compatible":
            data[0]["meta"] = {"n_ctx_train": 8192}
        await respond(send, 200, {"object": "list", "data": data})

    async def _images(self, request: RecordedRequest, send: Send) -> None:
        body = request.json or {}
        count = int(body.get("n") or 1)
        items: list[dict[str, Any]] = []
        for index in range(count):
            if self.image_mode == "url":
                url = self.image_url or f"{self.origin}/files/generated-{index}.png"
                item: dict[str, Any] = {"url": url}
            else:
                item = {"b64_json": base64.b64encode(self.image_bytes).decode()}
            if str(body.get("model", "")).startswith(("dall-e-3", "grok-2-image")):
                item["revised_prompt"] = f"A detailed rendering of: {body.get('prompt', '')}"
            items.append(item)
        await respond(send, 200, {"created": int(time.time()), "data": items})


def _fragments(calls: tuple[ScriptedCall, ...] | list[ScriptedCall], piece: int | None, interleave: bool) -> list[Any]:
    """The ``delta.tool_calls`` fragments of ``calls`` in the order OpenAI streams them: per call, one
    naming it, then its argument text in pieces (``interleave``: the calls' pieces alternate)."""
    per_call: list[list[dict[str, Any]]] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        first = {"name": name, "arguments": arguments if piece is None else ""}
        fragments = [{"index": index, "id": call_id, "type": "function", "function": first}]
        if piece is not None:
            pieces = [arguments[at : at + piece] for at in range(0, len(arguments), piece)]
            fragments += [{"index": index, "function": {"arguments": p}} for p in pieces]
        per_call.append(fragments)
    if not interleave:
        return [fragment for fragments in per_call for fragment in fragments]
    longest = max((len(f) for f in per_call), default=0)
    return [fragments[at] for at in range(longest) for fragments in per_call if at < len(fragments)]


def _completion(chunks: list[bytes], model: str) -> dict[str, Any]:
    """A non-streaming chat.completion assembled from a stream script."""
    text: list[str] = []
    reasoning: dict[str, list[str]] = {"reasoning_content": [], "reasoning": []}
    usage: Any = None
    finish = "stop"
    for chunk in chunks:
        data = chunk.decode().strip()
        if not data.startswith("data: ") or data == "data: [DONE]":
            continue
        parsed = json.loads(data[6:])
        usage = parsed.get("usage") or usage
        for choice in parsed.get("choices") or []:
            delta = choice.get("delta", {})
            text.append(delta.get("content") or "")
            for field, pieces in reasoning.items():
                pieces.append(delta.get(field) or "")
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    message.update({field: "".join(pieces) for field, pieces in reasoning.items() if "".join(pieces)})
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1747148050,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


__all__ = [
    "AUTO",
    "FLAVOURS",
    "JPEG_BYTES",
    "PNG_1X1",
    "TOOLCALL_FIXTURE",
    "FakeOpenAI",
    "MidStream",
    "ScriptedCall",
    "split_events",
    "sse",
]
