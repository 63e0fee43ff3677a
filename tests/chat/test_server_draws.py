"""The server draws a message, once, the same way for every reader: ``message.created`` and the end of a
reply carry the drawing (``message_html``) the page itself shows for that message, and whether a failed
reply offers "Retry" comes from its error's class, live and from history alike."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from providers import errors
from qtap_site.chat import protocol
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def chat_page(user: Any, chat_id: int) -> str:
    client = Client()
    client.force_login(user)
    return client.get(f"/chats/{chat_id}/").content.decode()


async def test_a_reply_is_drawn_live_as_the_page_draws_it(chat: Any, cookie: str, fake: Any, user: Any) -> None:
    fake.tokens = ["Some ", "**bold** ", "text"]
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Draw <this>"})
    frames = await receive_until(comm, *TERMINAL)
    await comm.disconnect()

    question, placeholder = (f["message"] for f in frames if f["type"] == "message.created")
    assert f'id="msg-{question["id"]}"' in question["message_html"]
    assert "Draw &lt;this&gt;" in question["message_html"]
    assert "status-streaming" in placeholder["message_html"] and "Writing…" in placeholder["message_html"]
    finished = frames[-1]
    assert finished["type"] == "generation.finished"
    assert "<strong>bold</strong>" in finished["html"]  # the text alone, as before
    page = await database_sync_to_async(chat_page)(user, chat.pk)
    # The page draws both messages exactly as the frames did.
    assert question["message_html"].strip() in page
    assert finished["message_html"].strip() in page
    assert "status-complete" in finished["message_html"] and "<strong>bold</strong>" in finished["message_html"]


async def test_a_failed_reply_is_drawn_with_its_retry_live_and_on_the_page(
    chat: Any, cookie: str, fake: Any, user: Any
) -> None:
    fake.fail_next(
        429,
        {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
        headers={"retry-after-ms": "10"},
        times=3,
    )
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "Too fast?"})
    frames = await receive_until(comm, *TERMINAL, timeout=30)
    await comm.disconnect()

    failed = frames[-1]
    assert failed["type"] == "generation.error" and failed["code"] == "rate_limited" and failed["retryable"] is True
    assert f'data-message-id="{failed["message_id"]}">Retry</button>' in failed["message_html"]
    page = await database_sync_to_async(chat_page)(user, chat.pk)
    assert failed["message_html"].strip() in page


def test_retryable_is_the_error_classes_word() -> None:
    def family(root: type) -> list[type]:
        return [root, *(cls for sub in root.__subclasses__() for cls in family(sub))]

    for cls in family(errors.ProviderError):
        assert protocol.is_retryable(cls.code) is cls.default_retryable, cls
    for cls in family(protocol.ChatServiceError):
        if cls is not protocol.FrameError:
            assert protocol.is_retryable(cls.code) is cls.retryable, cls
    assert protocol.is_retryable("protocol") is False  # ProtocolError's word, whatever the page said before
    assert protocol.is_retryable("no_profile") is False  # not an error of any class: a setting to fix
