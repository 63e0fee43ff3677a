"""A reconnecting tab resumes a reply from its chat.state snapshot: of the frames still in flight, it drops
exactly those with a ``seq`` at or below the snapshot's and applies the next one (static/qtap/chat.js).

The page is the real chat page of a live qtap in Chromium; its websocket is answered by Playwright
(``route_web_socket``), so the test decides which frames arrive, in which order, on which connection.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.support.data import chat_setup
from tests.ui.live import PASSWORD, Shots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TIMEOUT = 15_000  # ms
REPLY = 902  # the assistant message the frames are about
BODY = f"() => (document.querySelector('#msg-{REPLY} .body') || {{}}).textContent || ''"


class MockSockets:
    """Every websocket the page opens to /ws/chats/…, answered here instead of by the server."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.routes: list[Any] = []
        page.route_web_socket(re.compile(r"/ws/chats/\d+/$"), self._opened)

    def _opened(self, route: Any) -> None:
        self.routes.append(route)

    def wait_for(self, count: int) -> Any:
        deadline = time.monotonic() + TIMEOUT / 1000
        while len(self.routes) < count:
            assert time.monotonic() < deadline, f"the page opened {len(self.routes)} sockets, not {count}"
            self.page.wait_for_timeout(50)
        return self.routes[count - 1]


def frame(route: Any, kind: str, **fields: Any) -> None:
    route.send(json.dumps({"type": kind, **fields}))


def delta(route: Any, seq: int, text: str) -> None:
    frame(route, "generation.delta", message_id=REPLY, seq=seq, text=text)


def body_is(page: Any, expected: str) -> None:
    """Wait until the reply's text is ``expected``; a frame applied twice or skipped shows in the message."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => ({BODY})() === {json.dumps(expected)}", timeout=5_000)
    except PlaywrightTimeout:
        assert page.evaluate(BODY) == expected


def test_a_resumed_tab_drops_the_frames_its_snapshot_holds_and_keeps_the_next(
    qtap_server: Any, browser_page: Any, django_user_model: Any, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    alice = django_user_model.objects.create_user(username="alice", password=PASSWORD)
    setup = chat_setup(alice, "http://127.0.0.1:9/v1", title="Resumed reply")
    sockets = MockSockets(page)
    sign_in(page, qtap_server)
    page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))

    # First connection: the reply starts and three deltas arrive.
    first = sockets.wait_for(1)
    frame(first, "chat.state", chat={"id": setup.chat.pk, "title": "Resumed reply"}, messages_tail=[], generation=None)
    frame(first, "generation.started", message_id=REPLY, model="gpt-4o-mini")
    for seq, text in ((1, "A"), (2, "B"), (3, "C")):
        delta(first, seq, text)
    body_is(page, "ABC")
    shot("three-deltas")

    # The connection drops; the tab reconnects and gets the snapshot: everything up to seq 5.
    first.close(code=1011, reason="gone")
    second = sockets.wait_for(2)
    snapshot = {"message_id": REPLY, "content": "ABCDE", "reasoning": "", "seq": 5}
    frame(second, "chat.state", chat={"id": setup.chat.pk}, messages_tail=[], generation=snapshot)
    body_is(page, "ABCDE")

    # Frames the snapshot already holds (seq 4 and 5, still in flight) are dropped; seq 6 is the next.
    delta(second, 4, "D")
    delta(second, 5, "E")
    delta(second, 6, "F")
    body_is(page, "ABCDEF")
    delta(second, 6, "F")  # a duplicate of the one just applied
    delta(second, 7, "G")
    body_is(page, "ABCDEFG")
    assert page.locator("#stop").is_visible()
    shot("resumed")
