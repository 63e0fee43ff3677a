"""The factory resolves plugin names, providerNames and legacy names, and refuses what a plugin can't do."""

from __future__ import annotations

import pytest

from providers.contract import ImageProvider, LLMProvider
from providers.errors import CapabilityNotSupportedError, UnknownProviderError
from providers.factory import create_image_provider, create_llm_provider, get_provider_source, is_provider_from_plugin
from providers.registry import Registry, registry
from tests.host.conftest import make_plugin


@pytest.mark.parametrize("name", ["qtap-plugin-openai", "OPENAI", "openai"])
def test_llm_provider_by_any_name(name):
    provider = create_llm_provider(name, api_key="sk-test", base_url="http://127.0.0.1:9/v1")
    assert isinstance(provider, LLMProvider)
    assert type(provider).__module__.startswith("qtap_plugins.qtap_plugin_openai")


def test_legacy_name_resolves_to_its_plugin():
    image = create_image_provider("GOOGLE_IMAGEN", api_key="k")
    assert isinstance(image, ImageProvider)
    assert type(image).__module__.startswith("qtap_plugins.qtap_plugin_google")


@pytest.mark.parametrize("name", ["qtap-plugin-openai", "qtap-plugin-google", "qtap-plugin-grok"])
def test_image_providers_of_the_image_plugins(name):
    assert isinstance(create_image_provider(name, api_key="k"), ImageProvider)


def test_image_provider_refused_where_the_manifest_says_no():
    with pytest.raises(CapabilityNotSupportedError, match="qtap-plugin-anthropic does not generate images"):
        create_image_provider("ANTHROPIC", api_key="k")


def test_empty_base_url_means_the_default():
    reg = Registry()
    reg.register(make_plugin())
    provider = create_llm_provider("DEMO", api_key="k", base_url="", using=reg)
    assert provider.base_url is None  # type: ignore[attr-defined]


def test_unknown_provider():
    with pytest.raises(UnknownProviderError) as info:
        create_llm_provider("NOPE")
    assert "qtap-plugin-openai" in info.value.available
    assert not is_provider_from_plugin("NOPE")
    assert get_provider_source("NOPE") == "unknown"
    assert is_provider_from_plugin("GAB_AI")
    assert get_provider_source("qtap-plugin-ollama") == "plugin"


def test_a_temporarily_registered_plugin_is_built():
    with registry.temporarily(make_plugin("qtap-plugin-demo", "DEMO")):
        assert create_llm_provider("DEMO", api_key="abc").api_key == "abc"  # type: ignore[attr-defined]
    assert not is_provider_from_plugin("DEMO")
