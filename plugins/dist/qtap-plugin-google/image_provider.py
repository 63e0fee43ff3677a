"""Google Gemini image provider (implemented by the provider-plugins work)."""

from providers.stub import NotYetImplementedImageProvider


class GoogleImageProvider(NotYetImplementedImageProvider):
    pass
