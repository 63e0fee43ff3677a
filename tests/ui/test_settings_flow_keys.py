"""The API keys page in Chromium: "Test" tries the base URL its owner means (a saved profile's, or the
plugin's default), refuses a typed-in URL no saved profile uses, and says which host it tried; the key-format
warning speaks of saving only once the key is saved; the admin's key page has one "Secret" row.

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from providers.services import api_key_create, connection_profile_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import CHAT_COMPLETIONS
from tests.ui.live import PASSWORD, Shots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TIMEOUT = 15_000  # ms
SECRET = "sk-test-not-a-real-key-flowkeys-0123456789"


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def proxy() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai") as server:
        server.api_key = SECRET
        yield server


def test_test_uses_the_base_url_of_the_keys_profile_and_names_the_host(
    qtap_server: Any, browser_page: Any, alice: Any, proxy: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    key = api_key_create(user=alice, plugin="qtap-plugin-openai", label="proxy key", secret=SECRET)
    connection_profile_create(
        user=alice, name="Via proxy", plugin="qtap-plugin-openai", model="gpt-4o-mini", api_key=key,
        base_url=proxy.base_url, parameters=CHAT_COMPLETIONS,
    )  # fmt: skip
    host = urlsplit(proxy.base_url).netloc
    sign_in(page, qtap_server)
    page.goto(qtap_server.url("/settings/keys/"))
    row = page.locator(f"#key-{key.pk}")
    shot("keys")
    row.get_by_role("button", name="Test").click()
    row.get_by_text(f"Connection to {host} works").wait_for(timeout=TIMEOUT)
    assert [r for r in proxy.requests if r.path.endswith("/models")], "the test went to the proxy"
    assert SECRET not in page.content()
    shot("proxy-works")

    # A URL typed in that no saved profile uses: the key is not sent there, and the page says what to do.
    before = len(proxy.requests)
    row.get_by_label("Or another base URL").fill("http://127.0.0.1:9/v1")
    row.get_by_role("button", name="Test").click()
    row.get_by_text("Save the profile with http://127.0.0.1:9/v1 first").wait_for(timeout=TIMEOUT)
    assert len(proxy.requests) == before
    shot("typed-url-refused")


def test_key_format_warning_while_typing_and_after_saving(
    qtap_server: Any, browser_page: Any, alice: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url("/settings/keys/"))
    page.locator("label.provider-option", has_text="OpenAI").first.click()
    page.get_by_label("Label").fill("odd key")
    page.get_by_label("Secret").fill("not-a-real-looking-key")
    warning = page.locator("#key-warning")
    warning.get_by_text("This does not look like a key for OpenAI (they start with sk-)").wait_for(timeout=TIMEOUT)
    assert "saved" not in warning.inner_text()  # nothing is saved while typing
    shot("typing")
    page.get_by_role("button", name="Save key").click()
    page.get_by_text("…-key").wait_for(timeout=TIMEOUT)
    page.get_by_text("It was saved anyway").wait_for(timeout=TIMEOUT)
    assert "not-a-real-looking-key" not in page.content()
    shot("saved")


def test_admin_key_page_has_one_secret_row(
    qtap_server: Any, browser_page: Any, django_user_model: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    boss = django_user_model.objects.create_superuser(username="boss", password=PASSWORD)
    key = api_key_create(user=boss, plugin="qtap-plugin-openai", label="ops key", secret=SECRET)
    sign_in(page, qtap_server, username="boss")
    page.goto(qtap_server.url(f"/admin/providers/apikey/{key.pk}/change/"))
    labels = [text.strip() for text in page.locator("#apikey_form label").all_inner_texts()]
    assert [label for label in labels if label.startswith("Secret")] == ["Secret:"], labels
    page.get_by_text("…" + SECRET[-4:]).first.wait_for(timeout=TIMEOUT)  # the stored key's last four, once
    assert SECRET not in page.content() and SECRET[3:-4] not in page.content()
    shot("admin-key")
