"""Edit and resend, branch navigation and the keyboard in Chromium: an edited message gets its own
reply and shows "2/2" between its arrows, the back arrow goes back to the first branch in both tabs,
the up arrow in an empty composer opens the last message's editor, ? shows the shortcuts, and a search
link to a message older than the page's newest hundred scrolls to it."""

from __future__ import annotations

from typing import Any

import pytest

from qtap_site.chat.models import Message
from tests.support.data import ChatSetup
from tests.ui.live import Shots
from tests.ui.test_browser import TIMEOUT, last_assistant, open_chat, send, wait_connected

BACK, ON = "\u2039", "\u203a"  # the arrows of the sibling switcher

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_edit_resend_and_switch_branches_in_two_tabs(
    qtap_server: Any, chromium: Any, setup: ChatSetup, fake: Any, request: Any
) -> None:
    context = chromium.new_context(viewport={"width": 1000, "height": 900})
    try:
        page, other = context.new_page(), context.new_page()
        shot = Shots(page, request.node.name)
        open_chat(page, qtap_server, setup)
        fake.reply(["The first answer."])
        send(page, "Original question")
        last_assistant(page).locator(".body", has_text="The first answer.").wait_for(timeout=TIMEOUT)
        other.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
        wait_connected(other)

        # ↑ in the empty composer opens the editor of the last message of mine.
        page.locator("#prompt").focus()
        page.keyboard.press("ArrowUp")
        editor = page.locator(".msg-user .msg-edit textarea")
        editor.wait_for(timeout=TIMEOUT)
        assert editor.input_value() == "Original question"
        shot("editing")
        fake.reply(["The second answer."])
        editor.fill("Edited question")
        page.locator(".msg-user .msg-edit").get_by_role("button", name="Save & send").click()

        for tab in (page, other):
            last_assistant(tab).locator(".body", has_text="The second answer.").wait_for(timeout=TIMEOUT)
            tab.locator(".msg-user .branch-nav", has_text=f"{BACK} 2/2 {ON}").wait_for(timeout=TIMEOUT)
            assert tab.locator(".msg-user .body").all_text_contents() == ["Edited question"]
            assert tab.locator("text=The first answer.").count() == 0
        assert "Original question" not in str(fake.chat_requests[-1].json["messages"])
        shot("edited")

        # The back arrow goes back to the first branch, in this tab and the other.
        page.locator(".msg-user .branch-nav").get_by_role("button", name="Previous version").click()
        for tab in (page, other):
            tab.locator(".msg-user .branch-nav", has_text=f"{BACK} 1/2 {ON}").wait_for(timeout=TIMEOUT)
            last_assistant(tab).locator(".body", has_text="The first answer.").wait_for(timeout=TIMEOUT)
            assert tab.locator(".msg-user .body").all_text_contents() == ["Original question"]
        shot("first-branch")

        # A reload draws the chosen branch on the server, with its controls.
        other.reload()
        wait_connected(other)
        assert other.locator(".msg-user .body").all_text_contents() == ["Original question"]
        assert other.locator(".msg-user .branch-nav").text_content().strip() == f"{BACK} 1/2 {ON}"
        assert other.locator(".branch-nav [aria-label='Previous version']").is_disabled()
    finally:
        context.close()


def test_question_mark_shows_the_shortcuts_and_escape_closes_them(
    qtap_server: Any, browser_page: Any, setup: ChatSetup
) -> None:
    page = browser_page
    open_chat(page, qtap_server, setup)
    help_box = page.locator("#shortcuts-help")
    page.locator("#prompt").fill("a ? typed in the composer is text")
    assert not help_box.is_visible()
    page.locator("#prompt").fill("")
    page.locator("h1").click()  # out of the field
    page.keyboard.press("?")
    help_box.wait_for(state="visible", timeout=TIMEOUT)
    for words in ("Ctrl+Shift+O", "Ctrl+K", "Esc", "↑"):
        assert words in help_box.inner_text().replace(" + ", "+"), words
    page.keyboard.press("Escape")
    help_box.wait_for(state="hidden", timeout=TIMEOUT)
    # The new-chat shortcut opens a new chat.
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(qtap_server.url("/chats/new/") + "*", timeout=TIMEOUT)


def test_a_link_to_an_old_message_loads_back_to_it(qtap_server: Any, browser_page: Any, setup: ChatSetup) -> None:
    page = browser_page
    parent = None
    for number in range(130):  # more than the page's newest hundred
        role = "user" if number % 2 == 0 else "assistant"
        parent = Message.objects.create(chat=setup.chat, parent=parent, role=role, content=f"Line number {number}")
    target = Message.objects.get(chat=setup.chat, content="Line number 4")
    open_chat(page, qtap_server, setup)
    assert page.locator(f"#msg-{target.pk}").count() == 0  # not among the newest hundred
    page.goto(qtap_server.url("/"))
    page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/#message-{target.pk}"))  # as a search result links
    page.locator(f"#msg-{target.pk}").wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        f"() => {{ const r = document.getElementById('msg-{target.pk}').getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; }",
        timeout=TIMEOUT,
    )
