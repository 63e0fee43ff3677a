"""A reply written by a process that died: the tab hears nothing more, not even an error. After a
silence longer than the server's staleness limit it reconnects, and the fresh chat.state shows the
reply "Interrupted" with its saved text, and the composer usable again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from qtap_site.chat.models import Message
from tests.support.data import chat_setup
from tests.ui.live import PASSWORD, Shots, live_server, sign_in
from tests.ui.test_browser import LAST, TIMEOUT, last_assistant, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

STALE_SECONDS = 1  # the page then reconnects after 1 + 5 s of silence


@pytest.fixture
def quick_to_give_up(django_db_setup: None) -> Iterator[Any]:
    with live_server({"QTAP_GENERATION_STALE_SECONDS": str(STALE_SECONDS)}) as server:
        yield server


def test_a_reply_whose_process_died_ends_as_interrupted_in_the_open_tab(
    quick_to_give_up: Any, chromium: Any, django_user_model: Any, request: Any
) -> None:
    alice = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    setup = chat_setup(alice, "http://127.0.0.1:9/v1", title="Orphaned reply")
    page = chromium.new_page()
    shots = Shots(page, request.node.name)
    try:
        sign_in(page, quick_to_give_up)
        # Another process is writing a reply: a "streaming" row whose heartbeat is fresh for a few
        # seconds more, then goes stale, as when that process is killed. No frame will ever come.
        question = Message.objects.create(chat=setup.chat, role=Message.Role.USER, content="are you there?")
        Message.objects.create(
            chat=setup.chat,
            parent=question,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            content="I was saying",
            heartbeat_at=timezone.now() + timedelta(seconds=3),
        )
        page.goto(quick_to_give_up.url(f"/chats/{setup.chat.pk}/"))
        wait_connected(page)
        page.locator("#stop").wait_for(state="visible", timeout=TIMEOUT)
        assert "I was saying" in page.evaluate(f"() => {LAST}.querySelector('.body').textContent")
        shots("streaming-with-no-news")

        last_assistant(page).locator(".m-status", has_text="Interrupted").wait_for(timeout=30_000)
        wait_connected(page)
        assert not page.locator("#stop").is_visible()
        assert "I was saying" in page.evaluate(f"() => {LAST}.querySelector('.body').textContent")
        assert Message.objects.get(role=Message.Role.ASSISTANT).status == Message.Status.INTERRUPTED
        shots("interrupted-after-reconnecting")
    finally:
        page.close()
