"""More of the workspace in Chromium: rename and delete over htmx, refused uploads explained, two tabs."""

from __future__ import annotations

from typing import Any

import pytest

from qtap_site.chat.models import Chat
from qtap_site.chat.services import chat_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import ChatSetup
from tests.ui.live import Shots
from tests.ui.test_browser import LAST, TIMEOUT, last_assistant, open_chat, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_rename_and_delete_chats_from_the_list(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    other = chat_create(user=setup.user, title="Scratch")
    open_chat(page, qtap_server, setup)
    item = page.locator(f"#chat-item-{other.pk}")
    item.locator("summary").click()
    item.get_by_label("Title").fill("Holiday plans")
    item.get_by_role("button", name="Rename").click()
    page.locator(f"#chat-item-{other.pk} a", has_text="Holiday plans").wait_for(timeout=TIMEOUT)
    assert page.url.endswith(f"/chats/{setup.chat.pk}/")  # swapped in place, no navigation
    shot("renamed")
    page.locator(f"#chat-item-{other.pk} summary").click()
    page.locator(f"#chat-item-{other.pk}").get_by_role("button", name="Delete").click()
    page.locator(f"#chat-item-{other.pk}").wait_for(state="detached", timeout=TIMEOUT)
    assert page.dialogs == ["confirm: Delete this chat and its messages?"]
    assert not Chat.objects.filter(pk=other.pk).exists()
    assert Chat.objects.get(pk=setup.chat.pk).title == "Browser chat"
    shot("deleted")
    current = page.locator(f"#chat-item-{setup.chat.pk}")
    current.locator("summary").click()
    current.get_by_role("button", name="Delete").click()
    page.wait_for_url(qtap_server.url("/"), timeout=TIMEOUT)  # deleting the open chat leaves it
    shot("left-deleted-chat")


def test_a_refused_upload_says_why_and_sends_nothing(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    open_chat(page, qtap_server, setup)
    program = b"MZ\x90\x00" + bytes(range(256)) * 4  # a Windows executable's magic number
    page.locator("#attach").set_input_files(files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": program}])
    page.locator("#prompt").fill("look at this")
    page.locator("#prompt").press("Enter")
    page.get_by_text("holiday.png:").wait_for(timeout=TIMEOUT)
    warning = page.locator("#attach-warning").text_content()
    assert "not accepted" in warning or "could not be" in warning or "not recognised" in warning
    shot("refused")
    assert fake.chat_requests == []
    assert page.locator("#prompt").input_value() == "look at this"  # nothing lost


def test_two_tabs_see_the_same_stream_and_either_can_stop_it(
    qtap_server: Any, chromium: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    context = chromium.new_context(viewport={"width": 900, "height": 800})
    try:
        first, second = context.new_page(), context.new_page()
        shot_first, shot_second = (
            Shots(first, request.node.name + "-first"),
            Shots(second, request.node.name + "-second"),
        )
        open_chat(first, qtap_server, setup)
        second.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
        second.wait_for_function(
            "() => document.getElementById('conn-status').textContent === 'Connected'", timeout=TIMEOUT
        )
        fake.synthetic(500, delay=0.02, token="z ")
        send(first, "from the first tab")
        second.locator(".msg-user .body", has_text="from the first tab").wait_for(timeout=TIMEOUT)
        second.wait_for_function(
            f"() => {{ const m = {LAST}; return !!m && m.querySelector('.body').textContent.length > 20; }}",
            timeout=TIMEOUT,
        )
        assert second.locator("#stop").is_visible() and first.locator("#stop").is_visible()
        shot_second("watching")
        second.locator("#stop").click()
        for page in (first, second):
            last_assistant(page).locator(".m-status", has_text="Stopped").wait_for(timeout=TIMEOUT)
            assert not page.locator("#stop").is_visible()
        assert fake.disconnected.wait(5)
        texts = {page.evaluate(f"() => {LAST}.querySelector('.body').textContent.trim()") for page in (first, second)}
        assert len(texts) == 1  # both tabs end with the same saved text
        shot_first("stopped-by-the-other-tab")
    finally:
        context.close()
