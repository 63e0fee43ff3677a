"""Writing a user's tool settings, testing an MCP server, and re-encrypting tool secrets.

``tool_settings_update`` is the one write path for ``ToolSettings`` (``providers.services`` exports it
under the contract's name): the values are checked by ``providers.tool_values``, each secret is encrypted
on its own, and a blank secret keeps the stored token as it is (never decrypted to be written again).

May import: ``providers.contract``, ``providers.crypto``, ``providers.errors``, ``providers.manifest``,
``providers.models``, ``providers.redaction``, ``providers.registry``, ``providers.tool_settings``,
``providers.tool_values``, ``providers.urlpolicy``.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from providers import crypto
from providers.contract import ProviderPlugin, ToolContext, ToolSpec
from providers.errors import ProviderError
from providers.manifest import Manifest
from providers.models import PluginState, ToolSettings
from providers.redaction import redact
from providers.registry import registry
from providers.tool_settings import tool_context
from providers.tool_values import SERVERS, Keep, clean_settings, has_servers
from providers.urlpolicy import refusal_at_use

logger = logging.getLogger("qtap.providers")

MAX_LISTED_TOOLS = 200
MAX_TOOL_NAME = 128
MAX_TOOL_DESCRIPTION = 1000


def tool_plugin(name: str) -> ProviderPlugin[Manifest]:
    """The loaded tool plugin ``name``, or ValidationError naming the tool plugins there are."""
    found = registry.find(name) if name else None
    if found is None or not found.manifest.is_tool_provider:
        tools = sorted(p.manifest.name for p in registry.all() if p.manifest.is_tool_provider)
        raise ValidationError({"plugin": f"{name!r} is not a tool plugin (there are: {', '.join(tools) or 'none'})."})
    return found


@sensitive_variables("values", "cleaned")
def tool_settings_update(*, user: Any, plugin: str, values: dict[str, Any]) -> ToolSettings:
    """Save ``values`` for ``user``'s settings of the tool plugin ``plugin``, validated against its
    configSchema (and, for qtap-plugin-mcp, the servers rule); a setting left out keeps its stored value,
    a blank secret keeps the stored secret. Raises ValidationError saying what is wrong."""
    manifest = tool_plugin((plugin or "").strip()).manifest
    with transaction.atomic():
        row = ToolSettings.objects.select_for_update().filter(user=user, plugin=manifest.name).first()
        row = row or ToolSettings(user=user, plugin=manifest.name)
        cleaned = clean_settings(manifest, values, stored=row.values, stored_secrets=row.encrypted_secrets.keys())
        row.values = cleaned.values
        row.encrypted_secrets = {
            address: row.encrypted_secrets[secret.address] if isinstance(secret, Keep) else crypto.encrypt(secret)
            for address, secret in cleaned.secrets.items()
        }
        row.full_clean()
        row.save()
    return row


def tool_secrets_rotate() -> tuple[int, list[int]]:
    """Re-encrypt every tool secret with the newest key: (rows rotated, ids of rows a secret of which no
    configured key opens; such a row is left as it is, every other row is still rotated)."""
    rotated = 0
    failed: list[int] = []
    with transaction.atomic():
        for row in ToolSettings.objects.select_for_update().only("pk", "encrypted_secrets").order_by("pk"):
            try:
                row.encrypted_secrets = {a: crypto.rotate(t) for a, t in row.encrypted_secrets.items()}
            except crypto.DecryptionError:
                failed.append(row.pk)
                continue
            row.save(update_fields=["encrypted_secrets"])
            rotated += 1
    return rotated, failed


# ---- the "Test" button of an MCP server -----------------------------------------------------------


@dataclass(frozen=True)
class ListedTool:
    name: str
    description: str


@dataclass(frozen=True)
class ServerTestResult:
    ok: bool
    message: str
    tools: tuple[ListedTool, ...] = ()


def _plain(text: Any, limit: int) -> str:
    """Text from a server as plain words: no control or format characters, bounded (the page escapes it)."""
    cleaned = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(text or ""))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _prepare(user_id: int, plugin_name: str, server_name: str) -> tuple[ProviderPlugin[Manifest], ToolContext, str]:
    """The plugin, a context holding only that server (headers decrypted), and the server's URL."""
    try:
        plugin = tool_plugin(plugin_name)
    except ValidationError as exc:
        raise LookupError(exc.messages[0]) from None
    if not has_servers(plugin.manifest):
        raise LookupError(f"{plugin.manifest.name} has no servers to test.")
    if not PluginState.objects.is_enabled(plugin.manifest):
        raise LookupError(f"{plugin.manifest.title} is disabled.")
    context = tool_context(user_id, plugin)
    server = next((s for s in context.settings.get(SERVERS, ()) if s["name"] == server_name), None)
    if server is None:
        raise LookupError(f"You have no server named {server_name!r}.")
    # Only this server: its headers go to its own URL and no other server is contacted.
    return plugin, ToolContext(user_id=user_id, settings={**context.settings, SERVERS: [server]}), server["url"]


@sensitive_variables("context")
async def tool_server_test(*, user: Any, plugin: str, server: str) -> ServerTestResult:
    """Connect to one of the user's MCP servers and list its tools; never raises for the server's
    failure: the result says in words why it failed (header values and keys are never in it)."""
    try:
        found, context, url = await sync_to_async(_prepare, thread_sensitive=True)(user.pk, plugin, server)
    except LookupError as exc:
        return ServerTestResult(False, str(exc))
    refusal = refusal_at_use(url)
    if refusal:
        return ServerTestResult(False, refusal)
    config = found.manifest.tool_config
    timeout = config.timeout_seconds if config is not None else 30.0
    entry = context.settings[SERVERS][0]
    try:
        provider = found.create_tool_provider()
        # The MCP plugin lists one server's tools itself; any other lists them from the one-server context.
        list_server_tools = getattr(provider, "list_server_tools", None) or getattr(found, "list_server_tools", None)
        listing = list_server_tools(entry) if list_server_tools is not None else provider.list_tools(context)
        try:
            specs: list[ToolSpec] = await asyncio.wait_for(listing, timeout)
        finally:
            closing = getattr(provider, "aclose", None)
            if closing is not None:
                await closing()
    except TimeoutError:
        return ServerTestResult(False, f"{server} did not answer within {timeout:g} seconds.")
    except ProviderError as exc:
        return ServerTestResult(False, _scrubbed(f"{server} answered with an error: {exc.message}", entry))
    except Exception as exc:  # a plugin's own failure, told in words rather than a 500
        logger.info("testing MCP server %s of user %s failed: %s", server, user.pk, type(exc).__name__)
        reason = str(exc) or type(exc).__name__
        return ServerTestResult(False, _scrubbed(f"Could not list the tools of {server}: {reason}", entry))
    tools = tuple(
        ListedTool(_plain(spec.name, MAX_TOOL_NAME), _plain(spec.description, MAX_TOOL_DESCRIPTION))
        for spec in list(specs)[:MAX_LISTED_TOOLS]
    )
    count = f"{len(tools)} tool{'s' if len(tools) != 1 else ''}"
    return ServerTestResult(True, f"Connected to {server}: {count}.", tools)


def _scrubbed(message: str, server: dict[str, Any]) -> str:
    for value in server.get("headers", {}).values():
        if value:
            message = message.replace(value, "[redacted]")
    return _plain(redact(message), 500)


tool_server_test.__test__ = False  # type: ignore[attr-defined]  # its name is not a pytest test
