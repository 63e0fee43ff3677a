"""What the tool-loop tests share: an upstream that speaks Chat Completions and answers each request from a
script of turns (tool calls or text), and a tool plugin of test tools loaded through the real registry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from providers import contract
from providers.manifest import parse_manifest
from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

TOOL_PLUGIN = "qtap-plugin-test-tools"


class ScriptedUpstream(FakeProvider):
    """``turns``: each chat request takes the next, ``{"calls": [(id, name, argument text), ...], "text": …}``
    or ``{"text": …}``; the last is repeated once the script runs out."""

    def __init__(self, turns: list[dict[str, Any]]) -> None:
        super().__init__()
        self.turns = turns
        self.api_key = "sk-test-tools-not-a-real-key"
        self.on_request: Callable[[int], None] | None = None  # called with each chat request's index

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests if r.path.endswith("/chat/completions")]

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        if not request.path.endswith("/chat/completions"):
            await respond(send, 200, {"object": "list", "data": [{"id": "tool-model", "object": "model"}]})
            return
        index = len(self.chat_requests) - 1
        if self.on_request is not None:
            await asyncio.to_thread(self.on_request, index)
        turn = self.turns[min(index, len(self.turns) - 1)]
        await self.stream_chunks(send, receive, _chunks(turn))


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "model": "tool-model", "choices": [choice]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _chunks(turn: dict[str, Any]) -> list[bytes]:
    chunks = [_event({"role": "assistant", "content": ""})]
    if turn.get("text"):
        chunks.append(_event({"content": turn["text"]}))
    calls = turn.get("calls") or []
    for position, (call_id, name, arguments) in enumerate(calls):
        first = {"index": position, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        chunks.append(_event({"tool_calls": [first]}))
        half = len(arguments) // 2  # the arguments arrive in pieces, as they do upstream
        for piece in (arguments[:half], arguments[half:]):
            chunks.append(_event({"tool_calls": [{"index": position, "function": {"arguments": piece}}]}))
    chunks.append(_event({}, "tool_calls" if calls else "stop"))
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    body = {"id": "chatcmpl-tools", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    chunks.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return chunks


# ---- the test tools --------------------------------------------------------------------------------

SCHEMA_TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
NO_ARGUMENTS = {"type": "object", "properties": {}}


class Tools:
    """``echo`` answers its text; ``slow`` sleeps ``seconds`` (and records a cancellation); ``boom``
    raises; ``big`` answers ``size`` characters; ``guarded`` needs the user's approval."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.cancelled = asyncio.Event()
        self.started = 0

    async def list_tools(self, context: contract.ToolContext) -> list[contract.ToolSpec]:
        seconds = {"type": "object", "properties": {"seconds": {"type": "number"}}}
        size = {"type": "object", "properties": {"size": {"type": "integer"}}}
        return [
            contract.ToolSpec("echo", "Answers its text.", SCHEMA_TEXT),
            contract.ToolSpec("slow", "Sleeps.", seconds),
            contract.ToolSpec("boom", "Always fails.", NO_ARGUMENTS),
            contract.ToolSpec("big", "A long answer.", size),
            contract.ToolSpec("guarded", "Needs approval.", SCHEMA_TEXT, needs_approval=True),
        ]

    async def call(self, name: str, arguments: dict[str, Any], context: contract.ToolContext) -> contract.ToolResult:
        self.calls.append((name, arguments, context.user_id))
        self.started += 1
        if name in ("echo", "guarded"):
            return contract.ToolResult(f"echo: {arguments['text']}")
        if name == "slow":
            try:
                await asyncio.sleep(float(arguments.get("seconds", 5)))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return contract.ToolResult("slept")
        if name == "big":
            return contract.ToolResult("x" * int(arguments.get("size", 10)))
        raise RuntimeError("the boom tool always fails")


class ToolsPlugin(contract.ProviderPlugin[Any]):
    def __init__(self) -> None:
        self.tools = Tools()

    def create_tool_provider(self) -> contract.ToolProvider:
        return self.tools


def tool_plugin() -> ToolsPlugin:
    plugin = ToolsPlugin()
    plugin.manifest = parse_manifest(
        {
            "name": TOOL_PLUGIN,
            "title": "Test tools",
            "version": "1.0.0",
            "capabilities": ["TOOL_PROVIDER"],
            "toolConfig": {
                "tools": [{"name": "echo", "displayName": "Echo", "description": "Answers its text."}],
                "dynamicTools": True,
                "timeoutSeconds": 1,
            },
        }
    )
    return plugin
