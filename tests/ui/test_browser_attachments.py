"""Attachments in the composer and in sent messages, in Chromium against a live Daphne: an image shows
a thumbnail before sending (a local preview) and after (served by qtap, still there after a reload, and
opening full size); a file the picked profile refuses is never uploaded, says why, and blocks Send until
it is removed or the profile changes.

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

from typing import Any

import pytest

from providers.services import connection_profile_create
from qtap_site.chat.models import Attachment, Message
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import ChatSetup, chat_setup
from tests.ui.live import Shots, sign_in
from tests.ui.test_browser import TIMEOUT, png, send, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

REFUSAL = "Ollama's llama3 does not take images."


@pytest.fixture
def setup(alice: Any, fake: FakeOpenAI) -> ChatSetup:
    return chat_setup(alice, fake.base_url, title="Pictures")


def uploads_of(page: Any) -> list[str]:
    """Every upload the page makes from now on (the URL of each POST to an attachments endpoint)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if r.method == "POST" and "/attachments/" in r.url else None)
    return seen


def shown(page: Any, url: str) -> None:
    """Wait until the sent message's thumbnail of ``url`` has loaded (the server answered the image)."""
    found = f"document.querySelector(\".msg-user .attachments img[src='{url}']\")"
    page.wait_for_function(f"() => {found} && {found}.complete && {found}.naturalWidth > 0", timeout=TIMEOUT)


def test_an_image_shows_a_thumbnail_before_and_after_sending(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    uploads = uploads_of(page)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
    wait_connected(page)
    page.locator("#attach").set_input_files(files=[{"name": "red.png", "mimeType": "image/png", "buffer": png()}])
    chip = page.locator("#pending-files .chip", has_text="red.png")
    preview = chip.locator("img.chip-thumb")
    preview.wait_for(timeout=TIMEOUT)
    assert preview.get_attribute("src").startswith("blob:")  # a local preview: nothing uploaded yet
    page.wait_for_function("() => { const i = document.querySelector('.chip-thumb'); return i && i.naturalWidth > 0; }")
    assert uploads == [] and page.locator("#send").is_enabled()
    shot("composer-thumbnail")

    fake.reply(["A", " red", " square."])
    send(page, "What is this?")
    page.locator("#messages .msg-assistant .body", has_text="A red square.").wait_for(timeout=TIMEOUT)
    assert len(uploads) == 1 and page.locator("#pending-files .chip").count() == 0
    attachment = Attachment.objects.get(owner=setup.user)
    url = f"/attachments/{attachment.pk}/"
    thumb = page.locator(f".msg-user .attachments img[src='{url}']")
    thumb.wait_for(timeout=TIMEOUT)  # the live message (message.created) carries it
    shown(page, url)
    assert thumb.get_attribute("alt") == "red.png"
    shot("sent-thumbnail")

    page.reload()
    wait_connected(page)
    thumb = page.locator(f".msg-user .attachments img[src='{url}']")
    thumb.wait_for(timeout=TIMEOUT)
    shown(page, url)
    shot("after-reload")

    with page.context.expect_page(timeout=TIMEOUT) as opened:
        thumb.click()
    full = opened.value
    full.wait_for_load_state()
    assert full.url == qtap_server.url(url)  # the full image, in a tab of its own
    full.close()
    message = Message.objects.get(chat=setup.chat, role="user")
    assert list(message.attachments.values_list("pk", flat=True)) == [attachment.pk]


def test_a_file_the_profile_refuses_is_not_uploaded_and_blocks_send(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    connection_profile_create(
        user=setup.user, name="Local", plugin="qtap-plugin-ollama", model="llama3", base_url="http://127.0.0.1:9"
    )
    uploads = uploads_of(page)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
    wait_connected(page)
    page.locator("#profile").select_option(label="Local (llama3)")
    page.locator("#attach").set_input_files(files=[{"name": "red.png", "mimeType": "image/png", "buffer": png()}])
    chip = page.locator("#pending-files .chip", has_text="red.png")
    chip.locator(".chip-reason", has_text=REFUSAL).wait_for(timeout=TIMEOUT)
    send_button = page.locator("#send")
    assert send_button.is_disabled()
    described = page.locator("#" + send_button.get_attribute("aria-describedby"))
    assert REFUSAL in described.text_content()
    shot("refused")

    page.locator("#prompt").fill("What is this?")
    page.locator("#prompt").press("Enter")  # Enter does not get round the disabled button
    page.wait_for_timeout(500)
    assert uploads == [] and not Message.objects.filter(chat=setup.chat).exists()
    assert not Attachment.objects.exists() and fake.chat_requests == []

    page.locator("#profile").select_option(label="fake (gpt-4o-mini)")  # a profile that takes it
    page.wait_for_function("() => !document.getElementById('send').disabled", timeout=TIMEOUT)
    assert page.locator("#pending-files .chip-reason").count() == 0 and described.text_content() == ""
    page.locator("#profile").select_option(label="Local (llama3)")
    page.wait_for_function("() => document.getElementById('send').disabled", timeout=TIMEOUT)

    page.get_by_role("button", name="Remove red.png").click()
    page.wait_for_function("() => !document.getElementById('send').disabled", timeout=TIMEOUT)
    assert page.locator("#pending-files .chip").count() == 0 and described.text_content() == ""
    assert uploads == []
    shot("removed")
