"""Needs a qtap version that does not exist yet."""

from providers.contract import LLMProvider, ProviderPlugin


class BrokenPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        raise AssertionError("never reached: this plugin must not load")


plugin = BrokenPlugin()
