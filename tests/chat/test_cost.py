"""A provider that reports the request's cost (OpenRouter's ``usage.cost``): that figure is what the reply
frame says and what the message stores, not the genai-prices estimate for the same tokens."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from providers.contract import Usage
from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Message
from qtap_site.chat.pricing import message_cost
from qtap_site.chat.services import chat_create
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send
from tests.chat.fake_openai import VALID_KEY, ChatFake

pytestmark = pytest.mark.django_db(transaction=True)

PLUGIN = "qtap-plugin-openrouter"
MODEL = "openai/gpt-4o-mini"  # a model genai-prices knows, so an estimate exists to be confused with
TOKENS = ["Paid ", "for ", "by ", "the ", "token."]


@pytest.fixture
def openrouter() -> Iterator[ChatFake]:
    with ChatFake(TOKENS, flavour="openrouter") as server:
        yield server


@pytest.fixture
def openrouter_chat(user: Any, openrouter: ChatFake) -> Any:
    key = api_key_create(user=user, plugin=PLUGIN, label="router", secret=VALID_KEY)
    profile = connection_profile_create(
        user=user, name="Router", plugin=PLUGIN, model=MODEL, api_key=key, base_url=openrouter.base_url
    )
    return chat_create(user=user, profile=profile)


def estimate(input_tokens: int, output_tokens: int) -> Decimal | None:
    """What the message would store if the reported cost were ignored."""
    return message_cost(
        Usage(input_tokens=input_tokens, output_tokens=output_tokens), provider_name="OPENROUTER", model=MODEL
    )


async def reply(chat: Any, cookie: str) -> tuple[dict[str, Any], Message]:
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "What does this cost?"})
    frames = await receive_until(comm, *TERMINAL)
    await comm.disconnect()
    finished = frames[-1]
    assert finished["type"] == "generation.finished", finished
    return finished, await Message.objects.aget(pk=finished["message_id"])


@pytest.mark.parametrize("reported", [0.0042137, 0.0], ids=["paid", "free model"])
async def test_the_reported_cost_is_the_stored_cost(
    openrouter_chat: Any, cookie: str, openrouter: ChatFake, reported: float
) -> None:
    openrouter.cost = reported
    openrouter.usage = (120, 5)
    # The control: genai-prices prices these tokens, and not at the reported figure.
    priced = estimate(120, 5)
    assert priced is not None and priced > 0 and priced != Decimal(str(reported))

    finished, message = await reply(openrouter_chat, cookie)
    assert openrouter.chat_requests, "the reply came from the OpenRouter fake"
    assert finished["usage"] == {"input_tokens": 120, "output_tokens": 5}
    assert finished["cost"] == reported
    assert message.content == "".join(TOKENS)
    assert message.cost is not None and message.cost == Decimal(str(reported))


# ---- cached tokens: what the provider bills -------------------------------------------------------


from genai_prices import Usage as PriceUsage  # noqa: E402
from genai_prices import calc_price  # noqa: E402

# The usage of anthropic_stream_thinking_tool_use_turn2.sse's kind of turn: most of the input read from the cache.
CACHED_TURN = Usage(input_tokens=3_000, output_tokens=120, cached_input_tokens=2_800, cache_write_tokens=100)


def test_a_cached_turn_costs_what_the_provider_bills() -> None:
    cost = message_cost(CACHED_TURN, provider_name="ANTHROPIC", model="claude-sonnet-4-5")
    uncached = message_cost(
        Usage(input_tokens=3_000, output_tokens=120), provider_name="ANTHROPIC", model="claude-sonnet-4-5"
    )
    billed = calc_price(
        PriceUsage(input_tokens=3_000, output_tokens=120, cache_read_tokens=2_800, cache_write_tokens=100),
        "claude-sonnet-4-5",
        provider_id="anthropic",
    ).total_price
    assert cost == Decimal(str(billed))
    assert cost is not None and uncached is not None and cost < uncached  # reading the cache is cheaper


def test_a_reported_cost_wins_over_the_cache_arithmetic() -> None:
    reported = Usage(input_tokens=3_000, output_tokens=120, cached_input_tokens=2_800, cost=0.0042)
    assert message_cost(reported, provider_name="OPENROUTER", model="anthropic/claude-sonnet-4.5") == Decimal("0.0042")
