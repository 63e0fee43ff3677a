"""Sends prepared in batches: each send gets its own answer, and a batch costs the same statements
whatever its size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers.services import connection_profile_create
from qtap_site.chat import batching, runner, saves, sending
from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def sends_to(chats: list[Any], user: Any, text: str = "hello") -> list[sending.SendRequest]:
    return [sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content=f"{text} {chat.pk}") for chat in chats]


def test_each_send_of_a_batch_is_answered_on_its_own(user: Any, other_user: Any, profile: Any, chat: Any) -> None:
    second = chat_create(user=user, profile=profile)
    theirs = chat_create(user=other_user)
    their_file = attachment_create(owner=other_user, filename="theirs.png", data=png_bytes())
    my_file = attachment_create(owner=user, filename="mine.png", data=png_bytes(colour="blue"))
    batch = [
        sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content="first", client_msg_id="c1"),
        sending.SendRequest(user_id=user.pk, chat_id=theirs.pk, content="not my chat"),
        sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content="same chat again"),
        sending.SendRequest(user_id=user.pk, chat_id=second.pk, content="x", attachment_ids=(their_file.pk,)),
        sending.SendRequest(user_id=user.pk, chat_id=second.pk, content="   "),
        sending.SendRequest(user_id=user.pk, chat_id=second.pk, content="with a file", attachment_ids=(my_file.pk,)),
    ]

    outcomes = sending.prepare_sends(batch)

    assert [type(o).__name__ for o in outcomes] == [
        "Prepared",
        "NotFound",
        "Busy",
        "NotFound",
        "ChatServiceError",
        "Prepared",
    ]
    first, mine = outcomes[0], outcomes[5]
    assert isinstance(first, sending.Prepared) and isinstance(mine, sending.Prepared)
    assert first.user_message is not None and first.user_message["client_msg_id"] == "c1"
    assert first.error is None and first.api_key is not None and first.request is not None
    assert [(m.role, m.content) for m in first.request.messages] == [("system", "Be brief."), ("user", "first")]
    assert mine.user_message is not None and [a["id"] for a in mine.user_message["attachments"]] == [my_file.pk]
    # Only the accepted sends wrote anything, each a user message and a streaming placeholder.
    rows = list(Message.objects.order_by("id").values_list("chat_id", "role", "status", "content"))
    assert rows == [
        (chat.pk, "user", "complete", "first"),
        (second.pk, "user", "complete", "with a file"),
        (chat.pk, "assistant", "streaming", ""),
        (second.pk, "assistant", "streaming", ""),
    ]
    assert list(Message.objects.get(pk=mine.user_message["id"]).attachments.all()) == [my_file]
    chat.refresh_from_db()
    assert chat.title == "first"


def test_the_history_goes_with_each_send(user: Any, chat: Any) -> None:
    first = sending.prepare_sends(sends_to([chat], user, "one"))[0]
    assert isinstance(first, sending.Prepared)
    saves.finish_message(message_id=first.assistant_id, status="complete", content="answer", reasoning="", seq=1)

    again = sending.prepare_sends(sends_to([chat], user, "two"))[0]

    assert isinstance(again, sending.Prepared) and again.request is not None
    assert [(m.role, m.content) for m in again.request.messages] == [
        ("system", "Be brief."),
        ("user", f"one {chat.pk}"),
        ("assistant", "answer"),
        ("user", f"two {chat.pk}"),
    ]
    parent = Message.objects.get(pk=again.user_message["id"] if again.user_message else 0).parent_id
    assert parent == first.assistant_id


def test_the_generation_limit_counts_the_sends_of_the_batch(user: Any, profile: Any, settings: Any) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 2
    chats = [chat_create(user=user, profile=profile) for _ in range(3)]

    outcomes = sending.prepare_sends(sends_to(chats, user))

    assert [type(o).__name__ for o in outcomes] == ["Prepared", "Prepared", "RateLimited"]


def test_a_batch_costs_the_same_statements_whatever_its_size(user: Any, profile: Any, settings: Any) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 50
    chats = [chat_create(user=user, profile=profile) for _ in range(21)]
    with CaptureQueriesContext(connection) as one:
        sending.prepare_sends(sends_to(chats[:1], user))
    with CaptureQueriesContext(connection) as twenty:
        outcomes = sending.prepare_sends(sends_to(chats[1:], user))
    assert all(isinstance(o, sending.Prepared) and o.error is None for o in outcomes)
    # SQLite reads each insert's new keys back in two more statements, instead of a row per key.
    most = 12 + (4 if connection.vendor == "sqlite" else 0)
    assert len(twenty.captured_queries) == len(one.captured_queries) <= most


async def test_a_send_whose_tab_went_away_still_starts(user: Any, chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    async def start_generation(prepared: sending.Prepared, *, received_at: float, **_: Any) -> None:
        started.append(prepared.assistant_id)

    slow = sending.prepare_sends

    def prepare_slowly(sends: list[sending.SendRequest]) -> list[sending.Outcome]:
        import time

        time.sleep(0.2)
        return slow(sends)

    monkeypatch.setattr(sending, "prepare_sends", prepare_slowly)
    monkeypatch.setattr(runner, "start_generation", start_generation)
    queue = batching.SendQueue.for_loop()
    waiter = asyncio.ensure_future(runner.send(sends_to([chat], user)[0], received_at=0.0))
    await asyncio.sleep(0.05)
    waiter.cancel()  # the socket closed while its send was in the database thread
    assert queue.worker is not None
    await queue.worker
    assert len(started) == 1
    assert await Message.objects.filter(pk=started[0], status="streaming").aexists()


def test_a_regeneration_shares_a_batch_with_sends(user: Any, profile: Any, chat: Any) -> None:
    first = sending.prepare_sends(sends_to([chat], user, "question"))[0]
    assert isinstance(first, sending.Prepared)
    saves.finish_message(message_id=first.assistant_id, status="complete", content="answer", reasoning="", seq=1)
    other = chat_create(user=user, profile=profile)
    again = sending.SendRequest(user_id=user.pk, chat_id=chat.pk, regenerate_id=first.assistant_id)
    missing = sending.SendRequest(user_id=user.pk, chat_id=other.pk, regenerate_id=first.assistant_id)

    regenerated, sent, refused = sending.prepare_sends([again, *sends_to([other], user, "elsewhere"), missing])

    assert isinstance(regenerated, sending.Prepared) and regenerated.user_message is None
    assert isinstance(sent, sending.Prepared) and sent.user_message is not None
    assert type(refused).__name__ == "NotFound"
    sibling = Message.objects.get(pk=regenerated.assistant_id)
    assert (sibling.parent_id, sibling.status) == (first.user_message["id"] if first.user_message else 0, "streaming")
    assert regenerated.request is not None
    assert [(m.role, m.content) for m in regenerated.request.messages] == [
        ("system", "Be brief."),
        ("user", f"question {chat.pk}"),
    ]


def test_a_batch_costs_the_same_statements_with_one_profile_or_twenty(user: Any, profile: Any, settings: Any) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 50
    chats = [chat_create(user=user, profile=profile) for _ in range(6)]
    with CaptureQueriesContext(connection) as one:
        sending.prepare_sends(sends_to(chats[:3], user))
    for n in range(19):
        connection_profile_create(user=user, name=f"Other {n}", plugin="qtap-plugin-ollama", model="m")
    with CaptureQueriesContext(connection) as twenty:
        outcomes = sending.prepare_sends(sends_to(chats[3:], user))
    assert all(isinstance(o, sending.Prepared) and o.error is None for o in outcomes)
    assert len(twenty.captured_queries) == len(one.captured_queries)
