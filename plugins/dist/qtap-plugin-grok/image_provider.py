"""xAI Grok image provider (implemented by the provider-plugins work)."""

from providers.stub import NotYetImplementedImageProvider


class GrokImageProvider(NotYetImplementedImageProvider):
    pass
