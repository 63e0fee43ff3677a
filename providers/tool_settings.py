"""Reads of tool settings, always scoped to one user: what each enabled tool plugin is handed as its
``ToolContext`` (the chat's tool loop asks ``tool_contexts``), and the rows the Tools page shows.

A context's settings are the plugin's configSchema defaults with the user's saved values on top and the
secrets decrypted. A secret no configured key opens is left out, with a warning in the log: never the
ciphertext, never a guess.

May import: ``providers.contract``, ``providers.crypto``, ``providers.manifest``, ``providers.models``,
``providers.tool_values``.
"""

from __future__ import annotations

import logging
from typing import Any

from providers import crypto
from providers.contract import ProviderPlugin, ToolContext
from providers.manifest import Manifest
from providers.models import ToolSettings, enabled_tool_plugins
from providers.tool_values import SERVERS, defaults, has_servers, header_address, schema_of

logger = logging.getLogger("qtap.providers")


def tool_plugins() -> list[ProviderPlugin[Manifest]]:
    """The loaded and enabled TOOL_PROVIDER plugins, by name."""
    return enabled_tool_plugins()


def tool_settings_row(user: Any, plugin: str) -> ToolSettings | None:
    """The stored settings of ``user`` (a user or a user's id) for ``plugin`` (its registered name), or
    None before the first save."""
    return ToolSettings.objects.filter(user=user, plugin=plugin).first()


def _decrypted(row: ToolSettings, address: str) -> str | None:
    try:
        return row.secret(address)
    except crypto.DecryptionError:
        logger.warning(
            "a secret of the %s settings of user %s cannot be decrypted (%s); it is left out",
            row.plugin,
            row.user_id,
            address,
        )
        return None


def settings_for(manifest: Manifest, row: ToolSettings | None) -> dict[str, Any]:
    """Defaults, then saved values, then secrets decrypted: what the plugin reads as its settings."""
    merged = defaults(manifest)
    if row is None:
        return merged
    known = {f.key: f for f in schema_of(manifest)}
    merged.update({key: value for key, value in row.values.items() if key in known and known[key].type != "secret"})
    for key, spec in known.items():
        if spec.type == "secret" and key in row.encrypted_secrets:
            value = _decrypted(row, key)
            if value is not None:
                merged[key] = value
    if has_servers(manifest):
        merged[SERVERS] = [_server_with_headers(row, server) for server in row.values.get(SERVERS) or ()]
    return merged


def _server_with_headers(row: ToolSettings, server: dict[str, Any]) -> dict[str, Any]:
    headers = {}
    for header in server.get("headers") or ():
        address = header_address(server["name"], header)
        value = _decrypted(row, address) if address in row.encrypted_secrets else None
        if value is not None:
            headers[header] = value
    return {
        "name": server["name"],
        "url": server["url"],
        "headers": headers,
        "needs_approval": bool(server.get("needs_approval", True)),
    }


def tool_context(user_id: int, plugin: ProviderPlugin[Manifest]) -> ToolContext:
    """One plugin's context for ``user_id`` (whether or not the plugin is enabled: callers check)."""
    row = tool_settings_row(user_id, plugin.manifest.name)
    return ToolContext(user_id=user_id, settings=settings_for(plugin.manifest, row))


def tool_contexts(user_id: int) -> dict[str, ToolContext]:
    """Plugin name -> the user's ToolContext, for every loaded and enabled tool plugin (two queries)."""
    plugins = tool_plugins()
    rows = {
        row.plugin: row
        for row in ToolSettings.objects.filter(user_id=user_id, plugin__in=[p.manifest.name for p in plugins])
    }
    return {
        plugin.manifest.name: ToolContext(
            user_id=user_id, settings=settings_for(plugin.manifest, rows.get(plugin.manifest.name))
        )
        for plugin in plugins
    }
