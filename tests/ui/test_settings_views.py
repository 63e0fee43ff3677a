"""Settings pages through Django's test client: keys are write-only, everything is scoped, CSRF everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState
from providers.registry import registry
from tests.fakes.openai_dialect import FakeOpenAI
from tests.ui.conftest import SECRET

pytestmark = pytest.mark.django_db

NEW_SECRET = "sk-live-brandNEWsecretValue000000000042"


def test_keys_page_shows_only_last4_and_only_mine(
    alice_client: Any, mallory_client: Any, alice_rows: dict[str, Any]
) -> None:
    page = alice_client.get("/settings/keys/").content.decode()
    assert "…wxyz" in page and SECRET not in page and SECRET[:-4] not in page
    assert 'name="secret" type="password"' in page and 'value="sk-' not in page
    assert "work" not in mallory_client.get("/settings/keys/").content.decode()


def test_add_key_saves_encrypted_and_never_echoes_the_secret(alice_client: Any, user: Any) -> None:
    data = {"plugin": "qtap-plugin-anthropic", "label": "claude", "secret": NEW_SECRET, "is_active": "on"}
    assert alice_client.post("/settings/keys/", data).status_code == 403  # no CSRF token
    response = alice_client.post_form("/settings/keys/", data, follow=True)
    body = response.content.decode()
    assert NEW_SECRET not in body and "…0042" in body
    key = ApiKey.objects.get(user=user, label="claude")
    assert key.plugin == "qtap-plugin-anthropic" and key.is_active and key.get_secret() == NEW_SECRET
    assert NEW_SECRET not in key.encrypted_secret


def test_add_key_with_htmx_returns_the_section_and_warns_on_pattern_mismatch(alice_client: Any, user: Any) -> None:
    response = alice_client.htmx_post(
        "/settings/keys/",
        {"plugin": "qtap-plugin-openai", "label": "odd", "secret": "notAnOpenAIkey1234", "is_active": "on"},
    )
    body = response.content.decode()
    assert response.status_code == 200 and 'id="key-section"' in body and "<html" not in body
    assert "…1234" in body and "notAnOpenAIkey1234" not in body
    assert "does not look like a key for OpenAI" in body  # saved, with the warning
    assert ApiKey.objects.filter(user=user, label="odd").exists()
    invalid = alice_client.htmx_post(
        "/settings/keys/", {"plugin": "qtap-plugin-openai", "label": "", "secret": NEW_SECRET}
    )
    assert invalid.status_code == 200  # htmx swaps only 2xx: the errors come back inside the section
    assert 'id="key-section"' in invalid.content.decode() and "This field is required" in invalid.content.decode()
    assert NEW_SECRET not in invalid.content.decode()


def test_key_form_errors_keep_the_secret_out(alice_client: Any) -> None:
    response = alice_client.post_form(
        "/settings/keys/", {"plugin": "qtap-plugin-openai", "label": "", "secret": NEW_SECRET}
    )
    assert response.status_code == 400
    assert NEW_SECRET not in response.content.decode()


def test_key_check_warns_but_does_not_refuse(alice_client: Any) -> None:
    warn = alice_client.htmx_post("/settings/keys/check/", {"plugin": "qtap-plugin-openai", "secret": "AIzaWrongShape"})
    assert "does not look like a key for OpenAI" in warn.content.decode()
    assert "AIzaWrongShape" not in warn.content.decode()
    fine = alice_client.htmx_post("/settings/keys/check/", {"plugin": "qtap-plugin-openai", "secret": "sk-fine0000"})
    assert "does not look like" not in fine.content.decode()


def test_toggle_and_delete_key(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    key = alice_rows["key"]
    row = alice_client.htmx_post(f"/settings/keys/{key.pk}/toggle/").content.decode()
    key.refresh_from_db()
    assert not key.is_active and "Disabled" in row and "Enable" in row
    test = alice_client.htmx_post(f"/settings/keys/{key.pk}/test/").content.decode()
    assert "key_disabled" in test and "disabled" in test
    assert alice_client.htmx_post(f"/settings/keys/{key.pk}/delete/").content == b""
    assert not ApiKey.objects.filter(pk=key.pk).exists()


@pytest.mark.parametrize("action", ["test", "toggle", "delete"])
def test_another_users_key_is_404(mallory_client: Any, alice_rows: dict[str, Any], action: str) -> None:
    key = alice_rows["key"]
    assert mallory_client.htmx_post(f"/settings/keys/{key.pk}/{action}/").status_code == 404
    key.refresh_from_db()
    assert key.is_active


def test_profile_test_reports_the_providers_own_reason(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    profile = alice_rows["profile"]
    with FakeOpenAI("openai") as fake:
        fake.api_key = "sk-the-only-good-key"
        profile.base_url = fake.base_url
        profile.save()
        body = alice_client.htmx_post(f"/settings/chat-profiles/{profile.pk}/test/").content.decode()
        assert "authentication" in body and "Incorrect API key provided" in body
        assert SECRET not in body
        fake.api_key = SECRET
        ok = alice_client.htmx_post(f"/settings/chat-profiles/{profile.pk}/test/").content.decode()
        assert "Connection works" in ok


def test_model_list_is_fetched_live_from_the_provider(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    key = alice_rows["key"]
    with FakeOpenAI("openai") as fake:
        # The key goes only where a saved profile that uses it points.
        profile = alice_rows["profile"]
        profile.base_url = fake.base_url
        profile.save()
        form = {"plugin": "qtap-plugin-openai", "api_key": key.pk, "base_url": fake.base_url}
        body = alice_client.htmx_post("/settings/models/", form).content.decode()
        assert '<option value="gpt-4o">' in body and '<option value="o3-mini">' in body
        again = alice_client.htmx_post("/settings/models/", form).content.decode()
        assert '<option value="gpt-4o">' in again
        assert [r.path for r in fake.requests if r.path.endswith("/models")] == ["/v1/models"]  # cached
    down = alice_client.htmx_post(
        "/settings/models/", {"plugin": "qtap-plugin-openai", "api_key": "", "base_url": "http://127.0.0.1:9/v1"}
    )
    assert "Could not load models" in down.content.decode()


def test_model_list_with_another_users_key_is_404(mallory_client: Any, alice_rows: dict[str, Any]) -> None:
    response = mallory_client.htmx_post(
        "/settings/models/", {"plugin": "qtap-plugin-openai", "api_key": alice_rows["key"].pk}
    )
    assert response.status_code == 404


def test_create_profile_through_the_form(alice_client: Any, alice_rows: dict[str, Any], user: Any) -> None:
    page = alice_client.get("/settings/profiles/new/").content.decode()
    assert "/settings/plugins/qtap-plugin-openai/icon.svg" in page and "--pbg: #10a37f" in page
    data = {
        "name": "Cheap",
        "plugin": "qtap-plugin-openai",
        "api_key": alice_rows["key"].pk,
        "base_url": "",
        "model": "gpt-4o",
        "temperature": "0.2",
    }
    assert alice_client.post("/settings/profiles/new/", data).status_code == 403
    response = alice_client.post_form("/settings/profiles/new/", data)
    assert response.status_code == 302 and response["Location"] == "/settings/profiles/"
    profile = ConnectionProfile.objects.get(user=user, name="Cheap")
    assert profile.model == "gpt-4o" and profile.parameters == {"temperature": 0.2} and not profile.is_default


def test_profile_form_shows_the_reason_it_refuses(alice_client: Any) -> None:
    data = {
        "name": "Local",
        "plugin": "qtap-plugin-openai-compatible",
        "model": "m",
        "base_url": "",
        "parameters": "{}",
    }
    response = alice_client.post_form("/settings/profiles/new/", data)
    assert response.status_code == 400 and "base URL" in response.content.decode()


def test_provider_fields_follow_the_manifest(alice_client: Any) -> None:
    ollama = alice_client.get("/settings/chat-profiles/fields/?plugin=qtap-plugin-ollama").content.decode()
    assert 'name="api_key"' not in ollama
    compatible = alice_client.get(
        "/settings/chat-profiles/fields/?plugin=qtap-plugin-openai-compatible"
    ).content.decode()
    assert 'name="base_url" type="url" required' in compatible
    openai = alice_client.get("/settings/chat-profiles/fields/?plugin=qtap-plugin-openai").content.decode()
    assert "OpenAI API key" in openai and 'name="api_key"' in openai


def test_image_profiles_offer_only_image_providers(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    page = alice_client.get("/settings/image-profiles/new/").content.decode()
    assert 'value="qtap-plugin-openai"' in page and 'value="qtap-plugin-anthropic"' not in page
    listing = alice_client.get("/settings/image-profiles/").content.decode()
    assert "Pictures" in listing and "gpt-image-1" in listing


def test_make_default_and_delete_profile(alice_client: Any, alice_rows: dict[str, Any], user: Any) -> None:
    from providers.services import connection_profile_create

    second = connection_profile_create(user=user, name="Second", plugin="qtap-plugin-ollama", model="llama3")
    response = alice_client.htmx_post(f"/settings/chat-profiles/{second.pk}/default/")
    assert response["HX-Redirect"] == "/settings/profiles/"
    second.refresh_from_db()
    alice_rows["profile"].refresh_from_db()
    assert second.is_default and not alice_rows["profile"].is_default
    assert alice_client.htmx_post(f"/settings/chat-profiles/{second.pk}/delete/").content == b""
    assert not ConnectionProfile.objects.filter(pk=second.pk).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/settings/profiles/{profile}/"),
        ("get", "/settings/image-profiles/{image}/"),
        ("post", "/settings/chat-profiles/{profile}/delete/"),
        ("post", "/settings/chat-profiles/{profile}/default/"),
        ("post", "/settings/chat-profiles/{profile}/test/"),
        ("post", "/settings/image-profiles/{image}/delete/"),
        ("post", "/settings/image-profiles/{image}/test/"),
    ],
)
def test_another_users_profile_is_404(mallory_client: Any, alice_rows: dict[str, Any], method: str, path: str) -> None:
    url = path.format(profile=alice_rows["profile"].pk, image=alice_rows["image_profile"].pk)
    response = mallory_client.get(url) if method == "get" else mallory_client.htmx_post(url)
    assert response.status_code == 404
    assert ConnectionProfile.objects.filter(pk=alice_rows["profile"].pk).exists()
    assert ImageProfile.objects.filter(pk=alice_rows["image_profile"].pk).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/settings/keys/",
        "/settings/keys/check/",
        "/settings/keys/{key}/test/",
        "/settings/keys/{key}/toggle/",
        "/settings/keys/{key}/delete/",
        "/settings/profiles/new/",
        "/settings/profiles/{profile}/",
        "/settings/image-profiles/new/",
        "/settings/chat-profiles/{profile}/delete/",
        "/settings/chat-profiles/{profile}/default/",
        "/settings/chat-profiles/{profile}/test/",
        "/settings/plugins/qtap-plugin-openai/toggle/",
        "/chats/new/",
        "/chats/{chat}/rename/",
        "/chats/{chat}/delete/",
        "/chats/{chat}/attachments/",
    ],
)
def test_every_form_enforces_csrf(alice_client: Any, alice_rows: dict[str, Any], user: Any, path: str) -> None:
    user.is_staff = True
    user.save()
    url = path.format(key=alice_rows["key"].pk, profile=alice_rows["profile"].pk, chat=alice_rows["chat"].pk)
    assert alice_client.post(url, {"title": "x", "enabled": "0"}).status_code == 403


def test_plugins_page_lists_status_capabilities_and_failures(alice_client: Any) -> None:
    page = alice_client.get("/settings/plugins/").content.decode()
    assert "qtap-plugin-openai" in page and "imageGeneration" in page and "loaded" in page
    assert "/toggle/" not in page  # not staff
    with registry.temporarily():
        registry.record_failure("qtap-plugin-broken", "manifest.json: unknown key 'colour'", source="local")
        failed = alice_client.get("/settings/plugins/").content.decode()
    assert "qtap-plugin-broken" in failed and "unknown key &#x27;colour&#x27;" in failed


def test_only_staff_enable_and_disable_plugins(alice_client: Any, user: Any) -> None:
    refused = alice_client.post_form("/settings/plugins/qtap-plugin-grok/toggle/", {"enabled": "0"})
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
    assert not PluginState.objects.filter(name="qtap-plugin-grok").exists()
    user.is_staff = True
    user.save()
    done = alice_client.post_form("/settings/plugins/qtap-plugin-grok/toggle/", {"enabled": "0"})
    assert done.status_code == 302
    assert PluginState.objects.get(name="qtap-plugin-grok").enabled is False
    page = alice_client.get("/settings/plugins/").content.decode()
    assert "Enable Grok" in page or "Enable xAI" in page
    assert alice_client.post_form("/settings/plugins/qtap-plugin-nope/toggle/", {"enabled": "0"}).status_code == 404


def test_plugin_icon_is_read_from_the_plugin_folder(alice_client: Any, client: Any) -> None:
    response = alice_client.get("/settings/plugins/qtap-plugin-openai/icon.svg")
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in body and b"OAI" in body and "sandbox" in response["Content-Security-Policy"]
    assert alice_client.get("/settings/plugins/qtap-plugin-nope/icon.svg").status_code == 404
    assert alice_client.get("/settings/plugins/..%2Fsecret/icon.svg").status_code == 404
    assert client.get("/settings/plugins/qtap-plugin-openai/icon.svg").status_code == 302


def test_edit_profile_keeps_its_values_and_saves_changes(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    profile = alice_rows["profile"]
    page = alice_client.get(f"/settings/profiles/{profile.pk}/").content.decode()
    assert 'value="GPT"' in page and 'value="gpt-4o-mini"' in page and 'value="http://127.0.0.1:9/v1"' in page
    assert f'<option value="{alice_rows["key"].pk}" selected>' in page
    data = {
        "name": "GPT renamed",
        "plugin": "qtap-plugin-openai",
        "api_key": alice_rows["key"].pk,
        "base_url": "http://127.0.0.1:9/v1",
        "model": "o3-mini",
        "parameters": "{}",
        "is_default": "on",
    }
    assert alice_client.post_form(f"/settings/profiles/{profile.pk}/", data).status_code == 302
    profile.refresh_from_db()
    assert (profile.name, profile.model, profile.is_default) == ("GPT renamed", "o3-mini", True)


def test_a_disabled_providers_profile_says_so_in_the_chat(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    from providers.plugin_state import plugin_set_enabled

    plugin_set_enabled(name="qtap-plugin-openai", enabled=False)
    chat_page = alice_client.get(f"/chats/{alice_rows['chat'].pk}/").content.decode()
    assert "GPT (gpt-4o-mini) — provider disabled" in chat_page
    listing = alice_client.get("/settings/profiles/").content.decode()
    assert "Provider disabled" in listing
    picker = alice_client.get("/settings/profiles/new/").content.decode()
    assert "OpenAI <small>(disabled)</small>" in picker and "Anthropic <small>" not in picker


# ---- a listing costs the same number of queries for 1 row and for 20 -----------------------------

QUERY_CEILING = 6  # the session, the user, the rows (keys joined), the plugin states, and a little room


def _add_rows(user: Any, kind: str, start: int, stop: int) -> None:
    """Rows ``start`` … ``stop - 1`` of one listing: each profile with a key of its own, the plugins
    alternating, every fifth row's plugin not loaded (written as a legacy row would be)."""
    from providers.services import api_key_create, connection_profile_create, image_profile_create

    create = image_profile_create if kind == "image" else connection_profile_create
    model = ImageProfile if kind == "image" else ConnectionProfile
    for i in range(start, stop):
        plugin = "qtap-plugin-openai" if kind == "image" or i % 2 else "qtap-plugin-anthropic"
        key = api_key_create(user=user, plugin=plugin, label=f"key {i}", secret=f"sk-ant-row{i:04d}-abcdefgh")
        if kind == "key":
            continue
        if i % 5 == 4:
            model.objects.create(user=user, name=f"gone {i}", plugin="qtap-plugin-gone", model="m", api_key=key)
        else:
            create(user=user, name=f"row {i}", plugin=plugin, model="m", api_key=key)


def _queries(client: Any, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize(
    ("kind", "path"),
    [("key", "/settings/keys/"), ("chat", "/settings/profiles/"), ("image", "/settings/image-profiles/")],
)
def test_a_listing_costs_the_same_queries_for_1_and_20_rows(alice_client: Any, user: Any, kind: str, path: str) -> None:
    PluginState.objects.create(name="qtap-plugin-anthropic", enabled=False)  # a status read from the database
    _add_rows(user, kind, 0, 1)
    alice_client.get(path)  # the session and the user are read once per test client, whatever the page
    one = _queries(alice_client, path)
    _add_rows(user, kind, 1, 20)
    twenty = _queries(alice_client, path)
    assert one == twenty <= QUERY_CEILING
    page = alice_client.get(path).content.decode()
    if kind != "key":
        assert page.count("Provider disabled") + page.count("Provider unavailable") >= 4


# ---- the model's own controls: reasoning, caching, API ------------------------------------------------


def test_the_profile_form_offers_only_the_reasoning_control_the_model_takes(alice_client: Any) -> None:
    def fields(plugin: str, model: str) -> str:
        url = f"/settings/chat-profiles/fields/?plugin={plugin}&model={model}"
        return alice_client.get(url, headers={"HX-Request": "true"}).content.decode()

    o3 = fields("qtap-plugin-openai", "o3-mini")
    assert 'name="reasoning_effort"' in o3 and '<option value="high">' in o3 and 'value="xhigh"' not in o3
    assert 'name="reasoning_budget_tokens"' not in o3
    assert 'value="o3-mini"' in o3  # what was typed stays
    plain = fields("qtap-plugin-openai", "gpt-4o")
    assert 'name="reasoning_effort"' not in plain and 'name="reasoning_budget_tokens"' not in plain
    haiku = fields("qtap-plugin-anthropic", "claude-haiku-4-5")
    assert 'name="reasoning_budget_tokens"' in haiku and 'name="reasoning_effort"' not in haiku
    assert 'name="prompt_caching"' in haiku  # Anthropic places cache breakpoints
    assert 'name="prompt_caching"' not in o3


def test_a_reasoning_effort_is_saved_and_refused_where_the_model_cannot_take_it(
    alice_client: Any, alice_rows: dict[str, Any], user: Any
) -> None:
    data = {
        "name": "Thinker",
        "plugin": "qtap-plugin-openai",
        "api_key": alice_rows["key"].pk,
        "model": "o3-mini",
        "reasoning_effort": "high",
    }
    saved = alice_client.htmx_post("/settings/profiles/new/", data)
    assert saved.status_code in (200, 204, 302), saved.content.decode()[:500]
    profile = ConnectionProfile.objects.get(user=user, name="Thinker")
    assert profile.parameters.get("reasoning_effort") == "high"
    page = alice_client.get(f"/settings/profiles/{profile.pk}/").content.decode()
    assert '<option value="high" selected>' in page
    # The same effort on a model without the knob is refused with the reason (the field is not offered,
    # so it can only arrive in a hand-made request: the rule still holds at the model).
    from django.core.exceptions import ValidationError

    from providers.services import profile_update

    with pytest.raises(ValidationError) as refused:
        profile_update(profile=profile, model="gpt-4o")
    assert "'gpt-4o' takes no reasoning effort" in str(refused.value)
