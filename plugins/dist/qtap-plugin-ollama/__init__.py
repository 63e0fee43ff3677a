"""The Ollama provider plugin. Its metadata lives in manifest.json."""

from providers.contract import LLMProvider, ProviderPlugin

from .provider import OllamaProvider


class OllamaPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return OllamaProvider(self.manifest, api_key=api_key, base_url=base_url)


plugin = OllamaPlugin()
