"""``manage.py budget set|show|clear`` (SPEC §5b): what each writes and prints, and the one-line
``CommandError`` each bad input gets."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from qtap_site.budgets.models import Budget

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("budget", *args, stdout=out)
    return out.getvalue()


def shown() -> list[dict[str, Any]]:
    return json.loads(run("show", "--json"))["budgets"]


def test_set_show_and_clear(user: Any) -> None:
    assert shown() == []
    assert "No budgets" in run("show")
    assert "default: day budget set" in run("set", "--default", "--period", "day", "--max-cost", "1.50")
    run("set", "--user", "alice", "--period", "month", "--max-tokens", "100000", "--max-cost", "$20")
    run("set", "--user", "alice", "--period", "day")  # no limit: exempt from the default's daily budget
    assert shown() == [
        {"user": None, "period": "day", "max_cost": "1.5000", "max_tokens": None},
        {"user": "alice", "period": "day", "max_cost": None, "max_tokens": None},
        {"user": "alice", "period": "month", "max_cost": "20.0000", "max_tokens": 100000},
    ]
    text = run("show")
    assert "(default)" in text and "alice" in text and "UTC" in text
    # set again replaces: one row per user and period
    run("set", "--default", "--period", "day", "--max-tokens", "5000")
    default = Budget.objects.get(user=None, period="day")
    assert (default.max_cost, default.max_tokens) == (None, 5000)
    assert "alice: 1 budget removed" in run("clear", "--user", "alice", "--period", "day")
    assert "alice: 1 budget removed" in run("clear", "--user", "alice")
    assert "default: 1 budget removed" in run("clear", "--default")
    assert "default: 0 budgets removed" in run("clear", "--default")
    assert Budget.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["set", "--user", "nobody", "--period", "day", "--max-cost", "1"], "unknown user 'nobody'"),
        (["clear", "--user", "nobody"], "unknown user 'nobody'"),
        (["set", "--default", "--period", "week", "--max-cost", "1"], "invalid choice: 'week'"),
        (["set", "--default", "--period", "day", "--max-cost", "lots"], "--max-cost must be a number of US dollars"),
        (["set", "--default", "--period", "day", "--max-cost", "-1"], "--max-cost must be zero or more"),
        (["set", "--default", "--period", "day", "--max-cost", "NaN"], "--max-cost must be zero or more"),
        (["set", "--default", "--period", "day", "--max-cost", "0.00001"], "at most 4 decimal places"),
        (["set", "--default", "--period", "day", "--max-tokens", "-5"], "--max-tokens must be zero or more"),
        (["set", "--default", "--period", "day", "--max-tokens", "many"], "invalid int value: 'many'"),
        (["set", "--default", "--period", "day"], "the default budget needs --max-cost or --max-tokens"),
        (["set", "--user", "alice", "--default", "--period", "day"], "not allowed with argument"),
        (["set", "--period", "day", "--max-cost", "1"], "one of the arguments --user --default is required"),
        (["set", "--default", "--max-cost", "1"], "the following arguments are required: --period"),
        (["clear", "--default", "--period", "year"], "invalid choice: 'year'"),
        (["forget"], "invalid choice: 'forget'"),
    ],
)
def test_bad_input_is_a_one_line_command_error(user: Any, args: list[str], reason: str) -> None:
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value).strip()
    assert Budget.objects.count() == 0


def test_admin_lists_and_adds_budgets(admin_client: Any, user: Any) -> None:
    response = admin_client.post(
        "/admin/budgets/budget/add/", {"user": user.pk, "period": "day", "max_cost": "2.5", "max_tokens": ""}
    )
    assert response.status_code == 302, response.content[:2000]
    assert Budget.objects.get().max_cost == Decimal("2.5")
    page = admin_client.get("/admin/budgets/budget/")
    assert b"Day budget of alice" in page.content
    duplicate = admin_client.post("/admin/budgets/budget/add/", {"user": user.pk, "period": "day", "max_cost": "1"})
    assert duplicate.status_code == 200 and b"already exists" in duplicate.content
