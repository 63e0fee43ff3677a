"""A local OpenAI-dialect chat server for the chat tests: streams configurable tokens as SSE over a
real loopback socket, checks the bearer key, and can fail, stall or drop mid-stream."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

VALID_KEY = "sk-test-chat-0123456789"


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


class FakeOpenAIChat(FakeProvider):
    def __init__(self, tokens: list[str] | None = None, *, reasoning: list[str] | None = None) -> None:
        super().__init__()
        self.tokens = tokens if tokens is not None else ["Hello", ", ", "world", "!"]
        self.reasoning = reasoning or []
        self.usage: dict[str, Any] | None = None  # default: 11 prompt tokens, one completion token per chunk
        self.drop_after: int | None = None  # chunks sent before the connection is cut
        self.no_finish = False  # end cleanly without finish_reason or [DONE]

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def full_text(self) -> str:
        return "".join(self.tokens)

    def chunks(self) -> list[bytes]:
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "test-model"}
        out = [sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
        for part in self.reasoning:
            out.append(sse({**base, "choices": [{"index": 0, "delta": {"reasoning_content": part}}]}))
        for token in self.tokens:
            out.append(sse({**base, "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]}))
        if self.no_finish:
            return out
        out.append(sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        usage = self.usage or {"prompt_tokens": 11, "completion_tokens": len(self.tokens)}
        out.append(sse({**base, "choices": [], "usage": usage}))
        out.append(sse("[DONE]"))
        return out

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if request.path != "/v1/chat/completions" or request.method != "POST":
            await respond(send, 404, {"error": {"message": "no such route", "type": "invalid_request_error"}})
            return
        if request.headers.get("authorization") != f"Bearer {VALID_KEY}":
            await respond(
                send,
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
            return
        await self.stream_chunks(send, receive, self.chunks(), drop_after=self.drop_after)
