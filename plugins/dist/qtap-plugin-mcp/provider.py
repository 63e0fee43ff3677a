"""The MCP connector's ``ToolProvider``: the tools of the user's MCP servers, offered to the model.

``list_tools`` asks every server at once, each within ``LIST_SECONDS``: a server that is down, refuses
the credentials or is refused by the URL policy is left out (logged) and the others' tools are offered
all the same. ``call`` connects to the tool's server and runs it; every failure is a ``ToolResult``
with ``is_error`` saying what happened, so the model reads it and the chat goes on.

The exposed names (``mcp_<server>_<tool>``) are remembered per user from the last listing; a name this
provider has not listed (or whose server changed since) is looked up by listing the servers again.

May import: ``providers.contract``, ``providers.errors`` (and this plugin's modules).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from mcp.client.session import ClientSession
from mcp_types import CallToolResult, PaginatedRequestParams, Tool

from providers.contract import ToolContext, ToolResult, ToolSpec
from providers.errors import ProviderError, ProviderTimeoutError

from .connection import label, run, sentence
from .content import tool_result
from .servers import PREFIX, Server, ToolNames, sanitise, server_from, servers_from

logger = logging.getLogger("qtap.plugins.mcp")

LIST_SECONDS = 10.0  # below the manifest's timeoutSeconds: one slow server must not cost the others
MAX_PAGES = 20  # a server whose tools/list never stops paginating is cut off here


async def _all_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


async def server_tools(server: Server) -> list[Tool]:
    """The tools ``server`` lists now; raises a ``ProviderError`` saying why it could not."""
    return await run(server, _all_tools)


def _parameters(tool: Tool) -> dict[str, Any]:
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    return schema


def _spec(exposed: str, tool: Tool, server: Server) -> ToolSpec:
    what = (tool.description or tool.title or f"The {tool.name} tool").strip()
    description = f"{what}\n(Tool {tool.name!r} of the MCP server {server.name}.)"
    return ToolSpec(exposed, description, _parameters(tool), needs_approval=server.needs_approval)


def specs_for(names: ToolNames, server: Server, tools: list[Tool]) -> list[ToolSpec]:
    named = names.add(server, [tool.name for tool in tools])
    return [_spec(exposed, tool, server) for (exposed, _), tool in zip(named, tools, strict=True)]


async def list_server_tools(server: Mapping[str, Any]) -> list[ToolSpec]:
    """One server's tools as the model would see them (the settings page's "test"); raises a
    ``providers.errors.ProviderError`` (connection, authentication, URL refused, timeout, protocol)
    whose ``message`` says in words what went wrong."""
    parsed = server_from(server)
    if parsed is None:
        raise ValueError("An MCP server needs a name and a URL.")
    return specs_for(ToolNames(), parsed, await server_tools(parsed))


class McpToolProvider:
    def __init__(self) -> None:
        self._names: dict[int, ToolNames] = {}
        self._failures: dict[int, dict[str, ProviderError]] = {}  # per user: server name → why it was skipped

    async def _listing(self, server: Server) -> list[Tool] | ProviderError:
        try:
            return await asyncio.wait_for(server_tools(server), LIST_SECONDS)
        except TimeoutError:
            failed: ProviderError = ProviderTimeoutError(label(server), f"did not list its tools in {LIST_SECONDS:g} s")
        except ProviderError as exc:
            failed = exc
        logger.warning("MCP server %s skipped: %s", server.name, sentence(failed))
        return failed

    async def _name_all(self, servers: list[Server], user_id: int) -> tuple[ToolNames, list[ToolSpec]]:
        listings = await asyncio.gather(*(self._listing(server) for server in servers))
        names = ToolNames()
        specs: list[ToolSpec] = []
        failures: dict[str, ProviderError] = {}
        for server, tools in zip(servers, listings, strict=True):
            if isinstance(tools, ProviderError):
                failures[server.name] = tools
            else:
                specs.extend(specs_for(names, server, tools))
        self._names[user_id], self._failures[user_id] = names, failures
        return names, specs

    def _unlisted(self, name: str, context: ToolContext) -> ToolResult:
        """The answer for a name no listing has: its server's failure when the name is one of its."""
        failures = self._failures.get(context.user_id, {})
        owners = [s for s in servers_from(context.settings) if name.startswith(f"{PREFIX}{sanitise(s.name)}_")]
        for server in sorted(owners, key=lambda s: len(sanitise(s.name)), reverse=True):
            if server.name in failures:
                return ToolResult(sentence(failures[server.name]), is_error=True)
        return ToolResult(
            f"No MCP server of yours offers a tool named {name!r} now (its server may have been removed).",
            is_error=True,
        )

    async def list_tools(self, context: ToolContext) -> list[ToolSpec]:
        _, specs = await self._name_all(servers_from(context.settings), context.user_id)
        return specs

    async def list_server_tools(self, server: Mapping[str, Any]) -> list[ToolSpec]:
        return await list_server_tools(server)

    async def _route(self, name: str, context: ToolContext) -> tuple[Server, str] | None:
        """The server (as the settings have it now) and tool a listed name stands for."""
        current = {server.name: server for server in servers_from(context.settings)}
        known = self._names.get(context.user_id)
        found = known.find(name) if known is not None else None
        if found is None or getattr(current.get(found[0].name), "url", None) != found[0].url:
            names, _ = await self._name_all(list(current.values()), context.user_id)
            found = names.find(name)
        server = current.get(found[0].name) if found is not None else None
        return (server, found[1]) if server is not None and found is not None else None

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        route = await self._route(name, context)
        if route is None:
            return self._unlisted(name, context)
        server, tool = route

        async def run_tool(session: ClientSession) -> CallToolResult:
            result = await session.call_tool(tool, arguments)
            if not isinstance(result, CallToolResult):  # asked for input, or an extension's result
                raise ProviderError(label(server), f"answered {tool} with a result qtap cannot use")
            return result

        try:
            result = await run(server, run_tool)
        except ProviderError as exc:
            return ToolResult(sentence(exc), is_error=True)
        return tool_result(result)

    async def aclose(self) -> None:
        """Nothing stays open between calls: every call has its own connection."""
        self._names.clear()
        self._failures.clear()
