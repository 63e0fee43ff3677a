"""MCP in a chat, end to end: a user's own MCP server (the SDK's, over Streamable HTTP on loopback, behind
a bearer token) saved with its header encrypted; its tools offered to the model, called with that header,
their answers reaching the model; a server that goes down mid-chat is a tool error and the reply ends
normally; a stop during a slow call ends the reply at once and the server sees it; another user never
sees or calls this user's servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async

from providers.models import ToolSettings
from providers.services import api_key_create, connection_profile_create, tool_settings_update
from qtap_site.chat.models import Chat
from qtap_site.chat.services import chat_create
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send, session_cookie
from tests.chat.tool_support import ScriptedUpstream
from tests.support.mcp_server import McpTestServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MCP = "qtap-plugin-mcp"
COMPATIBLE = "qtap-plugin-openai-compatible"


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer(token="mcp-test-token-not-real") as server:
        yield server


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream([{"text": "Done."}]) as server:
        yield server


def mcp_chat(user, upstream: ScriptedUpstream) -> Chat:
    key = api_key_create(user=user, plugin=COMPATIBLE, label="proxy", secret=upstream.api_key)
    profile = connection_profile_create(
        user=user, name="MCP", plugin=COMPATIBLE, model="tool-model", api_key=key, base_url=upstream.base_url
    )
    chat = chat_create(user=user, profile=profile)
    chat.tools = [MCP]
    chat.save(update_fields=["tools"])
    return chat


@pytest.fixture
def alice_chat(user, upstream, mcp_server) -> Chat:
    tool_settings_update(
        user=user,
        plugin=MCP,
        values={
            "servers": [
                {
                    "name": "local",
                    "url": mcp_server.url,
                    "headers": {"Authorization": f"Bearer {mcp_server.token}"},
                    "needs_approval": False,
                }
            ]
        },
    )
    return mcp_chat(user, upstream)


def call(call_id: str, name: str, arguments: dict) -> dict:
    return {"calls": [(call_id, name, json.dumps(arguments))]}


def tool_results(request: dict) -> list[dict]:
    return [m for m in request["messages"] if m["role"] == "tool"]


async def test_the_users_server_tools_are_offered_called_with_her_header_and_answered(
    alice_chat, cookie, upstream, mcp_server
):
    upstream.turns = [call("m1", "mcp_local_echo", {"text": "over MCP"}), {"text": "It echoed."}]
    comm, _ = await open_socket(alice_chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "echo it"})
    frames = await receive_until(comm, *TERMINAL, timeout=30)
    assert frames[-1]["type"] == "generation.finished"
    offered = {t["function"]["name"] for t in upstream.chat_requests[0]["tools"]}
    assert {"mcp_local_echo", "mcp_local_add", "mcp_local_slow"} <= offered
    assert tool_results(upstream.chat_requests[1]) == [
        {"role": "tool", "tool_call_id": "m1", "content": "echo: over MCP"}
    ]
    assert ("echo", {"text": "over MCP"}) in mcp_server.seen.calls
    assert {r["authorization"] for r in mcp_server.requests} == {f"Bearer {mcp_server.token}"}
    row = await database_sync_to_async(ToolSettings.objects.get)(plugin=MCP)
    stored = json.dumps(row.values) + json.dumps(row.encrypted_secrets)
    assert mcp_server.token not in stored  # the header is stored encrypted only
    await comm.disconnect()


async def test_a_server_that_goes_down_mid_chat_is_a_tool_error_and_the_reply_ends_normally(
    alice_chat, cookie, upstream, mcp_server
):
    upstream.turns = [call("d1", "mcp_local_echo", {"text": "anyone?"}), {"text": "The server is down."}]
    upstream.on_request = lambda index: mcp_server.stop() if index == 0 else None  # after the listing
    comm, _ = await open_socket(alice_chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "try"})
    frames = await receive_until(comm, *TERMINAL, timeout=30)
    assert frames[-1]["type"] == "generation.finished" and frames[-1]["finish_reason"] == "stop"
    (result,) = [f for f in frames if f["type"] == "tool.result"]
    assert result["is_error"] is True
    (answer,) = tool_results(upstream.chat_requests[1])
    assert "could not be reached" in answer["content"]
    await comm.disconnect()


async def test_stop_during_a_slow_mcp_call_ends_the_reply_and_the_server_sees_it(
    alice_chat, cookie, upstream, mcp_server
):
    upstream.turns = [call("s1", "mcp_local_slow", {"seconds": 30}), {"text": "never"}]
    comm, _ = await open_socket(alice_chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "wait"})
    (started,) = [f for f in await receive_until(comm, "tool.call", timeout=30) if f["type"] == "tool.call"]
    assert await wait_for(mcp_server.seen.slow_started, 10)
    stopped = time.monotonic()
    await send(comm, {"type": "generation.stop", "message_id": started["message_id"]})
    frames = await receive_until(comm, *TERMINAL)
    assert time.monotonic() - stopped < 0.3
    assert frames[-1]["finish_reason"] == "cancelled"
    seen = mcp_server.seen
    assert await wait_for(seen.slow_cancelled, 5) or await wait_for(seen.disconnected, 1)
    await comm.disconnect()


async def test_another_user_never_sees_or_calls_this_users_servers(alice_chat, other_user, upstream, mcp_server):
    bob_chat = await database_sync_to_async(mcp_chat)(other_user, upstream)
    bob_cookie = await database_sync_to_async(session_cookie)(other_user)
    upstream.turns = [call("b1", "mcp_local_echo", {"text": "alice's?"}), {"text": "no"}]
    comm, _ = await open_socket(bob_chat.pk, bob_cookie)
    await send(comm, {"type": "message.send", "content": "call alice's server"})
    frames = await receive_until(comm, *TERMINAL, timeout=30)
    assert frames[-1]["type"] == "generation.finished"
    # Bob has no servers: nothing is offered, and a call the model makes up anyway is never run.
    assert "tools" not in upstream.chat_requests[0] and len(upstream.chat_requests) == 1
    assert not [f for f in frames if f["type"] == "tool.result"]
    assert mcp_server.requests == [] and mcp_server.seen.calls == []
    await comm.disconnect()
