"""A chat's next send opens its provider call beside its transaction, from the plan its last reply left
(``relaying.Plan``): the call is the one the send would have made anyway, a stale plan's call is
closed unread, and no plan outlives a change of what it was made of (a key edited, rotated or
deleted, a profile edited, a plugin switched off, a message edited). With several processes (Redis)
plans are kept but never used: a change made in another process would not reach them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from providers import services as provider_services
from providers.models import ApiKey
from providers.plugin_state import plugin_set_enabled
from qtap_site.budgets.models import Budget
from qtap_site.chat import delivery, relaying, runner
from qtap_site.chat.models import Message
from tests.chat.conftest import TERMINAL, deltas, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

NEW_SECRET = "sk-test-chat-rotated-9876543210"


@pytest.fixture
def early_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call opened early, and whether its send kept it."""
    opened: list[Any] = []
    real = runner._open_early

    def spy(request: Any) -> Any:
        early = real(request)
        if early is not None:
            opened.append(early)
        return early

    monkeypatch.setattr(runner, "_open_early", spy)
    return opened


async def turn(comm: Any, content: str) -> list[dict[str, Any]]:
    await send(comm, {"type": "message.send", "content": content})
    frames = await receive_until(comm, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished", frames[-1]
    return frames


def asked(request: Any) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in json.loads(request.body)["messages"]]


async def test_the_next_send_opens_the_same_call_early(chat, cookie, fake, early_calls) -> None:
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert early_calls == [] and chat.pk in relaying.plans  # the first send had no plan; its reply left one
    frames = await turn(comm, "second")
    await comm.disconnect()

    assert len(early_calls) == (1 if delivery.single_process() else 0)
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


async def test_a_stale_plan_is_closed_unread_and_the_send_makes_its_own_call(chat, cookie, fake, early_calls) -> None:
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    # Changed behind the plan's back (a queryset update sends no signal): the plan is now wrong.
    await database_sync_to_async(Message.objects.filter(chat=chat, role="assistant").update)(content="edited")
    fake.tokens = ["fresh"]
    frames = await turn(comm, "second")
    await comm.disconnect()

    assert len(early_calls) == (1 if delivery.single_process() else 0)
    assert [f["text"] for f in deltas(frames)] == ["fresh"] and [f["seq"] for f in deltas(frames)] == [1]
    kept = fake.chat_requests[-1]
    assert asked(kept)[-2:] == [("assistant", "edited"), ("user", "second")]
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(chat=chat).order_by("id")))()
    assert [(m.role, m.content, m.status) for m in rows][-1] == ("assistant", "fresh", "complete")


async def test_an_edit_never_opens_the_plans_call(chat, cookie, fake, early_calls) -> None:
    """The plan continues the visible branch; an edit asks for another one, so opening the plan's call
    would send the provider the very history the person is replacing."""
    fake.tokens = ["one ", "two"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert chat.pk in relaying.plans
    mine = await database_sync_to_async(lambda: Message.objects.get(chat=chat, role="user").pk)()
    fake.tokens = ["again"]
    await send(comm, {"type": "message.edit", "message_id": mine, "content": "changed"})
    frames = await receive_until(comm, *TERMINAL)
    await comm.disconnect()

    assert frames[-1]["type"] == "generation.finished", frames[-1]
    assert early_calls == []
    assert len(fake.chat_requests) == 2  # the first turn's and the edit's, nothing more
    assert asked(fake.chat_requests[-1]) == [("system", "Be brief."), ("user", "changed")]


async def test_switching_branches_forgets_the_plan(chat, cookie, fake, early_calls) -> None:
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
async def test_no_plan_outlives_a_change_of_key_or_plugin(chat, cookie, fake, api_key, change, early_calls) -> None:
    fake.tokens = ["ok"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    assert chat.pk in relaying.plans

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
    assert relaying.plans == {}
    if change == "edit":
        fake.api_key = NEW_SECRET
        await turn(comm, "second")
        assert early_calls == []
        assert fake.chat_requests[-1].headers["authorization"] == f"Bearer {NEW_SECRET}"  # never the old key
    await comm.disconnect()


async def test_a_budgeted_user_waits_for_the_check(chat, cookie, fake, user, early_calls) -> None:
    fake.tokens = ["ok"]
    comm, _ = await open_socket(chat.pk, cookie)
    await turn(comm, "first")
    await database_sync_to_async(Budget.objects.create)(user=user, period="month", max_tokens=1_000_000)
    await turn(comm, "second")
    await comm.disconnect()
    assert early_calls == []  # the guard's check comes before any request of a budgeted user
