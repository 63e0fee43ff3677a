"""First steps in Chromium, with DEBUG off as in production: styled 404 pages with a way back (for an
unknown address and for another user's chat), the first profile (its only key preselected, made the
default, then "Start chatting"), and the first-run card (``make local-model`` for staff only).

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

from typing import Any

import pytest

from providers.models import ConnectionProfile
from providers.services import api_key_create
from qtap_site.chat.services import chat_create
from tests.ui.live import PASSWORD, Shots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TIMEOUT = 15_000  # ms
SECRET = "sk-test-not-a-real-key-flowpages-0123456789"


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


def test_not_found_pages_are_styled_and_lead_back(
    qtap_server: Any, browser_page: Any, alice: Any, django_user_model: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    mallory = django_user_model.objects.create_user(username="mallory", password=PASSWORD)
    secret_chat = chat_create(user=mallory, title="Mallory's secret plans")
    sign_in(page, qtap_server)
    for path in ("/no/such/page/", f"/chats/{secret_chat.pk}/"):
        response = page.goto(qtap_server.url(path))
        assert response is not None and response.status == 404
        page.get_by_role("heading", name="Page not found").wait_for(timeout=TIMEOUT)
        assert page.locator("link[rel=stylesheet]").count() >= 1  # the site's own look
        assert page.locator("header.topbar").count() == 1
        assert "Mallory" not in page.content() and "Traceback" not in page.content()
        shot("not-found")
        page.get_by_role("link", name="Back to your chats").click()
        page.wait_for_url(qtap_server.url("/"))


def test_first_profile_preselects_the_only_key_becomes_default_and_offers_chatting(
    qtap_server: Any, browser_page: Any, alice: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    key = api_key_create(user=alice, plugin="qtap-plugin-openai", label="only key", secret=SECRET)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url("/settings/profiles/new/"))
    page.get_by_label("Name").fill("My GPT")
    page.locator("label.provider-option", has_text="OpenAI").first.click()
    page.locator("#id_api_key").wait_for(timeout=TIMEOUT)
    assert page.locator("#id_api_key").input_value() == str(key.pk)
    assert page.get_by_label("Use as my default").is_checked()
    page.get_by_label("Model", exact=True).fill("gpt-4o-mini")
    page.get_by_label("Use as my default").uncheck()  # the first profile is the default all the same
    shot("form")
    page.get_by_role("button", name="Save profile").click()
    page.wait_for_url(qtap_server.url("/settings/profiles/?first=1"))
    profile = ConnectionProfile.objects.get(user=alice)
    assert profile.is_default and profile.api_key_id == key.pk
    shot("saved")
    page.get_by_role("link", name="Start chatting").click()
    page.wait_for_url("**/chats/new/**")
    page.locator("#prompt").wait_for(timeout=TIMEOUT)
    shot("new-chat")


def test_first_run_card_speaks_of_the_server_to_staff_only(
    qtap_server: Any, browser_page: Any, alice: Any, django_user_model: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    sign_in(page, qtap_server)
    card = page.locator(".first-run")
    card.wait_for(timeout=TIMEOUT)
    text = card.inner_text()
    assert "make local-model" not in text
    assert "ask your administrator" in text.lower()
    assert "Ollama" in text  # a provider whose manifest needs no key
    shot("user")
    page.context.clear_cookies()
    django_user_model.objects.create_user(username="root", password=PASSWORD, is_staff=True)
    sign_in(page, qtap_server, username="root")
    page.locator(".first-run").get_by_text("make local-model").wait_for(timeout=TIMEOUT)
    shot("staff")
