"""A chat's next send opens its provider call the moment it is read, from the chat's plan
(``plans.Plan``: left by its last reply, or read when a tab opens the chat), and is written the short
way (``plans.prepare``): the call is the one the send would have made anyway, the rows are the ones
the full way writes, a stale plan's call is closed unread, and no plan outlives a change of what it
was made of (a key edited, rotated or deleted, a profile edited, a plugin switched off, a message
edited), even one made while the plan was being made. With several processes (Redis) plans are kept
but never used: a change made in another process would not reach them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from providers import services as provider_services
from providers.models import ApiKey
from providers.plugin_state import plugin_set_enabled
from qtap_site.budgets.models import Budget
from qtap_site.chat import delivery, plans, runner
from qtap_site.chat.models import Message
from tests.chat.conftest import TERMINAL, deltas, open_socket, receive_until, send
from tests.chat.fake_openai import VALID_KEY

pytestmark = pytest.mark.django_db(transaction=True)

NEW_SECRET = "sk-test-chat-rotated-9876543210"


@pytest.fixture
def early_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call opened early, and whether its send kept it."""
    opened: list[Any] = []
    real = runner.open_early

    def spy(request: Any) -> Any:
        early = real(request)
        if early is not None:
            opened.append(early)
        return early

    monkeypatch.setattr(runner, "open_early", spy)
    return opened


@pytest.fixture
def short_writes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each planned send's short transaction answered (None: the rows were not as planned)."""
    answers: list[Any] = []
    real = plans.prepare_all

    def spy(requests: Any) -> Any:
        answers.extend(found := real(requests))
        return found

    monkeypatch.setattr(plans, "prepare_all", spy)
    return answers


@pytest.fixture
def no_plan_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tabs make no plan when they open a chat: only replies leave plans."""

    async def never(**_: Any) -> None:
        return None

    monkeypatch.setattr(runner, "plan_ahead", never)


async def planned(chat_id: int) -> bool:
    """Whether the chat has a plan, once the tab that just opened it has made one (or given up)."""
    for _ in range(200):
        if chat_id in plans.plans:
            return True
        await asyncio.sleep(0.01)
    return False


async def turn(comm: Any, content: str) -> list[dict[str, Any]]:
    await send(comm, {"type": "message.send", "content": content})
    frames = await receive_until(comm, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished", frames[-1]
    return frames


def asked(request: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in json.loads(request.body)["messages"]]


async def test_the_next_send_opens_the_same_call_early(
    chat, cookie, fake, early_calls, short_writes, no_plan_ahead
) -> None:
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert early_calls == [] and chat.pk in plans.plans  # the first send had no plan; its reply left one
    frames = await turn(comm, "second")
    await comm.disconnect()

    assert len(early_calls) == (1 if delivery.single_process() else 0)
    if delivery.single_process():  # written the short way, as the plan saw the rows
        [answer] = short_writes
        assert answer is not None and answer.request == early_calls[0].request
    assert "".join(f["text"] for f in deltas(frames)) == "one two"
    [types] = [[f["type"] for f in frames[:3]]]
    assert types == ["message.created", "message.created", "generation.started"]  # announced before any delta
    first, second = fake.chat_requests
    assert asked(second) == [
        ("system", "Be brief."),
        ("user", "first"),
        ("assistant", "one two"),
        ("user", "second"),
    ]
    assert json.loads(second.body) | {"messages": None} == json.loads(first.body) | {"messages": None}


async def test_a_stale_plan_is_closed_unread_and_the_send_makes_its_own_call(
    chat, cookie, fake, early_calls, short_writes, no_plan_ahead
) -> None:
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    # Changed behind the plan's back (a queryset update sends no signal): the plan is now wrong.
    await database_sync_to_async(Message.objects.filter(chat=chat, role="assistant").update)(content="edited")
    fake.tokens = ["fresh"]
    frames = await turn(comm, "second")
    await comm.disconnect()

    assert len(early_calls) == (1 if delivery.single_process() else 0)
    assert short_writes == ([None] if delivery.single_process() else [])  # the rows were not as planned
    assert [f["text"] for f in deltas(frames)] == ["fresh"] and [f["seq"] for f in deltas(frames)] == [1]
    kept = fake.chat_requests[-1]
    assert asked(kept)[-2:] == [("assistant", "edited"), ("user", "second")]
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(chat=chat).order_by("id")))()
    assert [(m.role, m.content, m.status) for m in rows][-1] == ("assistant", "fresh", "complete")


async def test_an_edit_never_opens_the_plans_call(chat, cookie, fake, early_calls, no_plan_ahead) -> None:
    """The plan continues the visible branch; an edit asks for another one, so opening the plan's call
    would send the provider the very history the person is replacing."""
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert chat.pk in plans.plans
    mine = await database_sync_to_async(lambda: Message.objects.get(chat=chat, role="user").pk)()
    fake.tokens = ["again"]
    await send(comm, {"type": "message.edit", "message_id": mine, "content": "changed"})
    frames = await receive_until(comm, *TERMINAL)
    await comm.disconnect()

    assert frames[-1]["type"] == "generation.finished", frames[-1]
    assert early_calls == []
    assert len(fake.chat_requests) == 2  # the first turn's and the edit's, nothing more
    assert asked(fake.chat_requests[-1]) == [("system", "Be brief."), ("user", "changed")]


async def test_switching_branches_forgets_the_plan(chat, cookie, fake, early_calls, no_plan_ahead) -> None:
    """Back on the first branch, the next send continues it: the branch switched away from (the plan's)
    never reaches the provider again."""
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    mine = await database_sync_to_async(lambda: Message.objects.get(chat=chat, role="user").pk)()
    fake.tokens = ["again"]
    await send(comm, {"type": "message.edit", "message_id": mine, "content": "changed"})
    assert (await receive_until(comm, *TERMINAL))[-1]["type"] == "generation.finished"
    await send(comm, {"type": "branch.select", "message_id": mine})
    await receive_until(comm, "chat.branch")
    asked_before = len(fake.chat_requests)
    fake.tokens = ["three"]
    await turn(comm, "second")
    await comm.disconnect()

    assert early_calls == []
    [request] = fake.chat_requests[asked_before:]
    assert asked(request) == [("system", "Be brief."), ("user", "first"), ("assistant", "one two"), ("user", "second")]


@pytest.mark.parametrize("change", ["edit", "rotate", "disable", "delete"])
async def test_no_plan_outlives_a_change_of_key_or_plugin(
    chat, cookie, fake, api_key, change, early_calls, no_plan_ahead
) -> None:
    fake.tokens = ["ok"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert chat.pk in plans.plans

    def make_change() -> None:
        key = ApiKey.objects.get(pk=api_key.pk)
        if change == "edit":
            provider_services.api_key_update(api_key=key, secret=NEW_SECRET)
        elif change == "rotate":
            provider_services.api_keys_rotate()
        elif change == "disable":
            plugin_set_enabled(name="qtap-plugin-openai", enabled=False)
        else:
            provider_services.api_key_delete(api_key=key)

    await database_sync_to_async(make_change)()
    assert plans.plans == {}
    if change == "edit":
        fake.api_key = NEW_SECRET
        await turn(comm, "second")
        assert early_calls == []
        assert fake.chat_requests[-1].headers["authorization"] == f"Bearer {NEW_SECRET}"  # never the old key
    await comm.disconnect()


async def test_a_budgeted_user_waits_for_the_check(chat, cookie, fake, user, early_calls, no_plan_ahead) -> None:
    fake.tokens = ["ok"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    await database_sync_to_async(Budget.objects.create)(user=user, period="month", max_tokens=1_000_000)
    await turn(comm, "second")
    await comm.disconnect()
    assert early_calls == []  # the guard's check comes before any request of a budgeted user


# ---- plans made when a tab opens a chat, and the short way a planned send is written ---------------


async def test_a_tab_opening_a_new_chat_plans_its_first_send(chat, cookie, fake, early_calls, short_writes) -> None:
    fake.tokens = ["hi ", "there"]
    comm, _ = await open_socket(chat.pk, cookie)
    if not delivery.single_process():
        assert not await planned(chat.pk)  # never made: another process's changes would not reach it
        await comm.disconnect()
        return
    assert await planned(chat.pk)
    frames = await turn(comm, "hello   world")
    await comm.disconnect()

    assert len(early_calls) == 1 and short_writes[0] is not None  # opened early, written the short way
    [request] = fake.chat_requests  # the early call was the one kept: no second request
    assert asked(request) == [("system", "Be brief."), ("user", "hello   world")]
    assert "".join(f["text"] for f in deltas(frames)) == "hi there"
    assert [f["chat"]["title"] for f in frames if f["type"] == "chat.updated"] == ["hello world"]
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(chat=chat).order_by("id")))()
    assert [(m.role, m.content, m.status, m.parent_id) for m in rows] == [
        ("user", "hello   world", "complete", None),
        ("assistant", "hi there", "complete", rows[0].pk),
    ]


def _shape(rows: list[Message]) -> list[tuple[Any, ...]]:
    index = {m.pk: i for i, m in enumerate(rows)}
    return [
        (
            m.role,
            m.content,
            m.status,
            m.plugin,
            m.model,
            m.client_msg_id,
            index.get(m.parent_id),
            m.heartbeat_at is None,
        )
        for m in rows
    ]


async def test_the_short_way_writes_what_the_full_way_writes(
    user, profile, cookie, fake, early_calls, short_writes, monkeypatch
) -> None:
    """The same two turns in two chats, one written the short way and one the full way: the same rows,
    the same chat row, the same frames and the same provider requests."""
    from qtap_site.chat.models import Chat
    from qtap_site.chat.services import chat_create

    fake.tokens = ["one ", "two"]
    results = []
    for way in ("short", "full"):
        chat = await database_sync_to_async(chat_create)(user=user, profile=profile, system_prompt="Be brief.")
        if way == "full":
            monkeypatch.setattr(plans, "fresh", lambda *_: None)
        before = len(fake.chat_requests)
        comm, _ = await open_socket(chat.pk, cookie)
        assert await planned(chat.pk) == delivery.single_process()
        frames = [*await turn(comm, "first"), *await turn(comm, "second")]
        await comm.disconnect()
        rows = await database_sync_to_async(lambda c=chat: list(Message.objects.filter(chat=c).order_by("id")))()
        row = await database_sync_to_async(Chat.objects.get)(pk=chat.pk)
        created = [
            {
                k: v
                for k, v in f["message"].items()
                if k not in ("id", "parent_id", "created_at", "updated_at", "message_html")
            }
            for f in frames
            if f["type"] == "message.created"
        ]
        requests = [json.loads(r.body) for r in fake.chat_requests[before:]]
        results.append((_shape(rows), (row.title, row.profile_id), created, [f["type"] for f in frames], requests))
    if delivery.single_process():  # both sends of the first chat went the short way
        assert len(short_writes) == 2 and None not in short_writes
    assert results[0] == results[1]


async def test_a_message_added_behind_the_plans_back_sends_the_full_way(
    chat, cookie, fake, early_calls, short_writes, no_plan_ahead
) -> None:
    """A row written without a signal (another process's regeneration, say): the short transaction sees
    the chat's newest message is not the plan's and writes nothing; the full way continues the branch
    that now shows."""
    fake.tokens = ["one"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")

    def regenerate_behind() -> None:
        mine = Message.objects.get(chat=chat, role="user")
        Message.objects.bulk_create([Message(chat=chat, parent=mine, role="assistant", content="other")])

    await database_sync_to_async(regenerate_behind)()
    fake.tokens = ["two"]
    await turn(comm, "second")
    await comm.disconnect()

    if delivery.single_process():
        assert len(early_calls) == 1 and short_writes == [None]
    assert asked(fake.chat_requests[-1])[-2:] == [("assistant", "other"), ("user", "second")]
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(chat=chat).order_by("id")))()
    assert [(m.role, m.content) for m in rows] == [
        ("user", "first"),
        ("assistant", "one"),
        ("assistant", "other"),
        ("user", "second"),
        ("assistant", "two"),
    ]
    assert rows[3].parent_id == rows[2].pk


async def test_a_key_changed_while_a_reply_streams_leaves_no_plan(
    chat, cookie, fake, api_key, early_calls, monkeypatch, no_plan_ahead
) -> None:
    """The reply's send read the old key; a change made before the reply ends forgets plans, and the
    plan this reply would leave is refused too: the next call never carries the old key."""
    from qtap_site.chat.batching import FinalSaves

    real_save = FinalSaves.save
    changed: list[bool] = []

    async def save_after_a_change(self: Any, **fields: Any) -> str:
        if not changed:
            changed.append(True)
            key = await database_sync_to_async(ApiKey.objects.get)(pk=api_key.pk)
            await database_sync_to_async(provider_services.api_key_update)(api_key=key, secret=NEW_SECRET)
            fake.api_key = NEW_SECRET
        return await real_save(self, **fields)

    monkeypatch.setattr(FinalSaves, "save", save_after_a_change)
    fake.tokens = ["ok"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert changed and chat.pk not in plans.plans
    await turn(comm, "second")
    await comm.disconnect()

    assert early_calls == []
    assert [r.headers["authorization"] for r in fake.chat_requests] == [f"Bearer {VALID_KEY}", f"Bearer {NEW_SECRET}"]
