"""Resolve a provider name and build providers from plugins.

May import: ``providers.contract``, ``providers.errors``, ``providers.registry``.
"""

from __future__ import annotations

from typing import Literal

from providers.contract import ImageProvider, LLMProvider, ToolProvider
from providers.errors import CapabilityNotSupportedError, UnknownProviderError
from providers.registry import Registry, registry


def create_llm_provider(
    provider: str, *, api_key: str | None = None, base_url: str | None = None, using: Registry | None = None
) -> LLMProvider:
    """Build the LLM provider of ``provider`` (plugin name, providerName or legacy name)."""
    plugin = (using or registry).get(provider)
    return plugin.create_provider(api_key=api_key, base_url=base_url or None)


def create_image_provider(
    provider: str, *, api_key: str | None = None, base_url: str | None = None, using: Registry | None = None
) -> ImageProvider:
    plugin = (using or registry).get(provider)
    config = plugin.manifest.provider_config
    if config is None or not config.capabilities.image_generation:
        raise CapabilityNotSupportedError(f"{plugin.manifest.name} does not generate images")
    return plugin.create_image_provider(api_key=api_key, base_url=base_url or None)


def create_tool_provider(plugin_name: str, *, using: Registry | None = None) -> ToolProvider:
    plugin = (using or registry).get(plugin_name)
    if not plugin.manifest.is_tool_provider:
        raise CapabilityNotSupportedError(f"{plugin.manifest.name} offers no tools")
    return plugin.create_tool_provider()


def is_provider_from_plugin(provider: str, *, using: Registry | None = None) -> bool:
    try:
        (using or registry).get(provider)
    except UnknownProviderError:
        return False
    return True


def get_provider_source(provider: str, *, using: Registry | None = None) -> Literal["plugin", "unknown"]:
    return "plugin" if is_provider_from_plugin(provider, using=using) else "unknown"
