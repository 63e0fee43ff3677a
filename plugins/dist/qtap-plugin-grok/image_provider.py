"""xAI image generation (grok-2-image, grok-imagine-image) through ``POST /images/generations``."""

from __future__ import annotations

from providers.openai_format import OpenAIDialectImageProvider

from .provider import GrokProvider


class GrokImageProvider(OpenAIDialectImageProvider, GrokProvider):
    """xAI takes no size, quality or style; ``aspect_ratio`` goes to the models that accept it."""

    image_flavour = "xai"
