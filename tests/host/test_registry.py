"""The registry: register, look up by every kind of name, capabilities, failures, temporarily()."""

from __future__ import annotations

import pytest

from providers.errors import AlreadyRegistered, UnknownProviderError
from providers.registry import Registry, registry
from tests.host.conftest import BUNDLED_NAMES, make_plugin


def test_lookup_by_name_provider_name_and_legacy_name():
    reg = Registry()
    plugin = make_plugin("qtap-plugin-demo", "DEMO", legacyNames=["OLD_DEMO"])
    reg.register(plugin)
    assert reg.get("qtap-plugin-demo") is plugin
    assert reg.get("DEMO") is plugin
    assert reg.get("demo") is plugin  # providerNames are matched case-insensitively
    assert reg.get("OLD_DEMO") is plugin
    assert reg.find("nothing") is None


def test_unknown_name_lists_the_available_plugins():
    reg = Registry()
    reg.register(make_plugin("qtap-plugin-b", "B"))
    reg.register(make_plugin("qtap-plugin-a", "A"))
    with pytest.raises(UnknownProviderError) as info:
        reg.get("qtap-plugin-zzz")
    assert info.value.available == ("qtap-plugin-a", "qtap-plugin-b")
    assert "Available providers: qtap-plugin-a, qtap-plugin-b" in str(info.value)


def test_collisions_name_both_sides():
    reg = Registry()
    reg.register(make_plugin("qtap-plugin-a", "SAME"))
    with pytest.raises(AlreadyRegistered, match="qtap-plugin-a is already registered"):
        reg.register(make_plugin("qtap-plugin-a", "OTHER"))
    with pytest.raises(AlreadyRegistered, match="providerName SAME of qtap-plugin-b is already taken by qtap-plugin-a"):
        reg.register(make_plugin("qtap-plugin-b", "SAME"))
    assert reg.names() == ["qtap-plugin-a"]


def test_unregister_accepts_any_name_and_forgets_the_source():
    reg = Registry()
    reg.register(make_plugin(), source="local")
    assert reg.source("DEMO") == "local"
    reg.unregister("DEMO")
    assert len(reg) == 0
    with pytest.raises(UnknownProviderError):
        reg.source("qtap-plugin-demo")


def test_by_capability_reads_the_manifest():
    reg = Registry()
    chat_only = make_plugin("qtap-plugin-a", "A")
    searcher = make_plugin("qtap-plugin-b", "B", capabilities={"chat": True, "webSearch": True})
    reg.register(chat_only)
    reg.register(searcher)
    assert reg.by_capability("webSearch") == [searcher]
    assert reg.by_capability("chat") == [chat_only, searcher]
    assert reg.by_capability("LLM_PROVIDER") == [chat_only, searcher]
    assert reg.by_capability("imageGeneration") == []


def test_failures_are_one_line_reasons_with_details():
    reg = Registry()
    reg.record_failure("qtap-plugin-x", "it broke", source="local")
    assert reg.failures() == {"qtap-plugin-x": "it broke"}
    assert reg.failure("qtap-plugin-x").source == "local"
    assert reg.failure("qtap-plugin-y") is None


def test_temporarily_restores_everything():
    before = (registry.names(), registry.failures())
    with registry.temporarily(make_plugin("qtap-plugin-temp", "TEMP")) as reg:
        assert reg is registry
        assert registry.get("TEMP").manifest.name == "qtap-plugin-temp"
        assert registry.source("TEMP") == "local"
        registry.record_failure("qtap-plugin-gone", "temporary")
        registry.unregister("qtap-plugin-openai")
    assert (registry.names(), registry.failures()) == before
    assert registry.path("qtap-plugin-openai") is not None


def test_the_site_registry_holds_the_bundled_eight():
    assert sorted(registry.names()) == BUNDLED_NAMES
    assert registry.failures() == {}
    assert {registry.source(n) for n in BUNDLED_NAMES} == {"bundled"}
