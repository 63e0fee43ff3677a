"""Setting, clearing and listing budgets: the one write path of the command (and what the usage page
reads of a user's budgets). Keyword-only; a bad value raises ``ValidationError`` naming it.

May import: ``guard``, ``models``, ``periods``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from qtap_site.budgets import guard, periods
from qtap_site.budgets.models import Budget

PERIODS = tuple(Budget.Period.values)


def user_named(name: str) -> Any:
    try:
        return get_user_model().objects.get_by_natural_key(name)
    except get_user_model().DoesNotExist:
        raise ValidationError(f"unknown user {name!r}") from None


def parse_cost(value: str | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = Decimal(str(value).strip().removeprefix("$"))
    except InvalidOperation:
        raise ValidationError(f"--max-cost must be a number of US dollars, not {value!r}") from None
    if not cost.is_finite() or cost < 0:
        raise ValidationError(f"--max-cost must be zero or more US dollars, not {value!r}")
    if cost != cost.quantize(Decimal("0.0001")) or cost >= Decimal(10) ** 8:
        raise ValidationError(f"--max-cost takes at most 4 decimal places and 8 digits before the point, not {value!r}")
    return cost


def _check(period: str, max_tokens: int | None) -> None:
    if period not in PERIODS:
        raise ValidationError(f"unknown period {period!r} (use day or month)")
    if max_tokens is not None and max_tokens < 0:
        raise ValidationError(f"--max-tokens must be zero or more, not {max_tokens}")


def budget_set(*, user: Any | None, period: str, max_cost: Decimal | None, max_tokens: int | None) -> Budget:
    """Create or replace the budget of ``user`` (None: the default) for ``period``. A user's row with
    neither limit exempts that user from the default; the default needs a limit."""
    _check(period, max_tokens)
    if user is None and max_cost is None and max_tokens is None:
        raise ValidationError("the default budget needs --max-cost or --max-tokens (budget clear --default removes it)")
    with transaction.atomic():
        budget, _ = Budget.objects.update_or_create(
            user=user, period=period, defaults={"max_cost": max_cost, "max_tokens": max_tokens}
        )
    return budget


def budget_clear(*, user: Any | None, period: str | None = None) -> int:
    """Remove the budgets of ``user`` (None: the default), of one period or both; answers how many."""
    if period is not None:
        _check(period, None)
    rows = Budget.objects.filter(user=user) if user is not None else Budget.objects.filter(user__isnull=True)
    if period is not None:
        rows = rows.filter(period=period)
    deleted, _ = rows.delete()
    return deleted


def budget_rows() -> list[dict[str, Any]]:
    """Every budget, defaults first, as ``budget show --json`` prints them."""
    rows = Budget.objects.select_related("user").order_by("user__username", "period")
    shown = [
        {
            "user": row.user.get_username() if row.user else None,
            "period": row.period,
            "max_cost": str(row.max_cost) if row.max_cost is not None else None,
            "max_tokens": row.max_tokens,
        }
        for row in rows
    ]
    return sorted(shown, key=lambda r: (r["user"] is not None, r["user"] or "", PERIODS.index(r["period"])))


@dataclass(frozen=True)
class Standing:
    """One limit of a user and how much of it is left in the current period."""

    period: str
    kind: str  # "cost" | "token"
    limit: Decimal | int
    spent: Decimal | int
    own: bool  # the user's own row, not the default
    resets: str

    @property
    def left(self) -> Decimal | int:
        return max(self.limit - self.spent, 0)

    @property
    def percent(self) -> int:
        return 100 if not self.limit else min(100, int(self.spent * 100 / self.limit))

    @property
    def shown(self) -> dict[str, str]:
        """Limit, spent and left as words: "$1.00", "1,200 tokens"."""
        return {name: periods.amount(self.kind, getattr(self, name)) for name in ("limit", "spent", "left")}


def standings(user: Any, now: datetime) -> list[Standing]:
    """The user's budgets (read now, not from the cache) and what is left of each."""
    table = guard.read_table()
    limits = table.limits_of(user.pk)
    if not limits:
        return []
    spend = guard.spend_of([user.pk], now).get(user.pk, guard.Spend())
    mine = table.own.get(user.pk, {})
    found = []
    for limit in limits:
        cost, tokens = spend.spent(limit.period)
        own = limit.period in mine
        resets = periods.resets(limit.period, now)
        if limit.max_cost is not None:
            found.append(Standing(limit.period, "cost", limit.max_cost, cost, own, resets))
        if limit.max_tokens is not None:
            found.append(Standing(limit.period, "token", limit.max_tokens, tokens, own, resets))
    return found
