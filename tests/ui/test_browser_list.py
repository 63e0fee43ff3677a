"""The chat list and uploads in Chromium: rename and delete over htmx, refused uploads explained."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qtap_site.chat.models import Chat
from qtap_site.chat.services import chat_create
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import ChatSetup, chat_setup
from tests.ui.live import PASSWORD, Shots
from tests.ui.test_browser import TIMEOUT, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("openai") as server:
        yield server


@pytest.fixture
def setup(django_user_model: Any, fake: FakeOpenAI) -> ChatSetup:
    alice = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    return chat_setup(alice, fake.base_url, title="Browser chat")


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
