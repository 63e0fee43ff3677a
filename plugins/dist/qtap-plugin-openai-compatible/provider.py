"""OpenAI-compatible chat provider (implemented by the provider-plugins work)."""

from providers.stub import NotYetImplementedProvider


class OpenAICompatibleProvider(NotYetImplementedProvider):
    pass
