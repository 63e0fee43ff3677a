"""Budget periods are UTC calendar periods: a day runs from 00:00 UTC, a month from 00:00 UTC on its
first day, whatever the server's or the person's time zone. Also the words a refusal says.

May import: nothing of the app (plain functions of a period name and a time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

DAY, MONTH = "day", "month"
ORDER = (DAY, MONTH)
ADJECTIVE = {DAY: "daily", MONTH: "monthly"}


def start(period: str, now: datetime) -> datetime:
    """When the period holding ``now`` began."""
    moment = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return moment if period == DAY else moment.replace(day=1)


def end(period: str, now: datetime) -> datetime:
    """When the period holding ``now`` ends (the next one's start)."""
    began = start(period, now)
    if period == DAY:
        return began + timedelta(days=1)
    return began.replace(year=began.year + 1, month=1) if began.month == 12 else began.replace(month=began.month + 1)


def resets(period: str, now: datetime) -> str:
    if period == DAY:
        return "00:00 UTC"
    return f"00:00 UTC on {end(period, now):%-d %B}"


def money(value: Decimal, *, beside: Decimal | None = None) -> str:
    """``$1.00``; with more digits when two cents would hide a difference from ``beside``."""
    shown = f"${value:,.2f}"
    if beside is not None and shown == f"${beside:,.2f}" and value != beside:
        return f"${value:,.6f}".rstrip("0")
    if value != round(value, 2) and value < Decimal("0.01"):
        return f"${value:,.6f}".rstrip("0")
    return shown


def amount(kind: str, value: Decimal | int, *, beside: Decimal | int | None = None) -> str:
    if kind == "cost":
        return money(Decimal(value), beside=None if beside is None else Decimal(beside))
    return f"{int(value):,} tokens"


def used_up(period: str, kind: str, cap: Decimal | int, spent: Decimal | int, now: datetime) -> str:
    """ "Your daily cost budget of $1.00 is used up ($1.02 spent); it resets at 00:00 UTC." """
    return (
        f"Your {ADJECTIVE[period]} {kind} budget of {amount(kind, cap)} is used up "
        f"({amount(kind, spent, beside=cap)} spent); it resets at {resets(period, now)}."
    )


def reserved(period: str, kind: str, cap: Decimal | int, spent: Decimal | int, now: datetime) -> str:
    return (
        f"Your {ADJECTIVE[period]} {kind} budget of {amount(kind, cap)} is nearly used up "
        f"({amount(kind, spent, beside=cap)} spent) and a reply still being written may use the rest: "
        f"send again when it ends. The budget resets at {resets(period, now)}."
    )
