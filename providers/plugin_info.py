"""What qtap knows about each plugin, as plain dicts: the one source for ``manage.py plugins``
(its ``--json`` shape is a contract, SPEC §3.6) and the plugins page.

Every entry has the same keys, loaded or failed, so a consumer never has to guess.

May import: ``providers.errors``, ``providers.manifest``, ``providers.plugin_state``, ``providers.registry``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from providers.errors import UnknownProviderError
from providers.manifest import Manifest
from providers.plugin_state import plugin_enabled_states, plugin_is_enabled
from providers.registry import CAPABILITY_FIELDS, Registry, registry

Status = Literal["loaded", "failed", "disabled"]
MANIFEST_CAPABILITIES = ("LLM_PROVIDER", "IMAGE_PROVIDER", "EMBEDDING_PROVIDER", "UPGRADE_MIGRATION", "TOOL_PROVIDER")
CAPABILITY_CHOICES = CAPABILITY_FIELDS + MANIFEST_CAPABILITIES


def _entry(
    *,
    name: str,
    status: Status,
    enabled: bool,
    error: str | None,
    source: str | None,
    path: Path | None,
    manifest: Manifest | None,
) -> dict[str, Any]:
    """The SPEC §3.6 keys first, in its order, then the rest of what the manifest says. A tool plugin has
    no providerConfig: its provider keys are null, its capability flags false, and ``tools`` names its tools."""
    config = manifest.provider_config if manifest else None
    tools = manifest.tool_config if manifest else None
    caps = config.capabilities if config else None
    attachments = config.attachment_support if config and config.attachment_support.supported else None
    return {
        "name": name,
        "title": manifest.title if manifest else None,
        "version": manifest.version if manifest else None,
        "provider": config.provider_name if config else None,
        "display_name": config.display_name if config else None,
        "status": status,
        "error": error,
        "source": source,
        "capabilities": {
            "chat": bool(caps and caps.chat),
            "imageGeneration": bool(caps and caps.image_generation),
            "embeddings": bool(caps and caps.embeddings),
            "webSearch": bool(caps and caps.web_search),
            # A tool plugin's own capability from its manifest, beside the four (all false for it).
            **({"TOOL_PROVIDER": True} if tools else {}),
        },
        "attachment_mime_types": list(attachments.mime_types) if attachments else [],
        "requires_api_key": config.requires_api_key if config else None,
        "requires_base_url": config.requires_base_url if config else None,
        "base_url_default": config.base_url_default if config else None,
        "tools": [tool.name for tool in tools.tools] if tools else [],
        # beyond the contract
        "enabled": enabled,
        "enabled_by_default": manifest.enabled_by_default if manifest else None,
        "description": manifest.description if manifest else None,
        "author": manifest.author if manifest else None,
        "license": manifest.license if manifest else None,
        "qtap_version": manifest.compatibility.qtap_version if manifest else None,
        "manifest_capabilities": list(manifest.capabilities) if manifest else [],
        "abbreviation": config.abbreviation if config else None,
        "colors": {"bg": config.colors.bg, "text": config.colors.text} if config else None,
        "attachment_max_bytes": attachments.max_bytes if attachments else None,
        "attachment_description": attachments.description if attachments else None,
        "api_key_label": config.api_key_label if config else None,
        "api_key_pattern": config.api_key_pattern if config else None,
        "base_url_label": config.base_url_label if config else None,
        "base_url_placeholder": config.base_url_placeholder if config else None,
        "legacy_names": list(config.legacy_names) if config else [],
        "path": str(path) if path else None,
        "has_icon": bool(path and (path / "icon.svg").is_file()),
        "dynamic_tools": bool(tools and tools.dynamic_tools),
        "tool_details": [
            {"name": t.name, "display_name": t.display_name, "description": t.description} for t in tools.tools
        ]
        if tools
        else [],
    }


def _loaded_info(name: str, enabled: bool, reg: Registry) -> dict[str, Any]:
    plugin = reg.get(name)
    return _entry(
        name=plugin.manifest.name,
        status="loaded" if enabled else "disabled",
        enabled=enabled,
        error=None,
        source=reg.source(name),
        path=reg.path(name),
        manifest=plugin.manifest,
    )


def _failed_info(name: str, reg: Registry) -> dict[str, Any]:
    failure = reg.failure(name)
    assert failure is not None  # callers look the name up in failures() first
    return _entry(
        name=name,
        status="failed",
        enabled=False,
        error=failure.reason,
        source=failure.source,
        path=None,
        manifest=failure.manifest,
    )


def plugin_info(name: str, *, using: Registry | None = None, stored_states: bool = True) -> dict[str, Any]:
    """One plugin, by plugin name, providerName, legacy name, or the name its failure is recorded under.

    ``stored_states=False`` reads no database: the plugin shows its manifest's ``enabledByDefault``."""
    reg = using or registry
    plugin = reg.find(name)
    if plugin is not None:
        manifest = plugin.manifest
        enabled = plugin_is_enabled(manifest.name, using=reg) if stored_states else manifest.enabled_by_default
        return _loaded_info(manifest.name, enabled, reg)
    if reg.failure(name) is not None:
        return _failed_info(name, reg)
    raise UnknownProviderError(name, sorted(reg.names()) + sorted(reg.failures()))


def has_capability(info: dict[str, Any], capability: str) -> bool:
    return bool(info["capabilities"].get(capability)) or capability in info["manifest_capabilities"]


def all_plugin_info(
    *, capability: str | None = None, using: Registry | None = None, stored_states: bool = True
) -> list[dict[str, Any]]:
    """Loaded plugins (sorted by name), then failed ones; optionally only those with ``capability``
    (chat, imageGeneration, embeddings, webSearch, or a manifest capability such as IMAGE_PROVIDER).

    ``stored_states=False`` reads no database: each plugin shows its manifest's ``enabledByDefault``."""
    if capability is not None and capability not in CAPABILITY_CHOICES:
        raise ValueError(f"Unknown capability {capability!r}. Choose one of: {', '.join(CAPABILITY_CHOICES)}")
    reg = using or registry
    states = plugin_enabled_states(using=reg, stored=stored_states)
    infos = [_loaded_info(name, states[name], reg) for name in sorted(states)]
    infos += [_failed_info(name, reg) for name in sorted(reg.failures())]
    if capability is not None:
        infos = [info for info in infos if has_capability(info, capability)]
    return infos
