"""A local Gemini Generative Language API (PROTOCOLS.md §3) on a real loopback socket, under /v1beta.

``GET /v1beta/models`` replays tests/fakes/recordings/gemini_models.json byte for byte as page 1;
asking for its ``nextPageToken`` answers a small second page made up here (the recording has only
page 1).

``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` serves the recorded chunks of
gemini_stream_array.json — the same JSON objects, one per event — framed as §3.5a shows the ``alt=sse``
stream: ``data: <json>\\r\\n\\r\\n``, no ``event:`` line, no end marker. (The recording was made without
``alt=sse``, which streams one JSON array; that form is replayed byte for byte when ``alt`` is absent.)
A request for ``gemini-2.5-pro`` (the model it was recorded with) streams
gemini_stream_sse_thinking.sse byte for byte instead: four ``thought: true`` parts, then the answer, the
first answer part carrying a ``thoughtSignature``, CRLF separators, ``thoughtsTokenCount`` outside
``candidatesTokenCount`` (without ``alt`` the same chunks come as one JSON array). A request for
``gemini-3-flash-preview`` streams gemini_stream_array_functioncall_signature.json: a whole ``functionCall``
part carrying the ``thoughtSignature``, then an empty text part with ``finishReason``; once the request
answers it (a ``functionResponse`` part in its last turn) it streams the recorded follow-up,
gemini_stream_array_functioncall_signature_turn2.json ("5 times 3 is 15.").
``fake.reply = "parallel_calls"`` streams two whole ``functionCall`` parts in one chunk, the signature on the
first only (R4.4's placement rule), in the recording's shape; ``fake.call_ids`` gives them ids, as Gemini 3
does since 2026 (without, the calls have none, as older models send them).

The API's function-calling rules are kept (``tool_problem``; the wording as clients quote it): a schema key
outside Gemini's OpenAPI subset, or an object with empty ``properties``, is a 400; on Gemini 3 models
(``gemini-3…`` and ``gemini-flash-latest``, which answers as 3.6) the first ``functionCall`` part of each model
turn since the last user text must carry a ``thoughtSignature``; a user turn answering calls must hold one
``functionResponse`` per call.
``fake.reply`` switches to a blocked prompt (``"blocked"``: ``promptFeedback.blockReason``) or a reply
stopped by the safety filter (``"safety"``); ``fake.long_tokens = N`` streams N text chunks (ending
with ``fake.finish_reason``, and a ``functionCall`` part when ``fake.function_call``; ``fake.usage_extra``
adds fields such as ``cachedContentTokenCount`` to their ``usageMetadata``).

``POST /v1beta/models/{model}:predict`` answers Imagen predictions (``fake.imagen`` = ``"ok"``,
``"filtered"``, ``"mislabelled"`` (JPEG bytes declared PNG), ``"not_image"``).

Paths are served under ``/v1`` as well (the real service has both versions; google-genai's default
with a custom base URL is ``v1``). The key is checked in ``x-goog-api-key`` (or ``?key=``, as the real
API allows); a wrong one is the real 400 ``INVALID_ARGUMENT`` / ``API_KEY_INVALID``. Unknown models
are a 404 ``NOT_FOUND``.
``fail_next`` injects HTTP errors (``error_body`` gives the real shape); ``fake.stream_fault`` a fault
after the 200 (the ``error`` fault is a ``data: {"error": …}`` chunk).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.fixtures import fixture_bytes
from tests.fakes.samples import jpeg_bytes, png_bytes
from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond
from tests.fakes.stream_faults import StreamFault, send_stream

MODELS_PAGE_1 = "gemini_models.json"
STREAM_ARRAY = "gemini_stream_array.json"
RECORDED_MODEL = "gemini-flash-latest"
STREAM_SSE_THINKING = "gemini_stream_sse_thinking.sse"
THINKING_MODEL = "gemini-2.5-pro"  # the model gemini_stream_sse_thinking.sse was recorded with
STREAM_ARRAY_FUNCTION_CALL = "gemini_stream_array_functioncall_signature.json"
FUNCTION_CALL_MODEL = "gemini-3-flash-preview"  # the model that recording was made with
FUNCTION_CALL_RECORDING = STREAM_ARRAY_FUNCTION_CALL
FUNCTION_CALL_TURN2 = "gemini_stream_array_functioncall_signature_turn2.json"
# The parallel reply's calls: (name, args); the signature is the recorded one, on the first part only.
PARALLEL_CALLS = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
SCHEMA_KEYS = frozenset(
    [
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    ]
)
PAGE_2 = {
    "models": [
        {
            "name": "models/gemini-test-page-two",
            "version": "001",
            "displayName": "Gemini Test Page Two",
            "inputTokenLimit": 32768,
            "outputTokenLimit": 8192,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        },
        {
            "name": "models/text-embedding-page-two",
            "version": "004",
            "displayName": "Embedding on page two",
            "supportedGenerationMethods": ["embedContent"],
        },
    ]
}


def error_body(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


API_KEY_INVALID = error_body(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": "API key not valid. Please pass a valid API key.",
        },
    ],
)


def recorded_chunks(name: str = STREAM_ARRAY) -> list[dict[str, Any]]:
    return json.loads(fixture_bytes(name))


def sse_events(name: str = STREAM_SSE_THINKING) -> list[bytes]:
    """The recorded ``alt=sse`` stream cut into its events, each with its own CRLF separator, bytes untouched."""
    return [event + b"\r\n\r\n" for event in fixture_bytes(name).split(b"\r\n\r\n") if event.strip()]


def sse_recorded_chunks(name: str = STREAM_SSE_THINKING) -> list[dict[str, Any]]:
    return [json.loads(event.removeprefix(b"data: ")) for event in sse_events(name)]


def signed_parts(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every part of the recording that carries a ``thoughtSignature``, in order."""
    return [
        part
        for chunk in chunks
        for candidate in chunk.get("candidates", [])[:1]
        for part in candidate["content"]["parts"]
        if "thoughtSignature" in part
    ]


def recorded_text(chunks: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    """(answer, thoughts) of the recording."""
    text, thoughts = [], []
    for chunk in recorded_chunks() if chunks is None else chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            (thoughts if part.get("thought") else text).append(part.get("text", ""))
    return "".join(text), "".join(thoughts)


def sse_frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\r\n\r\n"


def long_chunks(
    tokens: int, model: str = "gemini-2.5-flash", *, finish: str = "STOP", function_call: bool = False
) -> list[dict[str, Any]]:
    chunks = []
    for i in range(tokens):
        candidate: dict[str, Any] = {"content": {"parts": [{"text": f"w{i} "}], "role": "model"}, "index": 0}
        if i == tokens - 1:
            candidate["finishReason"] = finish
            if function_call:
                call = {"functionCall": {"name": "pelican_name_generator", "args": {}}}
                candidate["content"]["parts"].append(call)
        usage = {"promptTokenCount": 9, "candidatesTokenCount": i + 1, "totalTokenCount": 10 + i}
        chunks.append({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "long"})
    return chunks


def parallel_chunks(with_ids: bool) -> list[dict[str, Any]]:
    """Two calls in one chunk, then the empty finishing part: the function-call recording's shape and figures."""
    recorded = recorded_chunks(STREAM_ARRAY_FUNCTION_CALL)
    signature = recorded[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    parts: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(PARALLEL_CALLS):
        call: dict[str, Any] = {"name": name, "args": args}
        if with_ids:
            call["id"] = f"c9bjmk{i:02d}"
        parts.append({"functionCall": call, **({"thoughtSignature": signature} if i == 0 else {})})
    first = json.loads(json.dumps(recorded[0]))
    first["candidates"][0]["content"]["parts"] = parts
    return [first, recorded[1]]


def _schema_problem(schema: Any, where: str) -> str | None:
    if not isinstance(schema, dict):
        return None
    for key in schema:
        if key not in SCHEMA_KEYS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
    if str(schema.get("type", "")).lower() == "object" and schema.get("properties") == {}:
        return f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type\n"
    nested = [(f"{where}.properties[{i}].value", s) for i, s in enumerate((schema.get("properties") or {}).values())]
    nested += [(f"{where}.items", schema["items"])] if "items" in schema else []
    nested += [(f"{where}.any_of[{i}]", s) for i, s in enumerate(schema.get("anyOf") or [])]
    return next((p for w, s in nested if (p := _schema_problem(s, w))), None)


def _parts_of(content: dict[str, Any], camel: str) -> list[dict[str, Any]]:
    snake = "function_call" if camel == "functionCall" else "function_response"  # the API takes both spellings
    return [part for part in content.get("parts") or [] if camel in part or snake in part]


def tool_problem(body: dict[str, Any], model: str) -> str | None:
    """What the real API refuses in a function-calling request (R4.3, R4.4)."""
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}].parameters"
            if problem := _schema_problem(declaration.get("parameters"), where):
                return problem
    contents = body.get("contents") or []
    for i, content in enumerate(contents):
        calls = _parts_of(content, "functionCall") if content.get("role") == "model" else []
        answer = contents[i + 1] if i + 1 < len(contents) else None
        if calls and answer is not None and len(_parts_of(answer, "functionResponse")) != len(calls):
            return (
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
    last_text = max(
        (i for i, c in enumerate(contents) if c.get("role") == "user" and not _parts_of(c, "functionResponse")),
        default=0,
    )
    if model.startswith("gemini-3") or model == RECORDED_MODEL:
        for content in contents[last_text:]:
            calls = _parts_of(content, "functionCall") if content.get("role") == "model" else []
            if calls and "thoughtSignature" not in calls[0]:
                name = (calls[0].get("functionCall") or calls[0].get("function_call") or {}).get("name")
                return (
                    "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    f"to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `default_api:{name}` , position 1. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
    return None


def answers_calls(body: dict[str, Any]) -> bool:
    """Whether the request's last turn holds function responses (the tool loop's next request)."""
    contents = body.get("contents") or []
    return bool(contents) and bool(_parts_of(contents[-1], "functionResponse"))


def blocked_chunk() -> dict[str, Any]:
    return {
        "promptFeedback": {
            "blockReason": "PROHIBITED_CONTENT",
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
        },
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash",
    }


def safety_chunks() -> list[dict[str, Any]]:
    usage = {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11}
    return [
        {
            "candidates": [{"content": {"parts": [{"text": "Here is how"}], "role": "model"}, "index": 0}],
            "usageMetadata": usage,
        },
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}], "role": "model"},
                    "finishReason": "SAFETY",
                    "index": 0,
                    "safetyRatings": [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                    ],
                }
            ],
            "usageMetadata": usage,
        },
    ]


class FakeGemini(FakeProvider):
    def __init__(self, api_key: str = "AIzaSyFakeGeminiKey-000000000000000") -> None:
        super().__init__()
        self.api_key = api_key
        self.reply = "recorded"
        self.long_tokens: int | None = None
        self.finish_reason = "STOP"  # of the synthetic stream
        self.function_call = False  # the synthetic stream's last chunk calls a function
        self.call_ids = False  # the parallel reply's calls carry ids
        self.usage_extra: dict[str, Any] = {}  # more usageMetadata fields on the synthetic stream's chunks
        self.stream_fault: StreamFault | None = None
        self.error_chunk = error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        self.imagen = "ok"
        self.known_models = {
            str(m["name"]).removeprefix("models/") for m in json.loads(fixture_bytes(MODELS_PAGE_1))["models"]
        } | {"gemini-test-page-two"}

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1beta"

    def chunks(self, model: str = RECORDED_MODEL, body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.long_tokens is not None:
            chunks = long_chunks(self.long_tokens, finish=self.finish_reason, function_call=self.function_call)
            for chunk in chunks:
                chunk["usageMetadata"].update(self.usage_extra)
            return chunks
        if self.reply == "blocked":
            return [blocked_chunk()]
        if self.reply == "safety":
            return safety_chunks()
        if self.reply == "parallel_calls":
            return parallel_chunks(self.call_ids)
        if model == THINKING_MODEL:
            return sse_recorded_chunks()
        if model == FUNCTION_CALL_MODEL:
            return recorded_chunks(self.function_call_recording(body or {}))
        return recorded_chunks()

    @staticmethod
    def function_call_recording(body: dict[str, Any]) -> str:
        return FUNCTION_CALL_TURN2 if answers_calls(body) else STREAM_ARRAY_FUNCTION_CALL

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        query = parse_qs(request.query)
        key = request.headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
        if key != self.api_key:
            await respond(send, 400, API_KEY_INVALID)
            return
        # The real service answers under both API versions; the plugin uses v1beta, some clients v1.
        path = request.path.removeprefix("/v1beta/").removeprefix("/v1/")
        if request.method == "GET" and path == "models":
            await self.models(send, query)
            return
        if request.method != "POST" or not path.startswith("models/") or ":" not in path:
            await respond(send, 404, error_body(404, "NOT_FOUND", f"Method not found: {request.path}"))
            return
        model, method = path.removeprefix("models/").rsplit(":", 1)
        body = request.json or {}
        problem = tool_problem(body, model) if method in ("streamGenerateContent", "generateContent") else None
        if model not in self.known_models:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
                "Call ListModels to see the list of available models and their supported methods."
            )
            await respond(send, 404, error_body(404, "NOT_FOUND", message))
        elif problem:
            await respond(send, 400, error_body(400, "INVALID_ARGUMENT", problem))
        elif method == "streamGenerateContent":
            await self.stream(send, receive, model, body, sse=query.get("alt") == ["sse"])
        elif method == "generateContent":
            await respond(send, 200, self.merged(model, body))
        elif method == "predict":
            await respond(send, 200, self.predictions(request.json or {}))
        else:
            await respond(send, 404, error_body(404, "NOT_FOUND", f"unknown method {method}"))

    async def models(self, send: Send, query: dict[str, list[str]]) -> None:
        page_1 = fixture_bytes(MODELS_PAGE_1)
        token = json.loads(page_1)["nextPageToken"]
        if query.get("pageToken") == [token]:
            await respond(send, 200, PAGE_2)
        else:
            await respond(send, 200, page_1)

    async def stream(self, send: Send, receive: Receive, model: str, body: dict[str, Any], *, sse: bool) -> None:
        recorded = self.long_tokens is None and self.reply == "recorded"
        if not sse and recorded and self.stream_fault is None:
            array = self.function_call_recording(body) if model == FUNCTION_CALL_MODEL else STREAM_ARRAY
            raw = fixture_bytes(array) if model != THINKING_MODEL else json.dumps(self.chunks(model)).encode()
            await self.stream_chunks(send, receive, [raw], content_type="application/json; charset=UTF-8")
            return
        chunks = self.chunks(model, body)
        frames = sse_events() if recorded and model == THINKING_MODEL else [sse_frame(c) for c in chunks]
        await send_stream(
            self,
            send,
            receive,
            frames,
            content_type="text/event-stream",
            fault=self.stream_fault,
            malformed=b'data: {"candidates": [{"content": {"parts": [{"text": "cut\r\n\r\n',
            error=sse_frame(self.error_chunk),
        )

    def merged(self, model: str = RECORDED_MODEL, body: dict[str, Any] | None = None) -> dict[str, Any]:
        chunks = self.chunks(model, body)
        text = "".join(
            part.get("text", "")
            for chunk in chunks
            for candidate in chunk.get("candidates", [])[:1]
            for part in candidate["content"]["parts"]
            if not part.get("thought")
        )
        last = json.loads(json.dumps(chunks[-1]))
        if last.get("candidates"):
            last["candidates"][0]["content"]["parts"] = [{"text": text}]
        return last

    def predictions(self, body: dict[str, Any]) -> dict[str, Any]:
        count = int(body.get("parameters", {}).get("sampleCount", 1))
        if self.imagen == "filtered":
            return {"predictions": [{"raiFilteredReason": "The image was filtered for violating the policy."}]}
        if self.imagen == "mislabelled":
            data, declared = jpeg_bytes((8, 8)), "image/png"
        elif self.imagen == "not_image":
            data, declared = b"<html>not an image</html>", "image/png"
        else:
            data, declared = png_bytes((8, 8)), "image/png"
        encoded = base64.b64encode(data).decode()
        return {"predictions": [{"bytesBase64Encoded": encoded, "mimeType": declared} for _ in range(count)]}
