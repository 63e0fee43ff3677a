"""The Google Gemini provider plugin. Its metadata lives in manifest.json."""

from providers.contract import ImageProvider, LLMProvider, ProviderPlugin

from .image_provider import GoogleImageProvider
from .provider import GoogleProvider


class GooglePlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return GoogleProvider(self.manifest, api_key=api_key, base_url=base_url)

    def create_image_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> ImageProvider:
        return GoogleImageProvider(self.manifest, api_key=api_key, base_url=base_url)


plugin = GooglePlugin()
