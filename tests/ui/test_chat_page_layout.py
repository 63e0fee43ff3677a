"""The chat page around the conversation, in Chromium against a live Daphne: "New chat" saves nothing until
the first message, a failed reply says what happened and the way out, the page at 390 px on a phone
(the chat list and the top menu behind toggles, Enter makes a new line), and dark mode (the system's
setting, or the reader's choice, applied before the first paint).

Screenshots of every step land in test-results/ui/<test>/ (desktop light and dark, 390 px).
"""

from __future__ import annotations

from typing import Any

import pytest

from qtap_site.chat.models import Chat, Message
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import ChatSetup, chat_setup
from tests.ui.live import Shots, sign_in
from tests.ui.test_browser import TIMEOUT, last_assistant, open_chat, send, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

ENDED = "() => { const m = [...document.querySelectorAll('#messages .msg-assistant')].pop(); return !!m && !m.classList.contains('status-streaming'); }"  # noqa: E501
REPLY = [
    "## Packing list\n\n- tent\n- stove\n\n| day | km |\n|---|---|\n| 1 | 12 |\n\n",
    "```python\ndef pack(items):\n    return sorted(items)  # by name\n```\n\nHave a **good** trip.",
]


@pytest.fixture
def setup(alice: Any, fake: FakeOpenAI) -> ChatSetup:
    return chat_setup(alice, fake.base_url, title="Trip planning")


def background(page: Any) -> str:
    return str(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))


def test_new_chat_is_saved_with_its_first_message(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    sign_in(page, qtap_server)
    before = Chat.objects.count()
    page.get_by_role("link", name="New chat").click()
    page.wait_for_url(qtap_server.url("/chats/new/"))
    page.locator("#prompt").wait_for()
    assert Chat.objects.count() == before  # a blank page, no "Untitled chat" row
    page.get_by_role("link", name="New chat").click()  # and again: still nothing saved
    page.wait_for_url(qtap_server.url("/chats/new/"))
    assert Chat.objects.count() == before
    shot("blank")
    fake.reply(["Sure, ", "let's go."])
    send(page, "Weekend hike ideas")
    page.wait_for_function(ENDED, timeout=TIMEOUT)
    assert Chat.objects.count() == before + 1
    chat = Chat.objects.latest("id")
    assert chat.title == "Weekend hike ideas" and chat.profile_id == setup.profile.pk
    assert page.url == qtap_server.url(f"/chats/{chat.pk}/")
    assert last_assistant(page).locator(".body").text_content().strip() == "Sure, let's go."
    assert page.locator("#chat-title").text_content() == "Weekend hike ideas"
    assert page.locator(f"#chat-item-{chat.pk} a").first.text_content().strip() == "Weekend hike ideas"
    assert [m.role for m in Message.objects.filter(chat=chat).order_by("id")] == ["user", "assistant"]
    page.reload()  # the address is the chat's own now
    wait_connected(page)
    assert page.locator("#messages .msg-assistant").count() == 1
    shot("saved")


def test_a_failed_reply_says_what_happened_and_the_way_out(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    fake.api_key = "sk-proj-some-other-key-0000000000000000"  # the profile's key is refused
    open_chat(page, qtap_server, setup)
    send(page, "hello?")
    error = last_assistant(page).locator(".msg-error")
    error.wait_for(timeout=TIMEOUT)
    words = error.text_content().strip()
    assert words.startswith("The provider did not accept the API key.")
    assert not words.lower().startswith("authentication")
    link = error.get_by_role("link", name="Check your API keys")
    assert link.get_attribute("href") == "/settings/keys/"
    assert "Incorrect API key" in error.locator(".error-detail").text_content()  # the provider's own words
    assert error.get_attribute("data-code") == "authentication"
    assert error.get_by_role("button", name="Retry").count() == 0  # retrying cannot help
    shot("bad-key")

    fake.api_key = None
    fake.fail_with(503, "The engine is currently overloaded, please try again later", times=3)
    send(page, "and now?")
    page.locator("#messages .msg-error").nth(1).wait_for(timeout=TIMEOUT)
    error = last_assistant(page).locator(".msg-error")
    assert error.locator(".error-words").text_content().startswith("The provider is")
    assert "overloaded" in error.locator(".error-detail").text_content()
    assert error.get_by_role("button", name="Retry").is_visible()
    shot("retryable")


def test_model_problems_lead_to_the_profile(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI
) -> None:
    page = browser_page
    fake.fail_with(404, "The model `gpt-9` does not exist or you do not have access to it.")
    open_chat(page, qtap_server, setup)
    send(page, "hello?")
    error = last_assistant(page).locator(".msg-error")
    error.wait_for(timeout=TIMEOUT)
    assert error.get_by_role("link", name="Check the connection profile").get_attribute("href") == "/settings/profiles/"
    assert "gpt-9" in error.text_content()


def test_the_chat_page_at_390_px_on_a_phone(
    qtap_server: Any, chromium: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    shot = Shots(page, request.node.name)
    try:
        fake.reply(REPLY)
        open_chat(page, qtap_server, setup)
        # The conversation comes first: the chat list waits behind its toggle.
        assert not page.locator("#chat-sidebar").is_visible()
        toggle = page.get_by_role("button", name="Chats")
        assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
        # The top menu is one line: its links wait behind "Menu".
        bar = page.locator(".topbar").bounding_box()
        assert bar is not None and bar["height"] < 60, bar
        assert not page.get_by_role("link", name="API keys").is_visible()
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        shot("closed")
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("link", name="API keys").wait_for()
        shot("menu")
        page.get_by_role("button", name="Menu").click()
        toggle.click()
        assert page.locator("#chat-sidebar").is_visible() and toggle.get_attribute("aria-expanded") == "true"
        assert page.locator(f"#chat-item-{setup.chat.pk}").is_visible()
        shot("chat-list")
        page.locator("#chat-sidebar").get_by_role("button", name="Close").click()
        assert not page.locator("#chat-sidebar").is_visible() and toggle.get_attribute("aria-expanded") == "false"
        # On a touch keyboard Enter makes a new line; the Send button sends.
        prompt = page.locator("#prompt")
        prompt.tap()
        prompt.press_sequentially("first")
        prompt.press("Enter")
        prompt.press_sequentially("second")
        assert prompt.input_value() == "first\nsecond"
        assert page.locator("#messages .msg-user").count() == 0
        assert "Send button sends" in page.locator("#composer-help").text_content()
        page.locator("#send").tap()
        page.wait_for_function(ENDED, timeout=TIMEOUT)
        assert page.locator(".msg-user .body").last.text_content() == "first\nsecond"
        assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
        shot("conversation")
    finally:
        context.close()


def test_dark_mode_follows_the_system_and_the_toggle(
    qtap_server: Any, chromium: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    # The colour at the first frame, before anything is painted: no flash of the other theme.
    first_frame = """requestAnimationFrame(() => { window.__firstBg = getComputedStyle(document.documentElement)
        .getPropertyValue('--bg').trim(); });"""
    for scheme, bg in (("dark", "rgb(21, 23, 26)"), ("light", "rgb(255, 255, 255)")):
        context = chromium.new_context(viewport={"width": 1100, "height": 900}, color_scheme=scheme)
        context.add_init_script(first_frame)
        page = context.new_page()
        shot = Shots(page, f"{request.node.name}-{scheme}")
        try:
            fake.reply(REPLY)
            open_chat(page, qtap_server, setup)
            assert background(page) == bg
            replies = page.locator("#messages .msg-assistant").count()
            send(page, "pack for me")
            page.wait_for_function(
                f"() => document.querySelectorAll('#messages .msg-assistant').length === {replies + 1}",
                timeout=TIMEOUT,
            )
            page.wait_for_function(ENDED, timeout=TIMEOUT)
            last_assistant(page).locator(".m-tokens", has_text="3 in").wait_for(timeout=TIMEOUT)
            shot("system-" + scheme)
            other = "light" if scheme == "dark" else "dark"
            page.get_by_role("button", name=f"Switch to {other} mode").click()
            assert background(page) != bg
            shot("toggled-" + other)
            page.reload()
            wait_connected(page)
            assert background(page) != bg  # the choice is kept
            assert page.evaluate("() => window.__firstBg") == ("#15171a" if other == "dark" else "#fff")
            assert page.evaluate("() => localStorage.getItem('qtap-theme')") == other
        finally:
            context.close()
