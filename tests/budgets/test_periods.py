"""Spend per UTC day and month, what a reply in flight reserves, and the words of a refusal: the guard's
pieces called with a chosen ``now`` on the real database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from qtap_site.budgets import guard, periods
from qtap_site.budgets.guard import Limit, Spend
from qtap_site.chat.services import chat_create
from tests.budgets.conftest import reply

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def test_periods_are_utc_calendar_days_and_months() -> None:
    assert periods.start("day", NOW) == datetime(2026, 3, 15, tzinfo=UTC)
    assert periods.start("month", NOW) == datetime(2026, 3, 1, tzinfo=UTC)
    assert periods.end("day", NOW) == datetime(2026, 3, 16, tzinfo=UTC)
    assert periods.end("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert periods.resets("day", NOW) == "00:00 UTC"
    assert periods.resets("month", NOW) == "00:00 UTC on 1 April"


def test_spend_counts_the_replies_created_in_the_day_and_in_the_month(user: Any, other_user: Any) -> None:
    chat = chat_create(user=user)
    reply(chat, cost="0.10", input_tokens=10, output_tokens=5, at=datetime(2026, 3, 15, 0, 0, tzinfo=UTC))
    reply(chat, cost="0.20", input_tokens=20, output_tokens=0, at=datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC))
    reply(chat, cost="0.40", input_tokens=1, output_tokens=1, at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    reply(chat, cost="9.00", input_tokens=900, output_tokens=900, at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    reply(chat, cost=None, input_tokens=7, output_tokens=None, at=datetime(2026, 3, 15, 1, 0, tzinfo=UTC))
    reply(chat_create(user=other_user), cost="5.00", input_tokens=500, output_tokens=500, at=NOW)  # not alice's
    spend = guard.spend_of([user.pk], NOW)[user.pk]
    assert (spend.day_cost, spend.day_tokens) == (Decimal("0.10"), 22)  # an unpriced reply's tokens count
    assert (spend.month_cost, spend.month_tokens) == (Decimal("0.70"), 44)
    assert (spend.largest_cost, spend.largest_tokens, spend.in_flight) == (Decimal("0.40"), 20, 0)


def test_a_daily_limit_and_a_monthly_limit_each_count_their_own_period() -> None:
    spend = Spend(day_cost=Decimal("0.50"), month_cost=Decimal("3.00"), day_tokens=10, month_tokens=900)
    assert guard.refusal([Limit("day", Decimal("1"), None)], spend, NOW) is None
    assert guard.refusal([Limit("month", Decimal("3"), None)], spend, NOW) == (
        "Your monthly cost budget of $3.00 is used up ($3.00 spent); it resets at 00:00 UTC on 1 April."
    )
    assert guard.refusal([Limit("day", None, 100)], spend, NOW) is None
    assert guard.refusal([Limit("month", None, 900)], spend, NOW) == (
        "Your monthly token budget of 900 tokens is used up (900 tokens spent); it resets at 00:00 UTC on 1 April."
    )


def test_a_reply_in_flight_reserves_the_largest_reply_or_everything_when_there_is_none_yet() -> None:
    cap = [Limit("day", Decimal("1.00"), None)]
    # Room for one more reply as large as the largest: the second of two racing sends still passes.
    assert guard.refusal(cap, Spend(day_cost=Decimal("0.50"), largest_cost=Decimal("0.20"), in_flight=1), NOW) is None
    # No room: a reply in flight may take the rest.
    words = guard.refusal(cap, Spend(day_cost=Decimal("0.90"), largest_cost=Decimal("0.20"), in_flight=1), NOW)
    assert words is not None and words.startswith("Your daily cost budget of $1.00 is nearly used up ($0.90 spent)")
    assert "resets at 00:00 UTC" in words
    # Nothing to go by: the reply in flight reserves everything left, so replies go one at a time.
    assert guard.refusal(cap, Spend(in_flight=1), NOW) is not None
    assert guard.refusal(cap, Spend(in_flight=0), NOW) is None


def test_a_users_own_row_replaces_the_default_of_its_period_and_an_empty_one_exempts() -> None:
    table = guard.table_of(
        [
            (None, "day", Decimal("1"), None),
            (None, "month", None, 1000),
            (7, "day", Decimal("5"), None),
            (8, "day", None, None),
        ]
    )
    assert table.limits_of(7) == [Limit("day", Decimal("5"), None), Limit("month", None, 1000)]
    assert table.limits_of(8) == [Limit("month", None, 1000)]
    assert table.limits_of(9) == [Limit("day", Decimal("1"), None), Limit("month", None, 1000)]
    assert guard.table_of([]).limits_of(9) == []


def test_money_shows_the_digits_that_make_a_difference() -> None:
    assert periods.money(Decimal("1.02")) == "$1.02"
    assert periods.money(Decimal("1.000004"), beside=Decimal("1")) == "$1.000004"
    assert periods.money(Decimal("0.000123")) == "$0.000123"
    assert periods.money(Decimal("1234.5")) == "$1,234.50"
