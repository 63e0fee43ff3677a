"""OpenAI chat provider (implemented by the provider-plugins work)."""

from providers.stub import NotYetImplementedProvider


class OpenAIProvider(NotYetImplementedProvider):
    pass
