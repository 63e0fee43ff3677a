"""The registry of loaded plugins, and of the ones that failed to load.

May import: ``providers.contract``, ``providers.errors``, and ``providers.manifest`` for types only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from providers.contract import ProviderPlugin
from providers.errors import AlreadyRegistered, UnknownProviderError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from providers.manifest import Manifest

CAPABILITY_FIELDS = ("chat", "imageGeneration", "embeddings", "webSearch")
_CAPABILITY_ATTRS = {
    "chat": "chat",
    "imageGeneration": "image_generation",
    "embeddings": "embeddings",
    "webSearch": "web_search",
}


@dataclass(frozen=True)
class Failure:
    """Why a plugin did not load, where it came from, and its manifest when that much was valid."""

    reason: str
    source: str | None = None
    manifest: Manifest | None = None


class Registry:
    def __init__(self) -> None:
        self._plugins: dict[str, ProviderPlugin[Manifest]] = {}
        self._sources: dict[str, str] = {}
        self._paths: dict[str, Path] = {}
        self._failures: dict[str, Failure] = {}
        self._lock = threading.RLock()

    # -- registration ---------------------------------------------------------------------------

    def register(self, plugin: ProviderPlugin[Manifest], *, source: str = "bundled", path: Path | None = None) -> None:
        manifest = plugin.manifest
        with self._lock:
            if manifest.name in self._plugins:
                raise AlreadyRegistered(
                    f"{manifest.name} is already registered ({self._sources[manifest.name]}); "
                    f"a second copy from {source} was refused"
                )
            provider_name = manifest.provider_name
            if provider_name:
                for other in self._plugins.values():
                    if other.manifest.provider_name == provider_name:
                        raise AlreadyRegistered(
                            f"providerName {provider_name} of {manifest.name} is already taken by {other.manifest.name}"
                        )
            self._plugins[manifest.name] = plugin
            self._sources[manifest.name] = source
            if path is not None:
                self._paths[manifest.name] = path.resolve()
            self._failures.pop(manifest.name, None)

    def unregister(self, name: str) -> None:
        with self._lock:
            key = self._resolve(name).manifest.name
            del self._plugins[key]
            self._sources.pop(key, None)
            self._paths.pop(key, None)

    def record_failure(
        self, name: str, reason: str, *, source: str | None = None, manifest: Manifest | None = None
    ) -> None:
        with self._lock:
            self._failures[name] = Failure(reason, source, manifest)

    def clear(self) -> None:
        with self._lock:
            self._plugins.clear()
            self._sources.clear()
            self._paths.clear()
            self._failures.clear()

    # -- lookup -------------------------------------------------------------------------------

    def _resolve(self, name_or_provider: str) -> ProviderPlugin[Manifest]:
        plugin = self._plugins.get(name_or_provider)
        if plugin is not None:
            return plugin
        wanted = name_or_provider.upper()
        for candidate in self._plugins.values():
            manifest = candidate.manifest
            if manifest.provider_name == wanted or wanted in manifest.legacy_names:
                return candidate
        raise UnknownProviderError(name_or_provider, sorted(self._plugins))

    def get(self, name_or_provider: str) -> ProviderPlugin[Manifest]:
        """A plugin by its name (qtap-plugin-openai), providerName (OPENAI) or a legacy name."""
        with self._lock:
            return self._resolve(name_or_provider)

    def find(self, name_or_provider: str) -> ProviderPlugin[Manifest] | None:
        try:
            return self.get(name_or_provider)
        except UnknownProviderError:
            return None

    def all(self) -> list[ProviderPlugin[Manifest]]:
        with self._lock:
            return list(self._plugins.values())

    def names(self) -> list[str]:
        with self._lock:
            return list(self._plugins)

    def source(self, name: str) -> str:
        return self._sources.get(self.get(name).manifest.name, "unknown")

    def path(self, name: str) -> Path | None:
        """The folder a plugin was loaded from (None when registered directly, as tests do)."""
        return self._paths.get(self.get(name).manifest.name)

    def is_loaded_from(self, directory: Path) -> bool:
        wanted = directory.resolve()
        with self._lock:
            return wanted in self._paths.values()

    def by_capability(self, capability: str) -> list[ProviderPlugin[Manifest]]:
        """Plugins whose manifest declares ``capability``: a providerConfig capability
        (chat, imageGeneration, embeddings, webSearch) or a manifest capability (IMAGE_PROVIDER…)."""
        attr = _CAPABILITY_ATTRS.get(capability)
        result = []
        for plugin in self.all():
            manifest = plugin.manifest
            config = manifest.provider_config
            declared = bool(attr and config and getattr(config.capabilities, attr))
            if capability in manifest.capabilities or declared:
                result.append(plugin)
        return result

    def failures(self) -> dict[str, str]:
        """Plugins that failed to load: name (or folder) -> one-line reason."""
        with self._lock:
            return {name: failure.reason for name, failure in self._failures.items()}

    def failure(self, name: str) -> Failure | None:
        with self._lock:
            return self._failures.get(name)

    @contextmanager
    def temporarily(self, *plugins: ProviderPlugin[Manifest], source: str = "local") -> Iterator[Registry]:
        """Register ``plugins`` for the duration of a block (tests), then restore the previous state."""
        with self._lock:
            saved = (dict(self._plugins), dict(self._sources), dict(self._paths), dict(self._failures))
        try:
            for plugin in plugins:
                self.register(plugin, source=source)
            yield self
        finally:
            with self._lock:
                self._plugins, self._sources, self._paths, self._failures = saved

    def __iter__(self) -> Iterator[ProviderPlugin[Manifest]]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._plugins)


registry = Registry()
