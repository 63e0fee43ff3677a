"""Plugin discovery and loading.

Search order: bundled (``plugins/dist/``), local (other folders in ``plugins/``), then installed
distributions exposing the ``qtap.plugins`` entry-point group. Each plugin is validated, imported
by path under a module name of its own, cross-checked against its manifest and registered.
A broken plugin is recorded with a one-line reason and logged; it never stops the others.

May import: ``providers.contract``, ``providers.errors``, ``providers.manifest``, ``providers.registry`` (it
fills the registry it is given).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from providers.contract import ProviderPlugin
from providers.errors import AlreadyRegistered, ManifestError, PluginLoadError
from providers.manifest import MANIFEST_FILENAME, QTAP_VERSION, Manifest, load_manifest
from providers.registry import Registry

logger = logging.getLogger("qtap.plugins")

ENTRY_POINT_GROUP = "qtap.plugins"
MODULE_PREFIX = "qtap_plugins"


@dataclass(frozen=True)
class Candidate:
    directory: Path
    source: str  # "bundled" | "local" | "entrypoint"
    label: str  # what to call it when it fails before its manifest can be read
    error: str | None = None  # known to be unloadable at discovery (an entry point naming no package)


def discover(plugins_dir: Path, *, entry_points: bool = True) -> Iterator[Candidate]:
    bundled = plugins_dir / "dist"
    if bundled.is_dir():
        for folder in sorted(p for p in bundled.iterdir() if (p / MANIFEST_FILENAME).is_file()):
            yield Candidate(folder, "bundled", folder.name)
    if plugins_dir.is_dir():
        for folder in sorted(p for p in plugins_dir.iterdir() if p.name != "dist" and p.is_dir()):
            if (folder / MANIFEST_FILENAME).is_file():
                yield Candidate(folder, "local", folder.name)
    if entry_points:
        yield from _entry_point_candidates()


def _entry_point_candidates() -> Iterator[Candidate]:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"{entry_point.name} (entry point {entry_point.value})"
        try:
            spec = importlib.util.find_spec(entry_point.value)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            reason = f"{label}: {entry_point.value!r} is not an importable package (it must hold {MANIFEST_FILENAME})"
            yield Candidate(Path("/nonexistent") / entry_point.name, "entrypoint", label, reason)
            continue
        yield Candidate(Path(locations[0]), "entrypoint", label)


def module_name_for(manifest: Manifest) -> str:
    return f"{MODULE_PREFIX}.{re.sub(r'[^a-z0-9_]', '_', manifest.name)}"


def _ensure_namespace() -> None:
    if MODULE_PREFIX not in sys.modules:
        spec = importlib.machinery.ModuleSpec(MODULE_PREFIX, None, is_package=True)
        module = importlib.util.module_from_spec(spec)
        module.__path__ = []
        sys.modules[MODULE_PREFIX] = module


def import_plugin(directory: Path, manifest: Manifest) -> ProviderPlugin[Manifest]:
    """Import ``directory/__init__.py`` as a package and return its ``plugin`` object, checked."""
    init = directory / "__init__.py"
    if not init.is_file():
        raise PluginLoadError(f"{manifest.name}: no __init__.py in {directory}")
    _ensure_namespace()
    name = module_name_for(manifest)
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(directory)])
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{manifest.name}: cannot import {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a plugin's own bug must not take the site down
        _forget_modules(name)
        raise PluginLoadError(f"{manifest.name}: import failed: {type(exc).__name__}: {exc}") from exc
    try:
        plugin = getattr(module, "plugin", None)
        if not isinstance(plugin, ProviderPlugin):
            raise PluginLoadError(
                f"{manifest.name}: __init__.py must export `plugin`, an instance of providers.contract.ProviderPlugin"
            )
        plugin.manifest = manifest
        cross_check(plugin)
    except PluginLoadError:
        _forget_modules(name)  # a rejected plugin leaves nothing importable behind
        raise
    return plugin


def _forget_modules(name: str) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]


def cross_check(plugin: ProviderPlugin[Manifest]) -> None:
    manifest = plugin.manifest
    config = manifest.provider_config
    if config and config.capabilities.chat and type(plugin).create_provider is ProviderPlugin.create_provider:
        raise PluginLoadError(f"{manifest.name}: declares chat but does not implement create_provider()")
    if manifest.is_tool_provider and not plugin.implements_tool_provider():
        raise PluginLoadError(f"{manifest.name}: declares TOOL_PROVIDER but does not implement create_tool_provider()")
    if config and config.capabilities.image_generation and not plugin.implements_image_provider():
        raise PluginLoadError(
            f"{manifest.name}: declares imageGeneration but does not implement create_image_provider()"
        )


def load_candidate(candidate: Candidate, registry: Registry, *, qtap_version: str = QTAP_VERSION) -> None:
    if candidate.error:
        raise PluginLoadError(candidate.error)
    manifest = load_manifest(candidate.directory / MANIFEST_FILENAME)
    if not manifest.is_compatible(qtap_version):
        raise PluginLoadError(
            f"{manifest.name}: needs qtap {manifest.compatibility.qtap_version}, this is qtap {qtap_version}"
        )
    existing = registry.find(manifest.name) or (
        registry.find(manifest.provider_name) if manifest.provider_name else None
    )
    if existing is not None:
        raise AlreadyRegistered(
            f"{manifest.name} ({candidate.source}, {candidate.directory}): duplicate of "
            f"{existing.manifest.name} (name or providerName {manifest.provider_name}) already loaded; the first wins"
        )
    plugin = import_plugin(candidate.directory, manifest)
    registry.register(plugin, source=candidate.source, path=candidate.directory)


def failure_key(candidate: Candidate, registry: Registry) -> str:
    return _failure_identity(candidate, registry)[0]


def _failure_identity(candidate: Candidate, registry: Registry) -> tuple[str, Manifest | None]:
    """The name a failure is recorded under, and the manifest when it was valid."""
    try:
        manifest = load_manifest(candidate.directory / MANIFEST_FILENAME)
    except ManifestError:
        return candidate.label, None
    # A duplicate keeps its own entry: the loaded plugin of the same name is fine.
    name = manifest.name
    return (f"{name} ({candidate.source})" if registry.find(name) else name), manifest


def load_plugins(
    registry: Registry,
    plugins_dir: Path,
    *,
    entry_points: bool = True,
    candidates: Iterable[Candidate] | None = None,
) -> Registry:
    """Load every plugin it can find into ``registry``; record the ones that fail. Idempotent."""
    for candidate in candidates if candidates is not None else discover(plugins_dir, entry_points=entry_points):
        if registry.is_loaded_from(candidate.directory):
            continue  # loaded by an earlier call (ready() run again): loading is idempotent
        try:
            load_candidate(candidate, registry)
        except (ManifestError, PluginLoadError, AlreadyRegistered) as exc:
            key, manifest = _failure_identity(candidate, registry)
            reason = str(exc).replace("\n", " ")
            registry.record_failure(key, reason, source=candidate.source, manifest=manifest)
            logger.warning("plugin %s failed to load: %s", key, reason)
    return registry
