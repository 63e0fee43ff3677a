"""``/usage/`` (a user's own spend, tokens and budgets) and ``/usage/all/`` (staff): the sums are the
messages' own, every query is scoped (bob never sees alice's usage), and the staff page is staff-only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from qtap_site.budgets import services
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.budgets.conftest import reply

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(UTC).date()
MONTH_START = TODAY.replace(day=1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="bobs long password")


@pytest.fixture
def history(user: Any, bob: Any) -> list[Message]:
    """alice's replies across days, models and providers, one user message, and bob's replies."""
    chat = chat_create(user=user)
    alice = [
        reply(chat, cost="0.125", input_tokens=100, output_tokens=20, at=at(TODAY, 0)),
        reply(chat, cost="0.5", input_tokens=1000, output_tokens=300, at=at(TODAY, 23), model="gpt-4o"),
        reply(chat, cost=None, input_tokens=40, output_tokens=2, at=at(MONTH_START), plugin="qtap-plugin-ollama",
              model="llama3"),
        reply(chat, cost="2", input_tokens=5, output_tokens=5, at=at(MONTH_START - timedelta(days=3)),
              plugin="qtap-plugin-anthropic", model="claude-sonnet-4"),
    ]  # fmt: skip
    Message.objects.create(chat=chat, role=Message.Role.USER, content="not counted", input_tokens=999)
    theirs = chat_create(user=bob)
    reply(theirs, cost="7", input_tokens=7000, output_tokens=700, at=at(TODAY), model="bobs-secret-model")
    return alice


def page(client: Client, url: str, **params: str) -> Any:
    response = client.get(url, params)
    assert response.status_code == 200
    return response


def expected(messages: list[Message], first: date, last: date) -> tuple[Decimal, int, int, int]:
    chosen = [m for m in messages if first <= m.created_at.astimezone(UTC).date() <= last]
    return (
        sum((m.cost or Decimal(0) for m in chosen), Decimal(0)),
        sum(m.input_tokens or 0 for m in chosen),
        sum(m.output_tokens or 0 for m in chosen),
        len(chosen),
    )


def totals(row: Any) -> tuple[Decimal, int, int, int]:
    return (row.cost, row.input_tokens, row.output_tokens, row.replies)


def test_this_months_sums_equal_the_messages(client: Client, user: Any, history: list[Message]) -> None:
    client.force_login(user)
    usage = page(client, "/usage/").context["usage"]
    want = expected(history, MONTH_START, TODAY)
    assert totals(usage.total) == want
    for rows in (usage.by_day, usage.by_model, usage.by_provider):
        assert tuple(map(sum, zip(*(totals(r) for r in rows), strict=True))) == want
    assert [r.label for r in usage.by_day] == [str(MONTH_START + timedelta(days=n)) for n in range(TODAY.day)]
    today = next(r for r in usage.by_day if r.label == str(TODAY))
    assert totals(today) == expected(history, TODAY, TODAY)
    assert {r.label for r in usage.by_model} == {"gpt-4o-mini", "gpt-4o", "llama3"}
    assert {r.label for r in usage.by_provider} == {"OpenAI", "Ollama"}


def test_a_chosen_range_sums_its_days(client: Client, user: Any, history: list[Message]) -> None:
    client.force_login(user)
    first = MONTH_START - timedelta(days=10)
    response = page(client, "/usage/", **{"from": str(first), "to": str(TODAY)})
    usage = response.context["usage"]
    assert totals(usage.total) == expected(history, first, TODAY)
    assert len(usage.by_day) == (TODAY - first).days + 1
    assert len(response.context["chart"].bars) == len(usage.by_day)
    html = response.content.decode()
    assert "<svg" in html and "<rect" in html and "claude-sonnet-4" in html


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"from": "yesterday"}, "Dates are written YYYY-MM-DD"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "ends before it starts"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "at most 366 days"),
    ],
)
def test_a_bad_range_says_why_and_shows_this_month(
    client: Client, user: Any, history: list[Message], params: dict[str, str], problem: str
) -> None:
    client.force_login(user)
    response = page(client, "/usage/", **params)
    assert problem in response.context["problem"] and problem in response.content.decode()
    assert totals(response.context["usage"].total) == expected(history, MONTH_START, TODAY)


def test_bob_never_sees_alices_usage(client: Client, bob: Any, history: list[Message]) -> None:
    client.force_login(bob)
    response = page(client, "/usage/")
    usage = response.context["usage"]
    assert totals(usage.total) == (Decimal(7), 7000, 700, 1)
    html = response.content.decode()
    assert "bobs-secret-model" in html
    for alices in ("gpt-4o-mini", "llama3", "Ollama"):
        assert alices not in html


def test_the_page_shows_the_budgets_and_what_is_left(client: Client, user: Any, history: list[Message]) -> None:
    services.budget_set(user=None, period="day", max_cost=Decimal("1"), max_tokens=None)
    services.budget_set(user=user, period="month", max_cost=None, max_tokens=5000)
    client.force_login(user)
    response = page(client, "/usage/")
    standings = {(s.period, s.kind): s for s in response.context["standings"]}
    assert set(standings) == {("day", "cost"), ("month", "token")}
    day = standings["day", "cost"]
    assert (day.limit, day.spent, day.left, day.own) == (Decimal(1), Decimal("0.625"), Decimal("0.375"), False)
    month = standings["month", "token"]
    month_tokens = sum((m.input_tokens or 0) + (m.output_tokens or 0) for m in history[:3])
    assert (month.spent, month.left, month.own) == (month_tokens, 5000 - month_tokens, True)
    html = response.content.decode()
    assert "$0.38" in html and f"{5000 - month_tokens:,} tokens" in html and "UTC" in html


def test_everyones_usage_is_for_staff_only(client: Client, user: Any, bob: Any, history: list[Message]) -> None:
    client.force_login(user)
    assert client.get("/usage/all/").status_code == 403
    client.logout()
    assert client.get("/usage/all/")["Location"].startswith("/login/")
    assert client.get("/usage/")["Location"].startswith("/login/")
    bob.is_staff = True
    bob.save()
    client.force_login(bob)
    response = page(client, "/usage/all/")
    rows = {r.label: totals(r) for r in response.context["users"]}
    assert rows == {"alice": expected(history, MONTH_START, TODAY), "bob": (Decimal(7), 7000, 700, 1)}
    assert totals(response.context["total"]) == tuple(map(sum, zip(*rows.values(), strict=True)))


def test_the_nav_links_to_usage(client: Client, user: Any) -> None:
    client.force_login(user)
    assert 'href="/usage/"' in client.get("/usage/").content.decode()
