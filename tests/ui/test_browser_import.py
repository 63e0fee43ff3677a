"""Importing in Chromium: a ChatGPT export of many chats is uploaded from the transfer page, which shows the
upload's progress, then the import's own (conversations read, chats saved, ``done`` of ``total``), then
the result with links to the imported chats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qtap_site.chat.models import Chat
from tests.transfer.conftest import chatgpt_export
from tests.ui.live import PASSWORD, Shots, sign_in
from tests.ui.test_browser import TIMEOUT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

CHATS = 1500  # enough that saving them takes longer than a few polls on this machine

# Every text the progress line shows, recorded as it changes (a poll may pass a stage between two looks).
RECORD = """() => {
  window.progressSeen = [];
  const line = document.querySelector('#import-progress [data-progress-text]');
  new MutationObserver(() => window.progressSeen.push(line.textContent))
    .observe(line, {childList: true, characterData: true, subtree: true});
}"""


def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "conversations.json"
    path.write_bytes(chatgpt_export(CHATS, key="browser", title="Browser import {i:04d}"))
    return path


def test_importing_a_large_export_shows_progress_then_the_result(
    qtap_server: Any, browser_page: Any, django_user_model: Any, tmp_path: Path, request: Any
) -> None:
    alice = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    page, shot = browser_page, Shots(browser_page, request.node.name)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url("/transfer/"))
    page.evaluate(RECORD)
    page.get_by_label("File").set_input_files(str(export_file(tmp_path)))
    page.get_by_role("button", name="Import").click()
    page.locator("#import-progress").wait_for(state="visible", timeout=TIMEOUT)
    shot("progress")
    page.locator("#import-result .ok").wait_for(timeout=60_000)
    shot("result")

    seen = page.evaluate("window.progressSeen")
    assert any(text.startswith("Uploading: ") and " MB of " in text for text in seen), seen
    counted = [text for text in seen if text.startswith(("Reading conversations: ", "Saving chats: "))]
    assert counted, seen
    assert any(text.startswith("Saving chats: ") and text.endswith(f" of {CHATS:,}") for text in seen), seen
    assert page.locator("#import-progress").is_hidden()
    result = page.locator("#import-result .ok").inner_text()
    assert result.startswith(f"ChatGPT export: imported {CHATS:,} chats (")
    assert result.endswith("skipped 0 already imported.")
    links = page.locator("#import-result ul.imported a")
    assert links.count() == 200  # the first 200; the chat list has the rest
    assert links.first.inner_text() == "Browser import 0000"
    assert Chat.objects.filter(user=alice).count() == CHATS

    links.first.click()
    page.wait_for_url(qtap_server.url(f"/chats/{Chat.objects.get(title='Browser import 0000').pk}/"))


def test_a_refused_file_says_nothing_was_imported(
    qtap_server: Any, browser_page: Any, django_user_model: Any, tmp_path: Path
) -> None:
    django_user_model.objects.create_user(username="alice", password=PASSWORD)
    page = browser_page
    sign_in(page, qtap_server)
    page.goto(qtap_server.url("/transfer/"))
    bad = tmp_path / "conversations.json"
    bad.write_text('[{"mapping": {}, "id": "x"}, {"title": "no mapping"}]')
    page.get_by_label("File").set_input_files(str(bad))
    page.get_by_role("button", name="Import").click()
    alert = page.locator("#import-result [role=alert]")
    alert.wait_for(timeout=TIMEOUT)
    assert alert.inner_text() == (
        "Nothing was imported. conversations.json: item 1: no 'mapping' (not a ChatGPT conversation) (bad_export)"
    )
