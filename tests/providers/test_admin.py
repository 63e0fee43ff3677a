"""The admin never shows, searches or filters on a secret, and its "Test connection" says why a key fails."""

from __future__ import annotations

import pytest
from django.urls import reverse

from providers import services
from providers.models import ApiKey, ConnectionProfile, PluginState
from providers.registry import registry
from tests.providers.conftest import GOOD_KEY, KEYCHECK

pytestmark = pytest.mark.django_db

SECRET = "sk-proj-ADMINSECRETabcdefghij5678"


@pytest.fixture
def key(user) -> ApiKey:
    return services.api_key_create(user=user, plugin="qtap-plugin-openai", label="work key", secret=SECRET)


def assert_no_secret(response, key: ApiKey) -> str:
    text = response.content.decode()
    assert SECRET not in text
    assert SECRET[3:-4] not in text
    assert key.encrypted_secret not in text
    assert key.encrypted_secret[:20] not in text
    return text


def test_secret_absent_from_every_key_page(admin_client, key):
    pages = [
        reverse("admin:providers_apikey_changelist"),
        reverse("admin:providers_apikey_change", args=[key.pk]),
        reverse("admin:providers_apikey_add"),
        reverse("admin:providers_apikey_delete", args=[key.pk]),
        reverse("admin:providers_apikey_history", args=[key.pk]),
        reverse("admin:providers_connectionprofile_add"),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_no_secret(response, key)
    changelist = admin_client.get(pages[0]).content.decode()
    assert "…5678" in changelist and "work key" in changelist
    change_form = admin_client.get(pages[1]).content.decode()
    assert 'type="password"' in change_form
    assert "Leave empty to keep the stored secret." in change_form


def test_failed_add_does_not_echo_the_secret(admin_client, user, key):
    response = admin_client.post(
        reverse("admin:providers_apikey_add"),
        {"user": user.pk, "plugin": "qtap-plugin-openai", "label": "", "secret": SECRET + "X", "is_active": "on"},
    )
    assert response.status_code == 200
    text = assert_no_secret(response, key)
    assert SECRET + "X" not in text
    assert "This field is required." in text
    # The error page reporter would hide it too.
    assert list(response.wsgi_request.sensitive_post_parameters) == ["secret"]
    assert ApiKey.objects.count() == 1


def test_add_stores_encrypted_and_warns_on_pattern_mismatch(admin_client, user):
    response = admin_client.post(
        reverse("admin:providers_apikey_add"),
        {"user": user.pk, "plugin": "qtap-plugin-anthropic", "label": "claude", "secret": "looks-wrong-123456"},
        follow=True,
    )
    assert response.status_code == 200
    stored = ApiKey.objects.get(label="claude")
    assert stored.get_secret() == "looks-wrong-123456" and stored.last4 == "3456"
    messages = [str(m) for m in response.context["messages"]]
    assert any("does not look like a key for Anthropic" in m for m in messages), messages
    assert "looks-wrong-123456" not in response.content.decode()


def test_change_with_empty_secret_keeps_it(admin_client, user, key):
    response = admin_client.post(
        reverse("admin:providers_apikey_change", args=[key.pk]),
        {"user": user.pk, "label": "renamed", "secret": "", "is_active": "on"},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.label == "renamed" and key.get_secret() == SECRET and key.plugin == "qtap-plugin-openai"


@pytest.mark.parametrize(
    "url_name, query",
    [
        ("admin:providers_apikey_changelist", "encrypted_secret__startswith=gAAAA"),
        ("admin:providers_apikey_changelist", "encrypted_secret=x"),
        ("admin:providers_connectionprofile_changelist", "api_key__encrypted_secret__startswith=gAAAA"),
        ("admin:providers_imageprofile_changelist", "api_key__encrypted_secret__contains=A"),
    ],
)
def test_lookups_on_the_secret_are_refused(admin_client, key, url_name, query):
    response = admin_client.get(f"{reverse(url_name)}?{query}")
    assert response.status_code == 400


def test_search_never_matches_the_secret(admin_client, key):
    url = reverse("admin:providers_apikey_changelist")
    assert "work key" in admin_client.get(url, {"q": "work"}).content.decode()
    for probe in (SECRET, SECRET[-8:], key.encrypted_secret[:12]):
        assert "work key" not in admin_client.get(url, {"q": probe}).content.decode()


def test_plugin_choices_come_from_the_registry(admin_client):
    text = admin_client.get(reverse("admin:providers_apikey_add")).content.decode()
    for plugin in registry.all():
        config = plugin.manifest.provider_config
        if config is None:  # a tool plugin takes no API key: never offered
            assert f'<option value="{plugin.manifest.name}"' not in text
            continue
        assert f'<option value="{plugin.manifest.name}">{config.display_name}</option>' in text
    image_form = admin_client.get(reverse("admin:providers_imageprofile_add")).content.decode()
    assert 'value="qtap-plugin-openai"' in image_form and 'value="qtap-plugin-anthropic"' not in image_form


def test_profile_admin_reports_a_key_mismatch(admin_client, user, key):
    response = admin_client.post(
        reverse("admin:providers_connectionprofile_add"),
        {
            "user": user.pk,
            "name": "p",
            "plugin": "qtap-plugin-anthropic",
            "api_key": key.pk,
            "model": "claude",
            "base_url": "",
            "parameters": "{}",
        },
    )
    assert response.status_code == 200
    assert "This API key is for qtap-plugin-openai, but the profile uses qtap-plugin-anthropic" in (
        response.content.decode()
    )
    assert not ConnectionProfile.objects.exists()


def test_test_connection_action_shows_the_real_reason(admin_client, user, keycheck):
    bad = services.api_key_create(user=user, plugin=KEYCHECK, label="bad", secret="kt-rejected-000000")
    good = services.api_key_create(user=user, plugin=KEYCHECK, label="good", secret=GOOD_KEY)
    response = admin_client.post(
        reverse("admin:providers_apikey_changelist"),
        {"action": "test_connection_action", "_selected_action": [bad.pk, good.pk]},
        follow=True,
    )
    messages = {m.level_tag: str(m) for m in response.context["messages"]}
    assert "invalid x-api-key" in messages["error"] and "(authentication)" in messages["error"]
    assert "Connection works." in messages["success"]
    assert "kt-rejected-000000" not in response.content.decode()
    assert len(keycheck.requests) == 2

    profile = services.connection_profile_create(user=user, name="kc", plugin=KEYCHECK, model="m", api_key=bad)
    response = admin_client.post(
        reverse("admin:providers_connectionprofile_changelist"),
        {"action": "test_connection_action", "_selected_action": [profile.pk]},
        follow=True,
    )
    (message,) = [str(m) for m in response.context["messages"]]
    assert "invalid x-api-key" in message


def test_plugin_state_admin(admin_client):
    response = admin_client.post(
        reverse("admin:providers_pluginstate_add"), {"name": "qtap-plugin-grok", "enabled": ""}
    )
    assert response.status_code == 302
    state = PluginState.objects.get(name="qtap-plugin-grok")
    assert state.enabled is False
    admin_client.post(
        reverse("admin:providers_pluginstate_changelist"),
        {"action": "enable_plugins", "_selected_action": [state.pk]},
    )
    state.refresh_from_db()
    assert state.enabled is True
    refused = admin_client.post(reverse("admin:providers_pluginstate_add"), {"name": "qtap-plugin-nope"})
    assert refused.status_code == 200 and not PluginState.objects.filter(name="qtap-plugin-nope").exists()


def test_key_change_page_has_one_secret_row_naming_the_last_four(admin_client, key):
    text = assert_no_secret(admin_client.get(reverse("admin:providers_apikey_change", args=[key.pk])), key)
    assert text.count(">Secret:</label>") == 1
    assert f"Stored: {key.masked}. Leave empty to keep the stored secret." in text
