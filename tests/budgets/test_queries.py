"""The common path stays cheap: with no budget anywhere a send runs no query for budgets (the rows are
cached per process), and with one the check costs two statements per batch (the lock on PostgreSQL, and
the spend). Measured with ``CaptureQueriesContext`` around ``sending.prepare_sends``, the database side of a send."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from qtap_site.budgets import guard, services
from qtap_site.chat import sending
from qtap_site.chat.services import chat_create

# The cache reads committed rows on its own connection, as another process would.
pytestmark = pytest.mark.django_db(transaction=True)


def statements(user: Any, profile: Any) -> list[str]:
    chat = chat_create(user=user, profile=profile)
    with CaptureQueriesContext(connection) as captured:
        [outcome] = sending.prepare_sends([sending.SendRequest(user_id=user.pk, chat_id=chat.pk, content="Hi")])
    assert isinstance(outcome, sending.Prepared)
    return [query["sql"] for query in captured.captured_queries]


def about_budgets(sql: list[str]) -> list[str]:
    return [s for s in sql if "budgets_budget" in s or "FOR NO KEY UPDATE" in s or '"auth_user"' in s]


def test_with_no_budget_anywhere_a_send_runs_no_extra_query(user: Any, profile: Any, monkeypatch: Any) -> None:
    cold = statements(user, profile)  # the cache is read on a connection of its own
    warm = statements(user, profile)
    assert about_budgets(cold) == about_budgets(warm) == []
    assert len(cold) == len(warm)
    monkeypatch.setattr(guard, "refusals", lambda sends, now: {})
    without_the_check = statements(user, profile)
    assert len(warm) == len(without_the_check)
    print(f"a send without budgets: {len(warm)} statements, the same as with the check removed")


def test_a_user_without_a_budget_is_not_locked_even_when_others_have_one(
    user: Any, other_user: Any, profile: Any
) -> None:
    services.budget_set(user=other_user, period="day", max_cost=None, max_tokens=100)
    guard.cached_table()
    assert about_budgets(statements(user, profile)) == []


def test_a_budgeted_send_costs_the_lock_and_one_spend_query(user: Any, profile: Any) -> None:
    services.budget_set(user=None, period="month", max_cost=services.parse_cost("5"), max_tokens=None)
    guard.cached_table()
    sql = statements(user, profile)
    checked = about_budgets(sql) + [s for s in sql if "SUM(" in s.upper()]
    assert [s for s in sql if "budgets_budget" in s] == []  # limits come from the cache
    # SELECT … FROM auth_user … FOR NO KEY UPDATE (PostgreSQL; SQLite's transaction holds the database), and
    # the grouped spend.
    assert len(set(checked)) == (2 if connection.features.has_select_for_update else 1), checked
    print(f"a budgeted send: {len(sql)} statements")
