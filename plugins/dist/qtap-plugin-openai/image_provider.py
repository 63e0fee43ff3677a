"""OpenAI image generation: gpt-image-1 and DALL-E through ``POST /images/generations``."""

from __future__ import annotations

from providers.openai_format import OpenAIDialectImageProvider

from .provider import OpenAIProvider


class OpenAIImageProvider(OpenAIDialectImageProvider, OpenAIProvider):
    """gpt-image models answer with base64; DALL-E is asked for base64 too, and a URL answer
    (from a proxy that ignores the request) is downloaded without the key."""

    image_flavour = "openai"
