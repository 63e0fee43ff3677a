"""The MCP connector: the tools of the user's own MCP servers (Streamable HTTP), offered to the model.

Its metadata lives in manifest.json, what it does in README.md. ``list_server_tools(server)`` lists one
server's tools for the settings page's "test" and raises a ``providers.errors.ProviderError`` saying why
when it cannot.
"""

from providers.contract import ProviderPlugin, ToolProvider

from .provider import McpToolProvider, list_server_tools


class McpPlugin(ProviderPlugin):
    def create_tool_provider(self) -> ToolProvider:
        return McpToolProvider()

    list_server_tools = staticmethod(list_server_tools)


plugin = McpPlugin()

__all__ = ["McpPlugin", "McpToolProvider", "list_server_tools", "plugin"]
