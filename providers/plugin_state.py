"""Whether a plugin is enabled: a database row overrides the manifest's ``enabledByDefault``.

Reading goes through ``PluginState.objects`` (the one enabled-check); these helpers take any of a
plugin's names, and write the state under its canonical name.

May import: ``providers.manifest``, ``providers.models``, ``providers.registry``.
"""

from __future__ import annotations

from django.db import DatabaseError, connections, router

from providers.manifest import Manifest
from providers.models import PluginState
from providers.registry import Registry, registry


def _manifest(name: str, using: Registry | None) -> Manifest:
    # Raises UnknownProviderError (listing the loaded plugins) for a name nobody registered.
    return (using or registry).get(name).manifest


def plugin_is_enabled(name: str, *, using: Registry | None = None) -> bool:
    """``name`` may be a plugin name, a providerName or a legacy name."""
    return PluginState.objects.is_enabled(_manifest(name, using))


async def aplugin_is_enabled(name: str, *, using: Registry | None = None) -> bool:
    return await PluginState.objects.ais_enabled(_manifest(name, using))


def plugin_state_unavailable() -> str | None:
    """Why enable/disable states can be neither read nor stored, in one line, or None when they can.

    A database never migrated has no table for them; one that cannot be reached answers nothing. The
    schema is asked rather than the table queried, so no failed query aborts a surrounding transaction.
    """
    connection = connections[router.db_for_write(PluginState)]
    table = PluginState._meta.db_table
    try:
        with connection.cursor() as cursor:
            present = table in connection.introspection.table_names(cursor)
    except DatabaseError as exc:
        lines = str(exc).strip().splitlines()
        return f"the database cannot be reached: {lines[0] if lines else type(exc).__name__}"
    return None if present else f"the database has no table {table} yet"


def plugin_enabled_states(*, using: Registry | None = None, stored: bool = True) -> dict[str, bool]:
    """Every loaded plugin's state in one query (for listings); with ``stored=False``, without the
    database: each manifest's ``enabledByDefault`` (for a database that cannot tell)."""
    manifests = [plugin.manifest for plugin in (using or registry).all()]
    if not stored:
        return {m.name: m.enabled_by_default for m in manifests}
    return PluginState.objects.enabled_states(manifests)


def plugin_set_enabled(*, name: str, enabled: bool, using: Registry | None = None) -> PluginState:
    """Store the state under the plugin's canonical name, so ``OPENAI`` and ``qtap-plugin-openai`` agree."""
    manifest = _manifest(name, using)
    state, _ = PluginState.objects.update_or_create(name=manifest.name, defaults={"enabled": enabled})
    return state


async def aplugin_set_enabled(*, name: str, enabled: bool, using: Registry | None = None) -> PluginState:
    manifest = _manifest(name, using)
    state, _ = await PluginState.objects.aupdate_or_create(name=manifest.name, defaults={"enabled": enabled})
    return state
