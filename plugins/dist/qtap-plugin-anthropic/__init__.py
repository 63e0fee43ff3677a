"""The Anthropic provider plugin. Its metadata lives in manifest.json."""

from providers.contract import LLMProvider, ProviderPlugin

from .provider import AnthropicProvider


class AnthropicPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return AnthropicProvider(self.manifest, api_key=api_key, base_url=base_url)


plugin = AnthropicPlugin()
