"""One send that breaks inside a shared batch fails alone: the other sends of the batch, another user's
among them, are saved and get their replies.

The frame parser refuses such values before they reach a batch (tests/security/test_bad_frame_values.py);
these tests go around it, straight to the send queue, as a value the parser did not foresee would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async

from providers.services import api_key_create, connection_profile_create
from qtap_site.chat import protocol, runner, sending
from qtap_site.chat.batching import SendQueue
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import MODEL, PLUGIN_NAME, TERMINAL, open_socket, receive_until, session_cookie
from tests.chat.fake_openai import VALID_KEY
from tests.support.data import CHAT_COMPLETIONS

pytestmark = pytest.mark.django_db(transaction=True)

POISONS = {
    # SQLite: UnicodeEncodeError when the row is written; PostgreSQL refuses it too.
    "lone-surrogate-text": {"content": "hello \ud800"},
    # OverflowError binding the id: no 64-bit column holds it.
    "attachment-id-2**64": {"content": "hello", "attachment_ids": (2**64,)},
    "profile-id-2**63": {"content": "hello", "profile_id": 2**63},
}


def their_chats(other_user: Any, base_url: str, count: int) -> list[Any]:
    key = api_key_create(user=other_user, plugin=PLUGIN_NAME, label="theirs", secret=VALID_KEY)
    profile = connection_profile_create(
        user=other_user,
        name="Theirs",
        plugin=PLUGIN_NAME,
        model=MODEL,
        api_key=key,
        base_url=base_url,
        parameters=CHAT_COMPLETIONS,
    )
    return [chat_create(user=other_user, profile=profile) for _ in range(count)]


@pytest.mark.parametrize("poison", list(POISONS), ids=list(POISONS))
async def test_a_poisoned_send_fails_alone_and_the_others_of_its_batch_get_replies(
    poison: str, user: Any, other_user: Any, chat: Any, fake: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 4
    chats = await database_sync_to_async(their_chats)(other_user, fake.base_url, 4)
    cookie = await database_sync_to_async(session_cookie)(other_user)
    tabs = [(await open_socket(c.pk, cookie))[0] for c in chats]

    batches: list[int] = []  # the size of each batch the queue prepared
    prepare_sends = sending.prepare_sends

    def recorded(sends: list[sending.SendRequest]) -> Any:
        batches.append(len(sends))
        return prepare_sends(sends)

    monkeypatch.setattr(sending, "prepare_sends", recorded)
    poisoned = sending.SendRequest(user_id=user.pk, chat_id=chat.pk, **POISONS[poison])  # type: ignore[arg-type]
    good = [sending.SendRequest(user_id=other_user.pk, chat_id=c.pk, content=f"question {c.pk}") for c in chats]
    queue = SendQueue.for_loop()
    received_at = time.monotonic()
    # Submitted in one step of the event loop: the queue prepares all five in one batch.
    outcomes = await asyncio.gather(
        *(queue.prepare(send) for send in [good[0], good[1], poisoned, good[2], good[3]]),
        return_exceptions=True,
    )

    assert batches[0] == 5, f"the five sends did not share one batch: {batches}"
    bad = outcomes.pop(2)
    # SQLite cannot bind the value and the batch raises (then the send is retried alone and fails alone);
    # PostgreSQL binds it and finds no such row: either way the failure is this send's own.
    assert isinstance(bad, Exception), bad
    assert not isinstance(bad, protocol.ChatServiceError) or isinstance(bad, protocol.NotFound), bad
    assert all(isinstance(o, sending.Prepared) and o.error is None for o in outcomes), outcomes
    for prepared in outcomes:
        assert isinstance(prepared, sending.Prepared)
        await runner.start_generation(prepared, received_at=received_at)
    for tab, their_chat in zip(tabs, chats, strict=True):
        frames = await receive_until(tab, *TERMINAL, timeout=20)
        created = [f["message"] for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user"]
        assert [m["content"] for m in created] == [f"question {their_chat.pk}"]
        assert frames[-1]["type"] == "generation.finished", frames[-1]
        assert "".join(f["text"] for f in frames if f["type"] == "generation.delta")
    # The poisoned send wrote nothing, and the four replies are saved complete.
    assert await Message.objects.filter(chat=chat).acount() == 0
    for their_chat in chats:
        rows = [m async for m in Message.objects.filter(chat=their_chat).order_by("id")]
        assert [(m.role, m.status) for m in rows] == [("user", "complete"), ("assistant", "complete")]
    for tab in tabs:
        await tab.disconnect()


def test_prepare_each_answers_a_broken_send_with_its_own_exception(user: Any, other_user: Any, chat: Any) -> None:
    """The same, one level down: one outcome per send, in order, the broken one its exception, and
    the refusals of the batch (someone else's chat) as they were."""
    theirs = their_chats(other_user, "http://127.0.0.1:9/v1", 2)
    batch = [
        sending.SendRequest(user_id=other_user.pk, chat_id=theirs[0].pk, content="first"),
        sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content="bad \udfff"),
        sending.SendRequest(user_id=user.pk, chat_id=theirs[1].pk, content="not my chat"),
        sending.SendRequest(user_id=other_user.pk, chat_id=theirs[1].pk, content="second"),
    ]

    outcomes = sending.prepare_each(batch)

    assert [type(o).__name__ for o in outcomes] == ["Prepared", "UnicodeEncodeError", "NotFound", "Prepared"]
    assert list(Message.objects.filter(role="user").order_by("id").values_list("content", flat=True)) == [
        "first",
        "second",
    ]


def test_a_send_that_breaks_after_its_rows_are_saved_ends_its_own_reply_and_is_not_saved_twice(
    user: Any, other_user: Any, chat: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    theirs = their_chats(other_user, "http://127.0.0.1:9/v1", 1)[0]
    resolve_provider = sending.resolve_provider

    def breaks_for_my_chat(prepared: sending.Prepared, *args: Any, **kwargs: Any) -> Any:
        if prepared.chat_id == chat.pk:
            raise RuntimeError("building this request failed")
        return resolve_provider(prepared, *args, **kwargs)

    monkeypatch.setattr(sending, "resolve_provider", breaks_for_my_chat)
    outcomes = sending.prepare_each(
        [
            sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content="mine"),
            sending.SendRequest(user_id=other_user.pk, chat_id=theirs.pk, content="theirs"),
        ]
    )

    mine, other = outcomes
    assert isinstance(mine, sending.Prepared) and mine.error is not None and mine.error[0] == "internal"
    assert isinstance(other, sending.Prepared) and other.error is None
    # One user message and one placeholder per send: the failure came after the commit, nothing was retried.
    for each in (chat, theirs):
        assert list(Message.objects.filter(chat=each).values_list("role", flat=True).order_by("id")) == [
            "user",
            "assistant",
        ]
    assert "building this request failed" in caplog.text
