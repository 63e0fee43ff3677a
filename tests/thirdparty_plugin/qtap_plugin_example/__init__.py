"""An example provider plugin distributed as a Python package (entry-point group ``qtap.plugins``)."""

from providers.contract import LLMProvider, ProviderPlugin

from .provider import ExampleProvider


class ExamplePlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return ExampleProvider(self, api_key=api_key, base_url=base_url)


plugin = ExamplePlugin()
