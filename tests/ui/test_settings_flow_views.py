"""The settings-flow fixes through Django's test client, where it says more than the browser: the host a
key test tried and the URLs it refuses (nothing is sent there), the warning before and after saving, the
404 and 500 pages with DEBUG off, the first profile's form and "Start chatting", and the first-run card."""

from __future__ import annotations

from typing import Any

import pytest
from django.template import loader
from django.test import RequestFactory, override_settings
from django.views.defaults import server_error

from providers.models import ConnectionProfile
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.services import chat_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import CHAT_COMPLETIONS
from tests.ui.conftest import SECRET, CsrfClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_key_test_names_the_host_of_the_keys_profile_and_refuses_a_typed_url(
    alice_client: CsrfClient, user: Any
) -> None:
    with FakeOpenAI("openai") as proxy:
        proxy.api_key = SECRET
        key = api_key_create(user=user, plugin="qtap-plugin-openai", label="proxy", secret=SECRET)
        connection_profile_create(
            user=user, name="P", plugin="qtap-plugin-openai", model="gpt-4o-mini", api_key=key,
            base_url=proxy.base_url, parameters=CHAT_COMPLETIONS,
        )  # fmt: skip
        page = alice_client.get("/settings/keys/").content.decode()
        assert f'name="base_url" value="{proxy.base_url}"' in page or f'<option value="{proxy.base_url}">' in page
        host = proxy.base_url.split("/")[2]
        ok = alice_client.htmx_post(f"/settings/keys/{key.pk}/test/", {"base_url": proxy.base_url}).content.decode()
        assert f"Connection to {host} works." in ok and SECRET not in ok
        sent = len(proxy.requests)
        refused = alice_client.htmx_post(
            f"/settings/keys/{key.pk}/test/", {"base_url": proxy.base_url, "other_base_url": "https://evil.example/v1"}
        ).content.decode()
        assert "Not tried (key_destination)" in refused
        assert "Save the profile with https://evil.example/v1 first" in refused
        assert len(proxy.requests) == sent


def test_warning_while_typing_says_nothing_of_saving(alice_client: CsrfClient) -> None:
    typed = alice_client.htmx_post("/settings/keys/check/", {"plugin": "qtap-plugin-openai", "secret": "nope1234"})
    text = typed.content.decode()
    assert "This does not look like a key for OpenAI (they start with sk-)." in text and "saved" not in text
    saved = alice_client.htmx_post(
        "/settings/keys/", {"plugin": "qtap-plugin-openai", "label": "odd", "secret": "nope1234", "is_active": "on"}
    ).content.decode()
    assert "It was saved anyway" in saved


@override_settings(DEBUG=False)
def test_not_found_pages_are_styled_and_say_nothing(alice_client: CsrfClient, other_user: Any) -> None:
    chat = chat_create(user=other_user, title="Mallory's secret")
    for path in ("/no/such/page/", f"/chats/{chat.pk}/", "/settings/presets/edit/?id=999"):
        response = alice_client.get(path)
        text = response.content.decode()
        assert response.status_code == 404
        assert "Page not found" in text and 'href="/">Back to your chats' in text and "qtap.css" in text
        assert "Mallory" not in text and "Traceback" not in text


def test_server_error_page_needs_no_request_context() -> None:
    assert "Something went wrong" in loader.get_template("500.html").render()
    response = server_error(RequestFactory().get("/boom/"))
    text = response.content.decode()
    assert response.status_code == 500 and "Back to your chats" in text and "qtap.css" in text
    assert "Traceback" not in text and "/boom/" not in text


def test_first_profile_form_and_start_chatting(alice_client: CsrfClient, user: Any) -> None:
    key = api_key_create(user=user, plugin="qtap-plugin-openai", label="only", secret=SECRET)
    fields = alice_client.get("/settings/chat-profiles/fields/?plugin=qtap-plugin-openai").content.decode()
    assert f'<option value="{key.pk}" selected>' in fields
    form = alice_client.get("/settings/profiles/new/").content.decode()
    assert 'name="is_default" value="on" checked' in form
    saved = alice_client.post_form(
        "/settings/profiles/new/",
        {"name": "First", "plugin": "qtap-plugin-openai", "model": "gpt-4o-mini", "api_key": key.pk},
    )
    assert saved.status_code == 302 and saved["Location"] == "/settings/profiles/?first=1"
    assert ConnectionProfile.objects.get(user=user).is_default
    listing = alice_client.get(saved["Location"]).content.decode()
    assert 'href="/chats/new/">Start chatting' in listing
    assert "Start chatting" not in alice_client.get("/settings/profiles/").content.decode()
    second = alice_client.post_form(
        "/settings/profiles/new/",
        {"name": "Second", "plugin": "qtap-plugin-openai", "model": "gpt-4o", "api_key": key.pk},
    )
    assert second["Location"] == "/settings/profiles/"
    assert 'name="is_default" value="on">' in alice_client.get("/settings/profiles/new/").content.decode()


def test_first_run_card_for_users_and_staff(alice_client: CsrfClient, user: Any) -> None:
    card = alice_client.get("/").content.decode()
    assert "make local-model" not in card and "Ask your administrator" in card and "Ollama" in card
    user.is_staff = True
    user.save()
    assert "make local-model" in alice_client.get("/").content.decode()
