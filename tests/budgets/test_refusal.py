"""Over budget, a send ends with ``generation.error`` ``budget_exceeded`` and words naming the limit and
when it resets, and nothing reaches the provider. Through the real websocket path (``sending`` calls
``budgets.guard`` inside the send's transaction)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from qtap_site.budgets import services
from qtap_site.chat import protocol
from qtap_site.chat.models import Message
from tests.budgets.conftest import reply
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


async def send_one(chat: Any, cookie: str, content: str = "Hello?") -> dict[str, Any]:
    comm, _ = await open_socket(chat.pk, cookie)
    try:
        await send(comm, {"type": "message.send", "content": content})
        frames = await receive_until(comm, *TERMINAL)
    finally:
        await comm.disconnect()
    return frames[-1]


def budget(user: Any = None, **limits: Any) -> None:
    services.budget_set(
        user=user,
        period=limits.pop("period", "day"),
        max_cost=services.parse_cost(limits.pop("max_cost", None)),
        max_tokens=limits.pop("max_tokens", None),
    )


async def test_at_the_daily_cost_limit_the_next_send_is_refused_before_any_upstream_request(
    chat: Any, cookie: str, fake: Any
) -> None:
    await database_sync_to_async(budget)(max_cost="1.00")
    await database_sync_to_async(reply)(chat, cost="1.02", input_tokens=10, output_tokens=5)
    end = await send_one(chat, cookie)
    assert end["type"] == "generation.error"
    assert end["code"] == "budget_exceeded"
    assert end["message"] == "Your daily cost budget of $1.00 is used up ($1.02 spent); it resets at 00:00 UTC."
    assert end["retryable"] is False
    assert fake.requests == []  # nothing was sent upstream
    row = await database_sync_to_async(Message.objects.get)(pk=end["message_id"])
    assert (row.status, row.error_code, row.error_message) == ("error", "budget_exceeded", end["message"])


async def test_exactly_at_the_limit_is_used_up_and_just_under_it_passes(chat: Any, cookie: str, fake: Any) -> None:
    await database_sync_to_async(budget)(max_cost="1.00")
    earlier = await database_sync_to_async(reply)(chat, cost="0.99")
    assert (await send_one(chat, cookie))["type"] == "generation.finished"
    assert len(fake.requests) == 1
    await database_sync_to_async(Message.objects.filter(pk=earlier.pk).update)(cost="1.00")
    end = await send_one(chat, cookie)
    # $1.00 and the priced reply just written: more digits show it is past the limit, not at it.
    assert end["code"] == "budget_exceeded"
    assert end["message"].startswith("Your daily cost budget of $1.00 is used up ($1.0000")
    assert len(fake.requests) == 1


async def test_a_users_own_budget_overrides_the_default_both_ways(chat: Any, cookie: str, fake: Any, user: Any) -> None:
    await database_sync_to_async(reply)(chat, cost="2.00")
    await database_sync_to_async(budget)(max_cost="1.00")  # the default: alice is over it
    await database_sync_to_async(budget)(user, max_cost="5.00")  # hers: she is not
    assert (await send_one(chat, cookie))["type"] == "generation.finished"
    await database_sync_to_async(budget)(user, max_cost="1.50")  # hers, stricter than a looser default
    await database_sync_to_async(budget)(max_cost="100")
    end = await send_one(chat, cookie)
    assert end["code"] == "budget_exceeded"
    assert end["message"].startswith("Your daily cost budget of $1.50 is used up ($2.00")
    await database_sync_to_async(budget)(user)  # neither limit: exempt from the default
    await database_sync_to_async(budget)(max_cost="1.00")
    assert (await send_one(chat, cookie))["type"] == "generation.finished"
    assert len(fake.requests) == 2


async def test_tokens_are_input_plus_output_and_a_cost_limit_ignores_them(
    chat: Any, cookie: str, fake: Any, user: Any
) -> None:
    await database_sync_to_async(reply)(chat, cost="0.01", input_tokens=70, output_tokens=50)
    await database_sync_to_async(budget)(user, max_cost="1.00")  # 120 tokens cost little: passes
    assert (await send_one(chat, cookie))["type"] == "generation.finished"
    await database_sync_to_async(budget)(user, max_tokens=100, period="month")
    await database_sync_to_async(services.budget_clear)(user=user, period="day")
    end = await send_one(chat, cookie)
    assert end["code"] == "budget_exceeded"
    # 120 earlier + the reply just written (11 prompt tokens, 4 completion tokens from the fake)
    assert end["message"].startswith("Your monthly token budget of 100 tokens is used up (135 tokens spent); it resets")
    assert len(fake.requests) == 1


async def test_two_sends_racing_in_two_chats_cannot_both_pass_the_last_tokens(
    chat: Any, cookie: str, fake: Any, user: Any, profile: Any
) -> None:
    from qtap_site.chat.services import chat_create

    other = await database_sync_to_async(chat_create)(user=user, profile=profile)
    await database_sync_to_async(reply)(chat, input_tokens=60, output_tokens=30)  # 90 of 100 spent
    await database_sync_to_async(budget)(user, max_tokens=100)
    fake.tokens = ["slow "] * 20
    first, _ = await open_socket(chat.pk, cookie)
    second, _ = await open_socket(other.pk, cookie)
    import asyncio

    await asyncio.gather(
        send(first, {"type": "message.send", "content": "one"}),
        send(second, {"type": "message.send", "content": "two"}),
    )
    ends = [(await receive_until(comm, *TERMINAL))[-1] for comm in (first, second)]
    await first.disconnect()
    await second.disconnect()
    assert sorted(end["type"] for end in ends) == ["generation.error", "generation.finished"]
    refused = next(end for end in ends if end["type"] == "generation.error")
    assert refused["code"] == "budget_exceeded"
    assert "daily token budget of 100 tokens" in refused["message"]
    assert len(fake.requests) == 1


def test_budget_exceeded_is_a_protocol_code_and_not_retryable() -> None:
    assert protocol.BUDGET_EXCEEDED == "budget_exceeded"
    assert protocol.is_retryable(protocol.BUDGET_EXCEEDED) is False
