"""The short way a planned send is written (``plans.prepare``; ``prepare_all`` for several), on whichever
database the run uses (the scaled run's PostgreSQL too, where plans are otherwise off): what it writes,
and what it answers when the chat's rows are no longer as its plan saw them (None: nothing written),
when a reply already runs in the chat (``busy``) or the user is at their limit (``rate_limited``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from qtap_site.chat import plans, protocol
from qtap_site.chat.models import Chat, Message
from qtap_site.chat.sending import SendRequest, chat_facts
from qtap_site.chat.services import chat_create

pytestmark = pytest.mark.django_db(transaction=True)


def planned(chat: Chat) -> plans.Plan:
    plan = plans.plan_of(user_id=chat.user_id, chat_id=chat.pk)
    assert plan is not None
    plans.plans[chat.pk] = plan
    return plan


def sent(chat: Chat, content: str = "hello there") -> Any:
    return plans.prepare(SendRequest(user_id=chat.user_id, chat_id=chat.pk, content=content, planned=True))


def rows(chat: Chat) -> list[tuple[Any, ...]]:
    return list(Message.objects.filter(chat=chat).order_by("id").values_list("role", "content", "status", "parent_id"))


def test_a_planned_send_writes_the_message_its_placeholder_and_the_chats_title(chat) -> None:
    planned(chat)
    prepared = sent(chat, "hello   there")
    assert prepared.error is None and prepared.renamed == {"id": chat.pk, "title": "hello there"}
    [(role, content, status, parent), placeholder] = rows(chat)
    assert (role, content, status, parent) == ("user", "hello   there", "complete", None)
    assert placeholder[0] == "assistant" and placeholder[2] == "streaming"
    assert [(m.role, m.content) for m in prepared.request.messages] == [
        ("system", "Be brief."),
        ("user", "hello   there"),
    ]
    again = Chat.objects.get(pk=chat.pk)
    assert (again.title, again.profile_id) == ("hello there", chat.profile_id)
    assert prepared.chat_facts == chat_facts(again)  # what the reply's own plan will check next


def test_rows_changed_behind_the_plan_answer_none_and_write_nothing(chat, user, profile) -> None:
    planned(chat)
    Message.objects.bulk_create([Message(chat=chat, role="user", content="from elsewhere")])  # no signal
    assert sent(chat) is None
    assert rows(chat) == [("user", "from elsewhere", "complete", None)]
    other = chat_create(user=user, profile=profile, system_prompt="Be brief.")
    planned(other)
    Chat.objects.filter(pk=other.pk).update(system_prompt="Be long.")  # no signal either
    assert sent(other) is None and rows(other) == []


def test_a_reply_running_in_the_chat_is_busy_and_a_user_at_the_limit_is_rate_limited(chat, user, profile, settings):
    first = Message.objects.create(chat=chat, role="user", content="q")
    Message.objects.create(chat=chat, parent=first, role="assistant", status="streaming", heartbeat_at=timezone.now())
    plan = plans.plan_of(user_id=chat.user_id, chat_id=chat.pk)
    assert plan is None  # a reply runs: no plan is made
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 1
    other = chat_create(user=user, profile=profile, system_prompt="Be brief.")
    planned(other)
    assert isinstance(sent(other), protocol.RateLimited) and rows(other) == []
    # The same chat, planned before its reply started elsewhere (another tab's send, say): busy.
    Message.objects.filter(chat=chat).delete()
    planned(chat)
    Message.objects.bulk_create([Message(chat=chat, role="assistant", status="streaming", heartbeat_at=timezone.now())])
    plans.plans[chat.pk] = dataclasses.replace(plans.plans[chat.pk], newest_id=_newest(chat))
    assert isinstance(sent(chat), protocol.Busy)


def _newest(chat: Chat) -> int:
    return int(Message.objects.filter(chat=chat).order_by("-id").values_list("id", flat=True)[0])


def test_plans_are_bounded_and_expired_ones_go_first(chat, monkeypatch) -> None:
    """Each plan holds its chat's branch: a process keeps at most ``MAX_PLANS``, dropping expired ones
    as soon as there are more than a few."""
    plan = planned(chat)
    plans.plans.clear()
    old = dataclasses.replace(plan, made_at=plan.made_at - plans.PLAN_SECONDS - 1)
    for chat_id in range(1, plans.SWEEP_AT + 1):
        plans.plans[10_000 + chat_id] = dataclasses.replace(old, chat_id=10_000 + chat_id)
    assert plans.store(plan, since=plans.changes)
    assert list(plans.plans) == [chat.pk]  # the expired ones went when the next was stored
    monkeypatch.setattr(plans, "MAX_PLANS", 5)
    for chat_id in range(1, 10):
        assert plans.store(dataclasses.replace(plan, chat_id=20_000 + chat_id), since=plans.changes)
    assert len(plans.plans) == 5 and 20_009 in plans.plans and chat.pk not in plans.plans  # the oldest went
    assert not plans.store(plan, since=plans.changes - 1)  # made before a change: refused


def test_planned_sends_together_are_written_in_one_go_each_checked_as_if_alone(chat, user, profile, settings) -> None:
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 2
    chats = [chat, *(chat_create(user=user, profile=profile, system_prompt="Be brief.") for _ in range(3))]
    for each in chats:
        planned(each)
    changed = chat_create(user=user, profile=profile, system_prompt="Be brief.")
    planned(changed)
    Chat.objects.filter(pk=changed.pk).update(system_prompt="Be long.")  # behind its plan's back
    sends = [SendRequest(user_id=user.pk, chat_id=c.pk, content=f"to {c.pk}", planned=True) for c in chats]
    again = dataclasses.replace(sends[0], content="twice")
    stale = SendRequest(user_id=user.pk, chat_id=changed.pk, content="stale", planned=True)
    outcomes = plans.prepare_all([sends[0], again, stale, *sends[1:]])

    first, twice, none, second, third, fourth = outcomes
    assert isinstance(twice, protocol.Busy)  # a second send to a chat of the same batch
    assert none is None and rows(changed) == []  # not as planned: left to the full way
    # The user may run two replies: the sends accepted before count, as if each were alone.
    assert isinstance(third, protocol.RateLimited) and isinstance(fourth, protocol.RateLimited)
    for prepared, each in ((first, chats[0]), (second, chats[1])):
        assert prepared.error is None and prepared.chat_id == each.pk
        [user_row, placeholder] = rows(each)
        assert user_row == ("user", f"to {each.pk}", "complete", None)
        assert placeholder[:3] == ("assistant", "", "streaming") and placeholder[3] == prepared.user_message["id"]
        assert prepared.request.messages[-1].content == f"to {each.pk}"
        assert Chat.objects.get(pk=each.pk).title == f"to {each.pk}"
    assert rows(chats[2]) == rows(chats[3]) == []


def test_a_batch_reads_every_chat_in_one_statement_whatever_its_size(user, profile, settings) -> None:
    """The chats of a batch are read back together: ten sends run as many statements as two, and each
    is still checked against its own chat (a first message and a second one alike)."""
    settings.QTAP_MAX_CONCURRENT_GENERATIONS = 50

    def batch(size: int) -> tuple[int, list[Any], list[Chat]]:
        chats = [chat_create(user=user, profile=profile, system_prompt="Be brief.") for _ in range(size)]
        for each in chats[::2]:  # every other chat already holds an exchange
            asked = Message.objects.create(chat=each, role="user", content="before")
            Message.objects.create(chat=each, parent=asked, role="assistant", content="answered")
        for each in chats:
            planned(each)
        sends = [SendRequest(user_id=user.pk, chat_id=c.pk, content=f"to {c.pk}", planned=True) for c in chats]
        with CaptureQueriesContext(connection) as queries:
            outcomes = plans.prepare_all(sends)
        return len(queries), outcomes, chats

    two, _, _ = batch(2)
    ten, outcomes, chats = batch(10)
    assert ten == two
    for prepared, each in zip(outcomes, chats, strict=True):
        assert prepared.error is None and prepared.chat_id == each.pk
        before = Message.objects.filter(chat=each, content="answered").values_list("pk", flat=True).first()
        assert prepared.user_message["parent_id"] == before  # None for a chat's first message
        assert [m.content for m in prepared.request.messages][-1] == f"to {each.pk}"


def test_a_chat_read_back_in_any_characters_still_matches_its_plan(user, profile) -> None:
    """The batch's read-back (one JSON row on SQLite) gives the text the plan read through the ORM:
    quotes, backslashes, newlines and characters outside the BMP in the title, the prompt and the reply."""
    text = 'He said "hi" \\ back\n\ttabbed é ✓ 😀 </script>'
    chat = chat_create(user=user, profile=profile, system_prompt=text)
    Chat.objects.filter(pk=chat.pk).update(title=text[:40])
    asked = Message.objects.create(chat=chat, role="user", content="before")
    Message.objects.create(chat=chat, parent=asked, role="assistant", content=text)
    planned(chat)
    prepared = sent(chat, "next")
    assert prepared is not None and prepared.error is None  # not None: the rows matched the plan
    assert prepared.renamed is None and Chat.objects.get(pk=chat.pk).title == text[:40]
    assert [m.content for m in prepared.request.messages] == [text, "before", text, "next"]
