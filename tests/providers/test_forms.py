"""The forms the settings pages reuse: write-only secret, key choices limited to the user's own keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError

from providers import services
from providers.forms import ApiKeyForm, ConnectionProfileForm, ImageProfileForm
from providers.models import ApiKey
from providers.plugin_state import plugin_set_enabled
from tests.providers.test_tool_settings import registered_tool_fakes

pytestmark = pytest.mark.django_db

SECRET = "sk-ant-FORMSECRET-abcdefgh9012"


@pytest.fixture
def tool_fakes() -> Iterator[None]:
    with registered_tool_fakes():
        yield


def test_api_key_form_creates_for_its_user_and_never_renders_the_secret(user):
    form = ApiKeyForm({"plugin": "qtap-plugin-anthropic", "label": "claude", "secret": SECRET}, user=user)
    assert form.is_valid(), form.errors
    key = form.save()
    assert (key.user, key.get_secret(), key.last4, form.warnings) == (user, SECRET, "9012", [])

    failed = ApiKeyForm({"plugin": "qtap-plugin-anthropic", "label": "", "secret": SECRET}, user=user)
    assert not failed.is_valid()
    assert SECRET not in str(failed)
    assert ApiKey.objects.count() == 1


def test_api_key_form_warns_without_refusing(user):
    form = ApiKeyForm({"plugin": "qtap-plugin-anthropic", "label": "x", "secret": "abcdefgh"}, user=user)
    assert form.is_valid()
    assert form.warnings and "they start with sk-ant-" in form.warnings[0] and "saved" not in form.warnings[0]


def test_api_key_form_edit_keeps_secret_and_plugin(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-anthropic", label="a", secret=SECRET)
    form = ApiKeyForm({"plugin": "qtap-plugin-openai", "label": "b", "secret": ""}, instance=key, user=user)
    assert form.is_valid(), form.errors
    form.save()
    key.refresh_from_db()
    assert (key.label, key.plugin, key.get_secret()) == ("b", "qtap-plugin-anthropic", SECRET)
    assert 'value="' + SECRET not in str(form)


def test_new_key_needs_a_secret(user):
    form = ApiKeyForm({"plugin": "qtap-plugin-openai", "label": "x", "secret": ""}, user=user)
    assert not form.is_valid()
    assert form.errors["secret"] == ["This field is required."]


def test_profile_form_offers_only_the_users_keys(user, other_user):
    mine = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="mine", secret="sk-mine-12345678")
    mine_other_plugin = services.api_key_create(
        user=user, plugin="qtap-plugin-anthropic", label="claude", secret=SECRET
    )
    theirs = services.api_key_create(user=other_user, plugin="qtap-plugin-openai", label="t", secret="sk-t-12345678")

    unbound = ConnectionProfileForm(user=user, initial={"plugin": "qtap-plugin-openai"})
    assert list(unbound.fields["api_key"].queryset) == [mine]
    assert {c[0] for c in unbound.fields["plugin"].choices} >= {"qtap-plugin-openai", "qtap-plugin-ollama"}

    data = {"name": "p", "plugin": "qtap-plugin-openai", "model": "gpt-4o", "base_url": "", "parameters": "{}"}
    stolen = ConnectionProfileForm({**data, "api_key": theirs.pk}, user=user)
    assert not stolen.is_valid()
    assert "api_key" in stolen.errors

    mismatch = ConnectionProfileForm({**data, "api_key": mine_other_plugin.pk}, user=user)
    assert not mismatch.is_valid()
    assert "is for qtap-plugin-anthropic" in mismatch.errors["api_key"][0]

    good = ConnectionProfileForm({**data, "api_key": mine.pk, "temperature": "1", "stop": "END\n\nSTOP"}, user=user)
    assert good.is_valid(), good.errors
    profile = good.save()
    assert (profile.user, profile.api_key, profile.parameters) == (
        user,
        mine,
        {"temperature": 1, "stop": ["END", "STOP"]},
    )


def test_image_profile_form_lists_image_plugins_only(user):
    names = {c[0] for c in ImageProfileForm(user=user).fields["plugin"].choices}
    assert "qtap-plugin-openai" in names and "qtap-plugin-google" in names
    assert "qtap-plugin-anthropic" not in names and "qtap-plugin-ollama" not in names


def test_profile_parameters_are_separate_fields_checked_against_the_schema(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="k", secret="sk-test-12345678")
    base = {"name": "p", "plugin": "qtap-plugin-openai", "model": "gpt-4o", "base_url": "", "api_key": key.pk}
    too_many = ConnectionProfileForm({**base, "stop": "a\nb\nc\nd\ne"}, user=user)
    assert not too_many.is_valid()
    assert "at most 4" in too_many.errors["stop"][0]
    hot = ConnectionProfileForm({**base, "temperature": "2.5"}, user=user)
    assert not hot.is_valid() and "temperature" in hot.errors

    profile = ConnectionProfileForm({**base, "max_tokens": "512", "top_p": "0.9"}, user=user).save()
    assert profile.parameters == {"max_tokens": 512, "top_p": 0.9}
    edit = ConnectionProfileForm(instance=profile, user=user)
    assert edit.fields["max_tokens"].initial == 512 and "parameters" not in edit.fields
    cleared = ConnectionProfileForm({**base, "max_tokens": ""}, instance=profile, user=user).save()
    assert cleared.parameters == {}

    bad_size = ImageProfileForm({**base, "model": "dall-e-3", "size": "big"}, user=user)
    assert not bad_size.is_valid() and "size" in bad_size.errors
    image = ImageProfileForm({**base, "model": "dall-e-3", "size": "1024x1024", "n": "2"}, user=user).save()
    assert image.parameters == {"size": "1024x1024", "n": 2}


# ---- the profile's tools on by default ----------------------------------------------------------------

TOOL_MODEL, NO_TOOL_MODEL = "qwen3:8b", "llama3:8b"  # by Ollama's modelRules, the second cannot call tools


def _tools_form(user, model, tools=(), instance=None):
    data = {"name": "local", "plugin": "qtap-plugin-ollama", "model": model, "base_url": "http://127.0.0.1:11434"}
    return ConnectionProfileForm({**data, "tools": list(tools)} if tools else data, instance=instance, user=user)


def test_the_profile_form_offers_tools_only_for_a_model_that_calls_them(user, tool_fakes):
    offered = _tools_form(user, TOOL_MODEL).fields["tools"]
    groups = dict(offered.choices)
    assert groups["Notes"] == [("note", "Note")]  # a static tool, by its display name
    assert groups["MCP servers"] == [("qtap-plugin-mcp", "All tools of MCP servers")]  # a dynamic plugin as a whole
    assert "tools" not in _tools_form(user, NO_TOOL_MODEL).fields


def test_tools_are_saved_and_names_of_no_enabled_tool_plugin_refused(user, tool_fakes):
    form = _tools_form(user, TOOL_MODEL, ["note", "qtap-plugin-mcp"])
    assert form.is_valid(), form.errors
    profile = form.save()
    assert profile.parameters == {"tools": ["note", "qtap-plugin-mcp"]}
    assert _tools_form(user, TOOL_MODEL, ["note"], instance=profile).fields["tools"].initial == [
        "note",
        "qtap-plugin-mcp",
    ]
    unknown = _tools_form(user, TOOL_MODEL, ["shell"])
    assert not unknown.is_valid() and "not one of the available choices" in str(unknown.errors)
    with pytest.raises(ValidationError, match="Unknown tool 'shell': not a tool of an enabled tool plugin"):
        services.profile_update(profile=profile, parameters={"tools": ["shell"]})
    plugin_set_enabled(name="qtap-plugin-notes", enabled=False)
    with pytest.raises(ValidationError, match="Unknown tool 'note'"):
        services.profile_update(profile=profile, parameters={"tools": ["note"]})


def test_a_model_that_cannot_call_tools_refuses_them_and_drops_stored_ones(user, tool_fakes):
    refused = _tools_form(user, NO_TOOL_MODEL, ["note"])
    assert not refused.is_valid() and "cannot call tools" in str(refused.errors)
    with pytest.raises(ValidationError, match="cannot call tools"):
        services.connection_profile_create(
            user=user,
            name="x",
            plugin="qtap-plugin-ollama",
            model=NO_TOOL_MODEL,
            base_url="http://127.0.0.1:11434",
            parameters={"tools": ["note"]},
        )
    profile = _tools_form(user, TOOL_MODEL, ["note"]).save()
    switched = _tools_form(user, NO_TOOL_MODEL, instance=profile)  # the model changes; no tools are offered
    assert switched.is_valid(), switched.errors
    assert switched.save().parameters == {}


def test_first_profile_is_the_default_even_unticked(user):
    data = {"name": "First", "plugin": "qtap-plugin-ollama", "model": "llama3", "base_url": "http://127.0.0.1:11434"}
    first = ConnectionProfileForm(data, user=user)
    assert first.is_valid(), first.errors
    assert first.save().is_default
    second = ConnectionProfileForm({**data, "name": "Second"}, user=user)
    assert second.is_valid(), second.errors
    assert not second.save().is_default
