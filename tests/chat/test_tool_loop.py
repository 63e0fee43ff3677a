"""The tool loop through the real websocket path: a reply that asks for tools gets their results and goes
on; bad tool traffic reaches the model as tool errors in words; approvals wait for the user (from any
tab); a stop ends a slow call at once; the round limit ends a model that never stops calling.

The upstream is a local Chat Completions server on a real socket (the OpenAI-compatible plugin), the
tool plugin a test one loaded through the real registry, the database and channel layer real.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from providers.registry import registry
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Chat, Message, ToolCall
from qtap_site.chat.services import chat_create
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send
from tests.chat.tool_support import TOOL_PLUGIN, ScriptedUpstream, ToolsPlugin, tool_plugin

pytestmark = pytest.mark.django_db(transaction=True)

COMPATIBLE = "qtap-plugin-openai-compatible"


@pytest.fixture
def tools() -> Iterator[ToolsPlugin]:
    plugin = tool_plugin()
    with registry.temporarily(plugin):
        yield plugin


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream([{"text": "Done."}]) as server:
        yield server


@pytest.fixture
def tool_chat(user, upstream, tools) -> Chat:
    key = api_key_create(user=user, plugin=COMPATIBLE, label="proxy", secret=upstream.api_key)
    profile = connection_profile_create(
        user=user, name="Tools", plugin=COMPATIBLE, model="tool-model", api_key=key, base_url=upstream.base_url
    )
    chat = chat_create(user=user, profile=profile)
    chat.tools = [TOOL_PLUGIN]
    chat.save(update_fields=["tools"])
    return chat


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def calls(*items: tuple[str, str, Any]) -> dict[str, Any]:
    return {"calls": [(cid, name, args if isinstance(args, str) else json.dumps(args)) for cid, name, args in items]}


async def ask(comm, content: str = "Use the tools.", *, timeout: float = 20) -> list[dict[str, Any]]:
    await send(comm, {"type": "message.send", "content": content})
    return await receive_until(comm, *TERMINAL, timeout=timeout)


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == kind]


def tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


async def test_a_call_runs_and_its_result_goes_back_before_the_final_answer(tool_chat, cookie, upstream, tools):
    upstream.turns = [{"text": "Let me check.", **calls(("call_1", "echo", {"text": "hi"}))}, {"text": "It said hi."}]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    frames = await ask(comm)
    assert frames[-1]["type"] == "generation.finished", frames[-1]
    (call,) = of_type(frames, "tool.call")
    assert call == {
        "type": "tool.call",
        "message_id": frames[-1]["message_id"],
        "call_id": "call_1",
        "name": "echo",
        "arguments": {"text": "hi"},
        "needs_approval": False,
        "round": 0,
    }
    (result,) = of_type(frames, "tool.result")
    assert result["call_id"] == "call_1" and result["content"] == "echo: hi" and result["is_error"] is False
    assert isinstance(result["duration_ms"], int)
    # The frames come in order: the call, its result, then the next turn's text.
    order = [f["type"] for f in frames]
    assert order.index("tool.call") < order.index("tool.result") < len(order) - 1
    # The second request carries the turn's call and its result, in Chat Completions' own format.
    first, second = upstream.chat_requests
    assert [t["function"]["name"] for t in first["tools"]] == ["echo", "slow", "boom", "big", "guarded"]
    assistant = [m for m in second["messages"] if m["role"] == "assistant"][-1]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"text": "hi"}
    assert tool_messages(second) == [{"role": "tool", "tool_call_id": "call_1", "content": "echo: hi"}]
    assert tools.tools.calls == [("echo", {"text": "hi"}, tool_chat.user_id)]
    message = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert message.status == "complete"
    assert message.content == "Let me check.\n\nIt said hi."
    assert message.input_tokens == 20 and message.output_tokens == 10  # both turns are counted
    row = await database_sync_to_async(ToolCall.objects.get)(message=message)
    assert (row.name, row.status, row.result, row.arguments) == ("echo", "complete", "echo: hi", {"text": "hi"})
    # The final drawing shows the call where its turn ended, between the two turns' text.
    html = frames[-1]["message_html"]
    assert html.index("Let me check.") < html.index('data-call-id="call_1"') < html.index("It said hi.")
    await comm.disconnect()


async def test_two_parallel_calls_run_together_and_both_results_go_back_in_order(tool_chat, cookie, upstream):
    upstream.turns = [calls(("a", "slow", {"seconds": 0.4}), ("b", "slow", {"seconds": 0.4})), {"text": "ok"}]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    started = time.monotonic()
    frames = await ask(comm)
    elapsed = time.monotonic() - started
    assert frames[-1]["type"] == "generation.finished"
    assert [m["tool_call_id"] for m in tool_messages(upstream.chat_requests[1])] == ["a", "b"]
    assert elapsed < 0.8 + 0.5, f"two 0.4 s calls took {elapsed:.2f} s: they did not run concurrently"
    await comm.disconnect()


async def test_bad_tool_traffic_reaches_the_model_as_tool_errors_and_the_reply_goes_on(
    tool_chat, cookie, upstream, tools
):
    upstream.turns = [
        calls(
            ("c1", "echo", "{not json"),
            ("c2", "no_such_tool", {}),
            ("c3", "echo", {"text": 42}),
            ("c4", "boom", {}),
            ("c5", "slow", {"seconds": 30}),
            ("c6", "big", {"size": 60_000}),
        ),
        {"text": "Recovered."},
    ]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    with override_settings(QTAP_TOOL_RESULT_MAX_CHARS=1000):
        frames = await ask(comm)
    assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "stop"
    results = {m["tool_call_id"]: m["content"] for m in tool_messages(upstream.chat_requests[1])}
    assert "were not a JSON object" in results["c1"]
    assert "no tool named 'no_such_tool'" in results["c2"] and "echo" in results["c2"]
    assert "do not match its schema" in results["c3"] and "text" in results["c3"]
    assert "The tool failed: RuntimeError: the boom tool always fails" in results["c4"]
    assert "did not answer within 1 seconds" in results["c5"]
    assert results["c6"].startswith("x" * 1000) and "cut to 1000 of its 60000 characters" in results["c6"]
    # Only the well-formed calls reached the tool.
    assert [name for name, _, _ in tools.tools.calls] == ["boom", "slow", "big"]
    statuses = {f["call_id"]: f["is_error"] for f in of_type(frames, "tool.result")}
    assert statuses == {"c1": True, "c2": True, "c3": True, "c4": True, "c5": True, "c6": False}
    message = await database_sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert message.status == "complete" and message.content == "Recovered."
    await comm.disconnect()


async def test_a_denied_call_tells_the_model_and_an_approval_from_a_second_tab_runs_it(
    tool_chat, cookie, upstream, tools
):
    upstream.turns = [
        calls(("g1", "guarded", {"text": "first"})),
        calls(("g2", "guarded", {"text": "two"})),
        {"text": "end"},
    ]
    first, _ = await open_socket(tool_chat.pk, cookie)
    await send(first, {"type": "message.send", "content": "go"})
    (waiting,) = of_type(await receive_until(first, "tool.call"), "tool.call")
    assert waiting["needs_approval"] is True and waiting["call_id"] == "g1"
    await asyncio.sleep(0.2)
    assert tools.tools.calls == []  # nothing runs before the user says yes
    await send(first, {"type": "tool.approve", "call_id": "g1", "approve": False})
    frames = await receive_until(first, "tool.call")  # the second turn's call, also waiting
    assert of_type(frames, "tool.result")[0]["is_error"] is True
    # A second tab joins while the call waits: its chat.state shows the waiting call, and it approves.
    second, state = await open_socket(tool_chat.pk, cookie)
    waiting_calls = [c for c in state["generation"]["tool_calls"] if c["status"] == "awaiting_approval"]
    assert [c["call_id"] for c in waiting_calls] == ["g2"]
    await send(second, {"type": "tool.approve", "call_id": "g2", "approve": True})
    frames = await receive_until(first, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished"
    denied, approved = (tool_messages(upstream.chat_requests[i]) for i in (1, 2))
    assert "denied" in denied[-1]["content"]
    assert approved[-1] == {"role": "tool", "tool_call_id": "g2", "content": "echo: two"}
    assert [args["text"] for _, args, _ in tools.tools.calls] == ["two"]
    await first.disconnect()
    await second.disconnect()


async def test_stop_during_a_slow_call_ends_the_reply_cancelled_at_once(tool_chat, cookie, upstream, tools):
    upstream.turns = [calls(("s1", "slow", {"seconds": 30})), {"text": "never"}]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "wait"})
    (call,) = of_type(await receive_until(comm, "tool.call"), "tool.call")
    await asyncio.sleep(0.1)
    stopped = time.monotonic()
    await send(comm, {"type": "generation.stop", "message_id": call["message_id"]})
    frames = await receive_until(comm, *TERMINAL)
    assert time.monotonic() - stopped < 0.3
    assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "cancelled"
    await asyncio.wait_for(tools.tools.cancelled.wait(), 1)
    row = await database_sync_to_async(ToolCall.objects.get)(call_id="s1")
    assert row.status == "cancelled"
    assert len(upstream.chat_requests) == 1  # the loop did not go on
    await comm.disconnect()


async def test_the_round_limit_asks_for_a_final_answer_and_never_loops_forever(tool_chat, cookie, upstream):
    upstream.turns = [calls(("r", "echo", {"text": "again"}))]  # a model that always calls
    comm, _ = await open_socket(tool_chat.pk, cookie)
    with override_settings(QTAP_TOOL_MAX_ROUNDS=3):
        frames = await ask(comm)
    assert frames[-1]["type"] == "generation.finished"
    requests = upstream.chat_requests
    assert len(requests) == 4  # three turns with tools, then the last one asked to answer
    assert [r.get("tool_choice") for r in requests] == [None, None, None, "none"]
    assert len(of_type(frames, "tool.call")) == 3
    await comm.disconnect()


async def test_a_later_message_sends_the_earlier_calls_and_results_as_history(tool_chat, cookie, upstream):
    upstream.turns = [calls(("h1", "echo", {"text": "past"})), {"text": "First answer."}, {"text": "Second."}]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    await ask(comm, "one")
    await ask(comm, "two")
    history = upstream.chat_requests[2]["messages"]
    roles = [m["role"] for m in history]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert history[1]["tool_calls"][0]["id"] == "h1" and history[2]["content"] == "echo: past"
    assert history[3]["content"] == "First answer."
    await comm.disconnect()


async def test_tool_output_is_drawn_as_text_never_as_html(tool_chat, cookie, upstream):
    attack = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    upstream.turns = [calls(("x1", "echo", {"text": attack})), {"text": "ok"}]
    comm, _ = await open_socket(tool_chat.pk, cookie)
    frames = await ask(comm)
    html = frames[-1]["message_html"]
    elements = Elements()
    elements.feed(html)
    assert not {"img", "script"} & {tag for tag, _ in elements.seen}
    assert not [name for _, attrs in elements.seen for name, _ in attrs if name.startswith("on")]
    assert "echo: &lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html  # shown, as text
    await comm.disconnect()


async def test_a_chat_without_tools_sends_none(user, upstream, tools, cookie):
    key = await database_sync_to_async(api_key_create)(user=user, plugin=COMPATIBLE, label="p", secret=upstream.api_key)
    profile = await database_sync_to_async(connection_profile_create)(
        user=user, name="Plain", plugin=COMPATIBLE, model="tool-model", api_key=key, base_url=upstream.base_url
    )
    chat = await database_sync_to_async(chat_create)(user=user, profile=profile)
    comm, _ = await open_socket(chat.pk, cookie)
    frames = await ask(comm)
    assert frames[-1]["type"] == "generation.finished"
    assert "tools" not in upstream.chat_requests[0]
    await comm.disconnect()
