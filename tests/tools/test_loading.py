"""The two bundled tool plugins load through the real loader: a manifest with toolConfig and no
providerConfig is accepted, the registry lists them as TOOL_PROVIDER plugins, and each answers a
ToolProvider."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.conf import settings

from providers.contract import ToolProvider
from providers.loader import load_plugins
from providers.registry import Registry
from tests.tools.conftest import MCP, WEB_FETCH


@pytest.fixture(autouse=True)
def _keep_the_sites_plugin_modules():
    """A fresh load re-imports the plugins under the site's module names: put the site's back after."""
    saved = {name: module for name, module in sys.modules.items() if name.startswith("qtap_plugins.")}
    yield
    for name in [n for n in sys.modules if n.startswith("qtap_plugins.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def test_the_tool_plugins_load_and_answer_tool_providers(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dist").symlink_to(Path(settings.BASE_DIR) / "plugins" / "dist", target_is_directory=True)
    registry = load_plugins(Registry(), plugins, entry_points=False)
    assert not {name for name in registry.failures() if name in (MCP, WEB_FETCH)}, registry.failures()
    tool_plugins = {plugin.manifest.name for plugin in registry.by_capability("TOOL_PROVIDER")}
    assert {MCP, WEB_FETCH} <= tool_plugins
    for name in (MCP, WEB_FETCH):
        plugin = registry.get(name)
        assert plugin.manifest.provider_config is None and plugin.manifest.tool_config is not None
        assert registry.source(name) == "bundled"
        assert isinstance(plugin.create_tool_provider(), ToolProvider)
    config = registry.get(MCP).manifest.tool_config
    assert config is not None and config.dynamic_tools and config.tools == ()
    web = registry.get(WEB_FETCH).manifest.tool_config
    assert web is not None and [tool.name for tool in web.tools] == ["web_fetch"]
    assert {field.key for field in web.config_schema} == {"allowlist", "max_bytes", "timeout_seconds"}
