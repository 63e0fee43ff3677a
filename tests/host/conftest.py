"""Fixtures of the plugin host tests: fresh registries loaded from temporary plugin folders."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from providers.contract import LLMProvider, ProviderPlugin
from providers.loader import load_plugins
from providers.manifest import parse_manifest
from providers.registry import Registry

BUNDLED_DIR = Path(settings.BASE_DIR) / "plugins" / "dist"
BROKEN_DIR = Path(__file__).parent / "broken_plugins"
BUNDLED_NAMES = sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "manifest.json").is_file())
# The bundled tool plugins (TOOL_PROVIDER, no providerConfig); the other eight are LLM providers.
TOOL_NAMES = ["qtap-plugin-mcp", "qtap-plugin-web-fetch"]
PROVIDER_NAMES = [name for name in BUNDLED_NAMES if name not in TOOL_NAMES]
BROKEN_NAMES = sorted(p.name for p in BROKEN_DIR.iterdir() if (p / "manifest.json").is_file())


def make_plugins_dir(root: Path, *broken: str) -> Path:
    """A plugins folder laid out like the real one: ``dist/`` (the bundled eight) plus local folders."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dist").symlink_to(BUNDLED_DIR, target_is_directory=True)
    for name in broken:
        shutil.copytree(BROKEN_DIR / name, root / name)
    return root


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Callable[..., Path]:
    def build(*broken: str) -> Path:
        return make_plugins_dir(tmp_path / "plugins", *broken)

    return build


@pytest.fixture
def loaded() -> Callable[..., Registry]:
    """``loaded(dir)`` -> a fresh Registry with every plugin of ``dir`` loaded (no entry points)."""

    def load(directory: Path, *, entry_points: bool = False) -> Registry:
        return load_plugins(Registry(), directory, entry_points=entry_points)

    return load


def manifest_data(name: str = "qtap-plugin-demo", provider: str = "DEMO", **config: object) -> dict:
    """A valid manifest as it would be written in manifest.json (camelCase)."""
    provider_config: dict = {
        "providerName": provider,
        "displayName": provider.title(),
        "abbreviation": "DM",
        "colors": {"bg": "#123456", "text": "#ffffff"},
        "requiresApiKey": False,
    }
    provider_config.update(config)
    return {"name": name, "title": provider.title(), "version": "1.0.0", "providerConfig": provider_config}


class DemoProvider:
    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        self.api_key = api_key
        self.base_url = base_url


class DemoPlugin(ProviderPlugin):
    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        return DemoProvider(api_key, base_url)  # type: ignore[return-value]


def make_plugin(name: str = "qtap-plugin-demo", provider: str = "DEMO", **config: object) -> ProviderPlugin:
    plugin = DemoPlugin()
    plugin.manifest = parse_manifest(manifest_data(name, provider, **config))
    return plugin


@pytest.fixture(autouse=True)
def _keep_the_sites_plugin_modules():
    """Loading plugins into a fresh Registry re-imports them under the same module names; put the
    site's modules back afterwards so other tests see the very classes the site registry uses."""
    saved = {name: module for name, module in sys.modules.items() if name.startswith("qtap_plugins.")}
    yield
    for name in [n for n in sys.modules if n.startswith("qtap_plugins.")]:
        del sys.modules[name]
    sys.modules.update(saved)
