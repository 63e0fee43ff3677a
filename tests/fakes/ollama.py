"""A local Ollama native API (PROTOCOLS.md §6) on a real loopback socket.

``POST /api/chat`` streams NDJSON exactly as §6.3 shows (one object per line, the last with
``done: true``, ``done_reason`` and the counts); ``fake.reply = "thinking"`` adds ``message.thinking``
lines first, ``fake.long_tokens = N`` streams N content lines. ``stream: false`` answers one object.
``GET /api/tags`` and ``GET /api/version`` answer as §6.5 shows; an unknown model is a 404
``{"error": "model \\"x\\" not found, try pulling it first"}``.

Thinking models (PROTOCOLS-reasoning-tools.md R6.1): ``gpt-oss:20b`` (levels: it ignores ``think``
true/false and always thinks) and ``qwen3:8b`` (on/off: ``"think": false`` switches it off) are pulled
too, though ``/api/tags`` lists only the two above. They stream ``GPT_OSS_THINKING`` as ``message.thinking``
lines (the first two as quoted from real gpt-oss output, the rest assembled in the same shape), one line
carrying both the last thought and the first answer token, then ``GPT_OSS_TOKENS``. ``think`` that is not
false on a model that does not think is the real 400 ``"<model>" does not support thinking``.

Tools (R6.2): ``fake.reply = "tool_call"`` answers with the two lines the API docs show for a streamed
call (``DOCS_TOOL_LINES``: the call whole on a ``done: false`` line, ``arguments`` an object, no id; then the
``done`` line with ``done_reason: stop``); ``fake.tool_calls = [(name, arguments), …]`` puts other calls,
several for parallel ones, on that line, and ``fake.tool_call_ids`` gives them the ``id`` and
``function.index`` current servers add. A thinking model thinks first. Tools offered to a model without the
tools capability (``llava:7b``) are the real 400 ``"… does not support tools"``, and a message whose tool
call ``arguments`` are not an object is the 400 Go's JSON decoder gives.

No key is needed unless the fake is built with one (ollama.com: ``Authorization: Bearer``).
``fail_next`` injects HTTP errors (``error_body`` gives the real shape); ``fake.stream_fault``
injects a fault after the 200 (the ``error`` fault is an ``{"error": …}`` line).
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond
from tests.fakes.stream_faults import StreamFault, send_stream

MODELS = ["llama3.2:latest", "llava:7b"]
TOKENS = ["The", " sky", " is", " blue", " because", " of", " Rayleigh", " scattering", "."]
THINKING = ["The user asks", " about the sky;", " keep it short."]
REPLY = "".join(TOKENS)
GPT_OSS_THINKING = ["The", " user", " asks", " why", " the sky", " is blue.", " Answer briefly."]
GPT_OSS_TOKENS = ["Rayleigh", " scattering", ":", " blue", " light", " scatters", " most", "."]
THINKING_MODELS = {"gpt-oss:20b": "levels", "qwen3:8b": "on_off"}
GPT_OSS_CREATED_AT = "2025-08-19T02:10:00.5615556Z"
PROMPT_EVAL_COUNT = 26
CREATED_AT = "2023-08-04T08:52:19.385406455-07:00"

TAGS = {
    "models": [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2025-05-10T08:06:48.639712648-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama"],
                "parameter_size": "3.2B",
                "quantization_level": "Q4_K_M",
            },
        },
        {
            "name": "llava:7b",
            "model": "llava:7b",
            "modified_at": "2025-04-01T10:00:00.000000000-07:00",
            "size": 4733363377,
            "digest": "8dd30f6b0cb19f555f2c7a7ebda861449ea2cc76bf1f44e262931f45fc81d081",
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "llama",
                "families": ["llama", "clip"],
                "parameter_size": "7B",
                "quantization_level": "Q4_0",
            },
        },
    ]
}


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def chat_lines(model: str, tokens: list[str], thinking: list[str] = (), *, done_reason: str = "stop") -> list[bytes]:  # type: ignore[assignment]
    lines = [
        line(
            {
                "model": model,
                "created_at": CREATED_AT,
                "message": {"role": "assistant", "content": "", "thinking": t},
                "done": False,
            }
        )
        for t in thinking
    ]
    lines += [
        line({"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": t}, "done": False})
        for t in tokens
    ]
    lines.append(
        line(
            {
                "model": model,
                "created_at": CREATED_AT,
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": done_reason,
                "total_duration": 4883583458,
                "load_duration": 1334875,
                "prompt_eval_count": PROMPT_EVAL_COUNT,
                "prompt_eval_duration": 342546000,
                "eval_count": len(tokens) + len(thinking),
                "eval_duration": 4535599000,
            }
        )
    )
    return lines


def thinking_lines(model: str) -> list[bytes]:
    """A thinking model's stream: thoughts, one line with the last thought and the first token, the answer."""
    *thoughts, last = GPT_OSS_THINKING
    first, *rest = GPT_OSS_TOKENS
    lines = [json.loads(raw) for raw in chat_lines(model, rest, thoughts)]
    boundary = {"role": "assistant", "content": first, "thinking": last}
    lines.insert(len(thoughts), {"model": model, "message": boundary, "done": False})
    lines[-1]["eval_count"] = len(GPT_OSS_TOKENS) + len(GPT_OSS_THINKING)
    return [line({"model": model, **obj, "created_at": GPT_OSS_CREATED_AT}) for obj in lines]


# The streamed tool call of Ollama's docs/api.md ("Chat request (Streaming with tools)"), compacted.
DOCS_TOOL_LINES = [
    b'{"model":"llama3.2","created_at":"2025-07-07T20:22:19.184789Z","message":{"role":"assistant","content":"",'
    b'"tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":false}\n',
    b'{"model":"llama3.2","created_at":"2025-07-07T20:22:19.19314Z","message":{"role":"assistant","content":""},'
    b'"done_reason":"stop","done":true,"total_duration":182242375,"load_duration":41295167,"prompt_eval_count":169,'
    b'"prompt_eval_duration":24573166,"eval_count":15,"eval_duration":115959084}\n',
]
NO_TOOLS_MODELS = {"llava:7b"}


def tool_call_lines(model: str, calls: list[tuple[str, dict[str, Any]]], *, with_ids: bool) -> list[bytes]:
    """The docs' two lines with ``calls`` on the first (current servers' ``id`` and ``index`` when ``with_ids``)."""
    first, last = (json.loads(raw) for raw in DOCS_TOOL_LINES)
    entries = []
    for i, (name, arguments) in enumerate(calls):
        function: dict[str, Any] = {"name": name, "arguments": arguments}
        entries.append(
            {"id": f"call_{i:02d}tq7xz9", "function": {"index": i, **function}} if with_ids else {"function": function}
        )
    first["message"]["tool_calls"] = entries
    return [line({**first, "model": model}), line({**last, "model": model})]


def tool_problem(body: dict[str, Any]) -> str | None:
    """What the server refuses in a tool request: tools for a model without the capability, and call
    arguments that are not an object (Go decodes them into a map)."""
    model = body.get("model", "")
    if body.get("tools") and model in NO_TOOLS_MODELS:
        return f"registry.ollama.ai/library/{model} does not support tools"
    for message in body.get("messages") or []:
        for call in message.get("tool_calls") or []:
            if not isinstance((call.get("function") or {}).get("arguments"), dict):
                return (
                    "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function."
                    "arguments of type api.ToolCallFunctionArguments"
                )
    return None


def long_tokens(count: int) -> list[str]:
    return [f"w{i} " for i in range(count)]


class FakeOllama(FakeProvider):
    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.reply = "text"
        self.done_reason = "stop"
        self.long_tokens: int | None = None
        self.stream_fault: StreamFault | None = None
        self.error_line = error_body("an error was encountered while running the model")
        self.tool_calls: list[tuple[str, dict[str, Any]]] | None = None  # None: the docs' recorded call
        self.tool_call_ids = False

    def tool_lines(self, model: str, *, thinks: bool) -> list[bytes]:
        """The call lines (the docs' own bytes when nothing is scripted), after the thoughts of a thinking model."""
        if self.tool_calls is None and not self.tool_call_ids and model == "llama3.2" and not thinks:
            return list(DOCS_TOOL_LINES)
        calls = self.tool_calls if self.tool_calls is not None else [("get_weather", {"city": "Tokyo"})]
        lines = tool_call_lines(model, calls, with_ids=self.tool_call_ids)
        return (thinking_lines(model)[: len(GPT_OSS_THINKING) - 1] if thinks else []) + lines

    def tokens(self) -> list[str]:
        return long_tokens(self.long_tokens) if self.long_tokens is not None else TOKENS

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            await respond(send, 401, error_body("unauthorized"))
            return
        route = (request.method, request.path)
        if route == ("GET", "/api/version"):
            await respond(send, 200, {"version": "0.12.3"})
        elif route == ("GET", "/api/tags"):
            await respond(send, 200, TAGS)
        elif route == ("POST", "/api/chat"):
            await self.chat(request, send, receive)
        else:
            await respond(send, 404, "404 page not found", content_type="text/plain")

    async def chat(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        body = request.json or {}
        model = body.get("model", "")
        known = {*MODELS, *THINKING_MODELS}
        if model not in known and f"{model}:latest" not in known:
            await respond(send, 404, error_body(f'model "{model}" not found, try pulling it first'))
            return
        if problem := tool_problem(body):
            await respond(send, 400, error_body(problem))
            return
        think = body.get("think")
        kind = THINKING_MODELS.get(model)
        if kind is None and think not in (None, False) and self.reply != "thinking":
            await respond(send, 400, error_body(f'"{model}" does not support thinking'))
            return
        if self.reply == "tool_call":
            lines = self.tool_lines(model, thinks=kind == "levels" or (kind == "on_off" and think is not False))
        elif kind == "levels" or (kind == "on_off" and think is not False):
            lines = thinking_lines(model)
        elif kind == "on_off":
            lines = chat_lines(model, GPT_OSS_TOKENS)
        else:
            thinking = THINKING if self.reply == "thinking" else []
            lines = chat_lines(model, self.tokens(), thinking, done_reason=self.done_reason)
        if body.get("stream") is False and self.reply != "tool_call":
            messages = [json.loads(raw)["message"] for raw in lines]
            final = json.loads(lines[-1])
            final["message"] = {"role": "assistant", "content": "".join(m["content"] for m in messages)}
            if thought := "".join(m.get("thinking", "") for m in messages):
                final["message"]["thinking"] = thought
            await respond(send, 200, final)
            return
        await send_stream(
            self,
            send,
            receive,
            lines,
            content_type="application/x-ndjson",
            fault=self.stream_fault,
            malformed=b'{"model":"llama3.2","message":{"role":"assistant","content":"\n',
            error=line(self.error_line),
        )
