"""Whether a plugin is enabled: a database row overrides the manifest's ``enabledByDefault``.

Read at the moment of use, never cached and never in ``AppConfig.ready()``: an operator who
disables a plugin from the admin, the plugins page or ``manage.py plugins disable`` is obeyed
by the next request of every process.
"""

from __future__ import annotations

from providers.manifest import Manifest
from providers.models import PluginState
from providers.registry import Registry, registry


def _manifest(name: str, using: Registry | None) -> Manifest:
    # Raises UnknownProviderError (listing the loaded plugins) for a name nobody registered.
    return (using or registry).get(name).manifest


def plugin_is_enabled(name: str, *, using: Registry | None = None) -> bool:
    """``name`` may be a plugin name, a providerName or a legacy name."""
    manifest = _manifest(name, using)
    stored = PluginState.objects.filter(name=manifest.name).values_list("enabled", flat=True).first()
    return manifest.enabled_by_default if stored is None else bool(stored)


async def aplugin_is_enabled(name: str, *, using: Registry | None = None) -> bool:
    manifest = _manifest(name, using)
    stored = await PluginState.objects.filter(name=manifest.name).values_list("enabled", flat=True).afirst()
    return manifest.enabled_by_default if stored is None else bool(stored)


def plugin_enabled_states(*, using: Registry | None = None) -> dict[str, bool]:
    """Every loaded plugin's state in one query (for listings)."""
    plugins = (using or registry).all()
    stored = dict(
        PluginState.objects.filter(name__in=[p.manifest.name for p in plugins]).values_list("name", "enabled")
    )
    return {p.manifest.name: bool(stored.get(p.manifest.name, p.manifest.enabled_by_default)) for p in plugins}


def plugin_set_enabled(*, name: str, enabled: bool, using: Registry | None = None) -> PluginState:
    """Store the state under the plugin's canonical name, so ``OPENAI`` and ``qtap-plugin-openai`` agree."""
    manifest = _manifest(name, using)
    state, _ = PluginState.objects.update_or_create(name=manifest.name, defaults={"enabled": enabled})
    return state


async def aplugin_set_enabled(*, name: str, enabled: bool, using: Registry | None = None) -> PluginState:
    manifest = _manifest(name, using)
    state, _ = await PluginState.objects.aupdate_or_create(name=manifest.name, defaults={"enabled": enabled})
    return state
