"""Fixtures of the tool plugin tests: the bundled tool plugins as the site loaded them, real local
servers, and the pooled HTTP clients closed after each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from providers.contract import ToolContext, ToolProvider
from providers.http import close_clients
from providers.registry import registry
from tests.support.mcp_server import McpTestServer

MCP = "qtap-plugin-mcp"
WEB_FETCH = "qtap-plugin-web-fetch"


@pytest.fixture(autouse=True)
async def _closed_clients():
    yield
    await close_clients()


def tool_provider(name: str) -> ToolProvider:
    return registry.get(name).create_tool_provider()


def mcp_context(*servers: dict[str, Any], user_id: int = 1) -> ToolContext:
    return ToolContext(user_id=user_id, settings={"servers": list(servers)})


def server_entry(server: McpTestServer, name: str = "local", *, token: str | None = None, **extra: Any) -> dict:
    """A settings entry for ``server``, as the host hands it over (header values decrypted)."""
    entry: dict[str, Any] = {
        "name": name,
        "url": server.url,
        "headers": {"Authorization": f"Bearer {server.token if token is None else token}"},
        "needs_approval": False,
    }
    entry.update(extra)
    return entry


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    with McpTestServer() as server:
        yield server
