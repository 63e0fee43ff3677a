"""The loader: discovery order, import by path, cross-checks, idempotence and isolation of broken plugins."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import pytest

from providers.contract import ProviderPlugin
from providers.loader import discover, load_plugins, module_name_for
from providers.registry import Registry
from tests.host.conftest import (
    BROKEN_DIR,
    BROKEN_NAMES,
    BUNDLED_DIR,
    BUNDLED_NAMES,
    PROVIDER_NAMES,
    TOOL_NAMES,
    make_plugins_dir,
)

# Each broken folder, and the words its one-line reason must contain.
EXPECTED_REASONS = {
    "qtap-plugin-bad-json": "malformed JSON at line 5",
    "qtap-plugin-unknown-key": "unknown key 'colour'",
    "qtap-plugin-import-error": "import failed: RuntimeError: boom while importing the plugin",
    "qtap-plugin-duplicate-openai": "duplicate of qtap-plugin-openai",
    "qtap-plugin-future": "needs qtap >=99.0, this is qtap",
    "qtap-plugin-no-export": "must export `plugin`",
    "qtap-plugin-image-no-factory": "declares imageGeneration but does not implement create_image_provider()",
}


def test_the_eight_bundled_plugins_load(plugins_dir, loaded):
    registry = loaded(plugins_dir())
    assert sorted(registry.names()) == BUNDLED_NAMES
    assert len(PROVIDER_NAMES) == 8 and len(TOOL_NAMES) == 2  # eight LLM providers, two tool plugins
    assert [n for n in BUNDLED_NAMES if registry.get(n).manifest.is_tool_provider] == TOOL_NAMES
    assert registry.failures() == {}
    for name in BUNDLED_NAMES:
        plugin = registry.get(name)
        assert isinstance(plugin, ProviderPlugin)
        assert plugin.manifest.name == name
        assert registry.source(name) == "bundled"
        assert registry.path(name) == (BUNDLED_DIR / name).resolve()
        # imported under a module name of its own, never as a top-level package
        assert type(plugin).__module__.startswith(module_name_for(plugin.manifest))


def test_loading_twice_changes_nothing(plugins_dir, loaded):
    directory = plugins_dir("qtap-plugin-import-error")
    registry = loaded(directory)
    before = (sorted(registry.names()), registry.failures())
    load_plugins(registry, directory, entry_points=False)
    assert (sorted(registry.names()), registry.failures()) == before


def test_every_broken_folder_is_covered():
    assert sorted(EXPECTED_REASONS) == BROKEN_NAMES


def test_broken_plugins_fail_alone_with_a_one_line_reason(plugins_dir, loaded, caplog):
    directory = plugins_dir(*BROKEN_NAMES)
    with caplog.at_level(logging.WARNING, logger="qtap.plugins"):
        registry = loaded(directory)

    assert sorted(registry.names()) == BUNDLED_NAMES  # every good plugin still loads
    failures = registry.failures()
    assert sorted(failures) == BROKEN_NAMES
    for name, words in EXPECTED_REASONS.items():
        assert words in failures[name], (name, failures[name])
        assert "\n" not in failures[name]
        assert registry.failure(name).source == "local"
    # The bundled OpenAI plugin is the one that answers to OPENAI: the first wins.
    assert registry.get("OPENAI").manifest.name == "qtap-plugin-openai"

    logged = [r.getMessage() for r in caplog.records if r.name == "qtap.plugins"]
    for name, words in EXPECTED_REASONS.items():
        lines = [m for m in logged if m.startswith(f"plugin {name} failed to load:")]
        assert len(lines) == 1 and words in lines[0] and "\n" not in lines[0]


def test_rejected_plugins_leave_no_module_behind(plugins_dir, loaded):
    registry = loaded(plugins_dir("qtap-plugin-no-export", "qtap-plugin-image-no-factory", "qtap-plugin-import-error"))
    assert len(registry.failures()) == 3
    for name in ("qtap_plugins.qtap_plugin_no_export", "qtap_plugins.qtap_plugin_image_no_factory"):
        assert name not in sys.modules
    assert "qtap_plugins.qtap_plugin_import_error" not in sys.modules


def test_failure_keeps_the_valid_manifest(plugins_dir, loaded):
    registry = loaded(plugins_dir("qtap-plugin-future", "qtap-plugin-bad-json"))
    assert registry.failure("qtap-plugin-future").manifest.title == "Future"
    assert registry.failure("qtap-plugin-bad-json").manifest is None


def test_discovery_order_bundled_then_local(plugins_dir):
    directory = plugins_dir("qtap-plugin-future", "qtap-plugin-no-export")
    (directory / "not-a-plugin").mkdir()  # a folder without manifest.json is ignored
    found = [(c.source, c.directory.name) for c in discover(directory, entry_points=False)]
    assert found == [("bundled", n) for n in BUNDLED_NAMES] + [
        ("local", "qtap-plugin-future"),
        ("local", "qtap-plugin-no-export"),
    ]


def test_a_local_copy_of_a_bundled_plugin_loses_with_its_own_entry(tmp_path, loaded):
    directory = make_plugins_dir(tmp_path / "plugins")
    shutil.copytree(BUNDLED_DIR / "qtap-plugin-grok", directory / "my-grok")
    registry = loaded(directory)
    assert registry.source("qtap-plugin-grok") == "bundled"
    reason = registry.failures()["qtap-plugin-grok (local)"]
    assert "duplicate of qtap-plugin-grok" in reason and "the first wins" in reason


def test_a_missing_plugins_dir_loads_nothing(tmp_path):
    registry = load_plugins(Registry(), tmp_path / "absent", entry_points=False)
    assert len(registry) == 0 and registry.failures() == {}


def test_a_local_plugin_loads_with_source_local(tmp_path, loaded):
    directory = make_plugins_dir(tmp_path / "plugins")
    folder = directory / "qtap-plugin-shout"
    shutil.copytree(BROKEN_DIR / "qtap-plugin-future", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(name="qtap-plugin-shout", compatibility={"qtapVersion": ">=0.1"})
    manifest["providerConfig"]["providerName"] = "SHOUT"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    registry = loaded(directory)
    assert registry.source("SHOUT") == "local"
    assert registry.failures() == {}


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_each_broken_plugin_alone_leaves_the_bundled_eight(name, plugins_dir, loaded):
    registry = loaded(plugins_dir(name))
    assert sorted(registry.names()) == BUNDLED_NAMES
    assert list(registry.failures()) == [name]


@pytest.mark.django_db
def test_ready_runs_again_without_queries_and_changes_nothing(django_assert_num_queries):
    from django.apps import apps

    from providers.registry import registry

    before = (sorted(registry.names()), registry.failures())
    with django_assert_num_queries(0):
        apps.get_app_config("providers").ready()
    assert (sorted(registry.names()), registry.failures()) == before
