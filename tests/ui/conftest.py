"""Fixtures of the browser-workspace tests: signed-in clients that enforce CSRF, and rows of two users."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from providers.services import api_key_create, connection_profile_create, image_profile_create
from qtap_site.chat.services import chat_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import CHAT_COMPLETIONS, ChatSetup, chat_setup
from tests.ui.live import PASSWORD

SECRET = "sk-proj-uiTESTsecretNeverShown0123456789wxyz"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class CsrfClient(Client):
    """A client that enforces CSRF like a browser-facing server; ``csrf()`` reads a token from a page."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(enforce_csrf_checks=True, **kwargs)

    def csrf(self, page: str = "/settings/keys/") -> str:
        response = self.get(page)
        match = CSRF_INPUT.search(response.content.decode())
        assert match, f"no CSRF token on {page}"
        return match.group(1)

    def post_form(self, path: str, data: dict[str, Any] | None = None, **extra: Any) -> Any:
        payload = dict(data or {})
        payload["csrfmiddlewaretoken"] = self.csrf()
        return self.post(path, payload, **extra)

    def htmx_post(self, path: str, data: dict[str, Any] | None = None, current: str = "/") -> Any:
        token = self.csrf()
        return self.post(
            path,
            data or {},
            headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{current}", "X-CSRFToken": token},
        )


@pytest.fixture
def alice_client(user: Any) -> CsrfClient:
    client = CsrfClient()
    client.force_login(user)
    return client


@pytest.fixture
def mallory_client(other_user: Any) -> CsrfClient:
    client = CsrfClient()
    client.force_login(other_user)
    return client


@pytest.fixture
def alice_rows(user: Any) -> dict[str, Any]:
    """alice's key, profiles and chat (pointing at a base URL nobody listens on: no network here)."""
    key = api_key_create(user=user, plugin="qtap-plugin-openai", label="work", secret=SECRET)
    profile = connection_profile_create(
        user=user,
        name="GPT",
        plugin="qtap-plugin-openai",
        model="gpt-4o-mini",
        api_key=key,
        base_url="http://127.0.0.1:9/v1",
        is_default=True,
        parameters=CHAT_COMPLETIONS,
    )
    image_profile = image_profile_create(
        user=user, name="Pictures", plugin="qtap-plugin-openai", model="gpt-image-1", api_key=key, is_default=True
    )
    chat = chat_create(user=user, profile=profile, title="Alice's plans")
    return {"key": key, "profile": profile, "image_profile": image_profile, "chat": chat}


# ---- browser tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qtap_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[Any]:
    from tests.ui.live import live_server

    with live_server() as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.ui.live import launch_chromium

    # Playwright's sync API keeps an event loop registered on this thread, which Django's async-safety
    # check mistakes for async code; the test process only does plain ORM set-up and checks.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context; every JavaScript dialog is recorded (and dismissed) in ``page.dialogs``."""
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.dialogs = dialogs
    yield page
    context.close()


# The browser tests' usual cast: alice, a fake OpenAI upstream, and one chat of hers that uses it.


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai") as server:
        yield server


@pytest.fixture
def setup(alice: Any, fake: FakeOpenAI) -> ChatSetup:
    return chat_setup(alice, fake.base_url, title="Browser chat")
