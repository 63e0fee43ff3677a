"""The web fetch tool plugin: ``web_fetch`` reads one page for the model, under qtap's outbound URL
policy. Its metadata lives in manifest.json, what it does in README.md."""

from providers.contract import ProviderPlugin, ToolProvider

from .provider import WebFetchProvider


class WebFetchPlugin(ProviderPlugin):
    def create_tool_provider(self) -> ToolProvider:
        return WebFetchProvider()


plugin = WebFetchPlugin()
