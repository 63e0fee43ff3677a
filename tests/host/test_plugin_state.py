"""Enable/disable: a database row overrides the manifest's enabledByDefault, read at the moment of use."""

from __future__ import annotations

import pytest

from providers.errors import UnknownProviderError
from providers.models import PluginState, plugin_status
from providers.plugin_state import (
    aplugin_is_enabled,
    aplugin_set_enabled,
    plugin_enabled_states,
    plugin_is_enabled,
    plugin_set_enabled,
)
from providers.registry import registry
from tests.host.conftest import BUNDLED_NAMES, make_plugin

pytestmark = pytest.mark.django_db


def test_manifest_default_applies_without_a_row():
    assert plugin_is_enabled("qtap-plugin-openai") is True
    with registry.temporarily(make_plugin("qtap-plugin-off", "OFF", displayName="Off")) as reg:
        reg.get("OFF").manifest = reg.get("OFF").manifest.model_copy(update={"enabled_by_default": False})
        assert plugin_is_enabled("qtap-plugin-off") is False
        plugin_set_enabled(name="OFF", enabled=True)
        assert plugin_is_enabled("qtap-plugin-off") is True
    assert PluginState.objects.count() == 1


def test_the_row_is_stored_under_the_canonical_name_and_read_back_at_once():
    state = plugin_set_enabled(name="OPENAI", enabled=False)
    assert state.name == "qtap-plugin-openai"
    assert plugin_is_enabled("qtap-plugin-openai") is False
    assert plugin_is_enabled("openai") is False
    assert plugin_status("qtap-plugin-openai") == "provider disabled"
    # another process flipping the row is seen by the next read: nothing is cached
    PluginState.objects.filter(name="qtap-plugin-openai").update(enabled=True)
    assert plugin_is_enabled("OPENAI") is True
    plugin_set_enabled(name="qtap-plugin-openai", enabled=True)
    assert PluginState.objects.filter(name="qtap-plugin-openai").count() == 1


def test_states_of_every_plugin_in_one_query(django_assert_num_queries):
    plugin_set_enabled(name="GROK", enabled=False)
    with django_assert_num_queries(1):
        states = plugin_enabled_states()
    assert sorted(states) == BUNDLED_NAMES
    assert [n for n, on in states.items() if not on] == ["qtap-plugin-grok"]


def test_unknown_names_raise_with_the_list():
    with pytest.raises(UnknownProviderError, match="qtap-plugin-openai"):
        plugin_is_enabled("qtap-plugin-nope")
    with pytest.raises(UnknownProviderError):
        plugin_set_enabled(name="NOPE", enabled=False)
    assert PluginState.objects.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_async_twins():
    assert await aplugin_is_enabled("ANTHROPIC") is True
    state = await aplugin_set_enabled(name="ANTHROPIC", enabled=False)
    assert state.name == "qtap-plugin-anthropic"
    assert await aplugin_is_enabled("qtap-plugin-anthropic") is False
