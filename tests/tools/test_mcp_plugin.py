"""The MCP connector against a real MCP server (the SDK's own, over Streamable HTTP on loopback, behind a
bearer token): tools listed under their exposed names, calls that carry the user's header there and
only there, failures told to the model in words, a stopped call that stops at the server too, and URLs
the outbound policy refuses never contacted."""

from __future__ import annotations

import asyncio
import importlib
import time

import pytest

from providers import errors, urlpolicy
from providers.contract import ToolSpec
from tests.support.mcp_server import McpTestServer, wait_for
from tests.tools.conftest import MCP, mcp_context, server_entry, tool_provider

NAMES = {"echo", "add", "picture", "broken", "slow"}


def servers_module():
    """The plugin's naming module, as the site's loader imported it."""
    return importlib.import_module("qtap_plugins.qtap_plugin_mcp.servers")


async def test_tools_are_listed_as_mcp_server_tool_with_their_schema_and_approval(mcp_server) -> None:
    provider = tool_provider(MCP)
    context = mcp_context(
        server_entry(mcp_server, "one", needs_approval=True), server_entry(mcp_server, "two", needs_approval=False)
    )
    specs = {spec.name: spec for spec in await provider.list_tools(context)}
    assert set(specs) == {f"mcp_{server}_{tool}" for server in ("one", "two") for tool in NAMES}
    echo = specs["mcp_one_echo"]
    assert echo.parameters["type"] == "object"
    assert echo.parameters["properties"]["text"]["type"] == "string" and echo.parameters["required"] == ["text"]
    assert "prefixed with 'echo: '" in echo.description
    assert echo.needs_approval is True and specs["mcp_two_echo"].needs_approval is False


async def test_a_call_reaches_the_server_with_the_users_header_and_its_answer_comes_back(mcp_server) -> None:
    provider = tool_provider(MCP)
    context = mcp_context(server_entry(mcp_server))
    await provider.list_tools(context)
    answer = await provider.call("mcp_local_echo", {"text": "hello there"}, context)
    assert answer.content == "echo: hello there" and answer.is_error is False
    assert ("echo", {"text": "hello there"}) in mcp_server.seen.calls
    assert (await provider.call("mcp_local_add", {"a": 2, "b": 3}, context)).content == "5"
    assert mcp_server.requests and all(r["authorization"] == f"Bearer {mcp_server.token}" for r in mcp_server.requests)
    assert mcp_server.seen.refused == []


async def test_a_call_without_a_listing_first_finds_its_tool(mcp_server) -> None:
    """The host may hand a call to a provider that did not list (a new one): the name is looked up."""
    answer = await tool_provider(MCP).call("mcp_local_echo", {"text": "x"}, mcp_context(server_entry(mcp_server)))
    assert answer.content == "echo: x"


async def test_other_content_is_described_and_a_tool_error_is_an_error(mcp_server) -> None:
    provider = tool_provider(MCP)
    context = mcp_context(server_entry(mcp_server))
    picture = await provider.call("mcp_local_picture", {}, context)
    assert picture.content == "a picture:\n[image: image/png, 32 bytes]" and not picture.is_error
    broken = await provider.call("mcp_local_broken", {}, context)
    assert broken.is_error and "broken" in broken.content


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer not-the-token"}, {}], ids=["wrong", "missing"])
async def test_a_wrong_or_missing_token_is_a_tool_error_in_words(mcp_server, headers) -> None:
    provider = tool_provider(MCP)
    context = mcp_context({**server_entry(mcp_server), "headers": headers})
    assert await provider.list_tools(context) == []  # skipped, not raised
    answer = await provider.call("mcp_local_echo", {"text": "hi"}, context)
    assert answer.is_error
    assert "the MCP server local refused the credentials" in answer.content and "401" in answer.content
    assert "not-the-token" not in answer.content
    assert mcp_server.requests == [] and mcp_server.seen.calls == []
    with pytest.raises(errors.AuthenticationError) as info:
        await provider.list_server_tools(context.settings["servers"][0])
    assert info.value.status == 401 and "credentials" in info.value.message


async def test_headers_go_to_their_own_server_only() -> None:
    with McpTestServer(token="token-of-a") as a, McpTestServer(token="token-of-b") as b:
        provider = tool_provider(MCP)
        context = mcp_context(server_entry(a, "a"), server_entry(b, "b"))
        assert len(await provider.list_tools(context)) == 2 * len(NAMES)
        assert (await provider.call("mcp_b_echo", {"text": "to b"}, context)).content == "echo: to b"
        assert {r["authorization"] for r in a.requests} == {"Bearer token-of-a"}
        assert {r["authorization"] for r in b.requests} == {"Bearer token-of-b"}
        assert a.seen.refused == [] and b.seen.refused == []


async def test_a_stopped_server_is_skipped_and_its_calls_are_errors(mcp_server) -> None:
    with McpTestServer() as other:
        provider = tool_provider(MCP)
        context = mcp_context(server_entry(mcp_server, "down"), server_entry(other, "up"))
        assert len(await provider.list_tools(context)) == 2 * len(NAMES)
        mcp_server.stop()
        # Listed while it was up, called now that it is down.
        answer = await provider.call("mcp_down_echo", {"text": "hi"}, context)
        assert answer.is_error and answer.content.startswith("the MCP server down could not be reached: ")
        # Listed while it is down: the others' tools are still there, and its names still answer in words.
        names = {spec.name for spec in await provider.list_tools(context)}
        assert names == {f"mcp_up_{tool}" for tool in NAMES}
        again = await tool_provider(MCP).call("mcp_down_echo", {"text": "hi"}, context)
        assert again.is_error and again.content.startswith("the MCP server down could not be reached: ")
        assert (await provider.call("mcp_up_echo", {"text": "still"}, context)).content == "echo: still"
        with pytest.raises(errors.ProviderConnectionError, match="could not be reached"):
            await provider.list_server_tools(context.settings["servers"][0])


async def test_a_cancelled_call_ends_at_once_and_the_server_sees_it(mcp_server) -> None:
    provider = tool_provider(MCP)
    context = mcp_context(server_entry(mcp_server))
    await provider.list_tools(context)
    task = asyncio.ensure_future(provider.call("mcp_local_slow", {"seconds": 30}, context))
    assert await wait_for(mcp_server.seen.slow_started, 10)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.3
    seen = mcp_server.seen
    assert await wait_for(seen.slow_cancelled, 2) or await wait_for(seen.disconnected, 1)


@pytest.mark.parametrize(
    "url, words",
    [("http://169.254.169.254/mcp", "cloud metadata"), ("http://[fe80::1]:8080/mcp", "link-local")],
)
async def test_a_url_the_policy_always_refuses_is_a_tool_error(url, words) -> None:
    provider = tool_provider(MCP)
    context = mcp_context({"name": "meta", "url": url, "headers": {"Authorization": "Bearer x"}})
    assert await provider.list_tools(context) == []
    answer = await provider.call("mcp_meta_anything", {}, context)
    assert answer.is_error and "the MCP server meta is at a URL that is refused" in answer.content
    assert words in answer.content
    with pytest.raises(errors.UrlRefusedError):
        await provider.list_server_tools(context.settings["servers"][0])


async def test_under_public_only_a_loopback_server_is_not_contacted(mcp_server, settings) -> None:
    provider = tool_provider(MCP)
    context = mcp_context(server_entry(mcp_server))
    await provider.list_tools(context)  # listed under the default policy
    settings.QTAP_BASE_URL_POLICY = "public-only"  # then the operator locks the site down
    before = len(mcp_server.requests)
    answer = await provider.call("mcp_local_echo", {"text": "hi"}, context)
    assert answer.is_error and "loopback" in answer.content and "public-only" in answer.content
    assert await provider.list_tools(context) == []
    assert len(mcp_server.requests) == before and mcp_server.seen.refused == []


async def test_the_connection_itself_goes_through_the_policy_checking_transport(
    mcp_server, settings, monkeypatch
) -> None:
    """Were the URL check before the connection to let a URL through, the transport under the SDK's
    client still refuses it: the MCP connection's HTTP is qtap's."""
    settings.QTAP_BASE_URL_POLICY = "public-only"
    monkeypatch.setattr(urlpolicy, "refusal_at_use", lambda url: None)
    with pytest.raises(errors.UrlRefusedError) as info:
        await tool_provider(MCP).list_server_tools(server_entry(mcp_server))
    assert "loopback" in info.value.message
    assert mcp_server.requests == [] and mcp_server.seen.refused == []


async def test_list_server_tools_answers_the_specs_the_model_would_see(mcp_server) -> None:
    plugin_helper = importlib.import_module("qtap_plugins.qtap_plugin_mcp").list_server_tools
    specs = await plugin_helper(server_entry(mcp_server, "probe"))
    assert all(isinstance(spec, ToolSpec) for spec in specs)
    assert {spec.name for spec in specs} == {f"mcp_probe_{tool}" for tool in NAMES}


def test_exposed_names_are_sanitised_short_and_unique() -> None:
    servers = servers_module()
    names = servers.ToolNames()
    server = servers.Server("my.server", "http://example.test/mcp")
    long_tool = "a-very-long-tool-name-" * 5
    named = dict(names.add(server, ["read file", "read_file", long_tool, long_tool + "2", "ünï"]))
    exposed = list(named)
    assert exposed[0] == "mcp_my_server_read_file" and exposed[1] == "mcp_my_server_read_file_2"
    assert all(len(name) <= 64 and servers._UNSAFE.search(name) is None for name in exposed)
    assert len(set(exposed)) == 5
    assert names.find(exposed[2]) == (server, long_tool)
