"""The budget check of a send, made inside the send's transaction before any upstream request
(``qtap_site.chat.sending`` calls ``refusals`` once per batch, after saving the batch's placeholders).

Spend in a period is the sum of the cost and of the tokens (input + output) of the user's assistant
messages created in it: the UTC calendar day or month. A reply's cost is what was saved on it (the
provider's own figure, else genai-prices); a reply nothing priced counts no cost, its tokens still count.

Races. A reply's cost is only known when it ends, so two sends that both read "$0.99 of $1.00 spent"
would both pass and both spend. Two rules close that:

- The check and the reservation are one transaction: the send's "streaming" placeholder (the
  reservation) is saved, the user's row (``auth_user``) locked (``SELECT … FOR NO KEY UPDATE``, users in
  id order, so batches cannot deadlock; *no key* so that rows pointing at the user, an upload or a chat,
  are not held up), spend read; all commit together, which releases the lock. A send in another process
  waits on the lock and then reads (PostgreSQL's READ COMMITTED takes a fresh snapshot per statement)
  the placeholder of the one before it. SQLite runs the whole transaction under its write lock (``BEGIN IMMEDIATE``),
  so there the lock is skipped.
- A reply still being written reserves as much as the user's largest reply of the month so far; with
  no reply to go by it reserves all that is left. A send passes while ``spent + reserved < limit``.
  So near the limit replies go one at a time, and two racing sends pass together only when there is
  room for both. A reply may still end past the limit (its cost is not known beforehand): the next
  send is then refused.

A refused send's placeholder is marked "error" in the same transaction, so it reserves nothing; the
runner then ends it with ``generation.error`` ``budget_exceeded`` (not retryable: nothing changes
until the period resets) and sends nothing to the provider.

The common path is cheap: the budget rows (a small table) are cached per process for
``CACHE_SECONDS`` and read on a connection of their own, so a send of a user no budget covers runs
no query at all in its transaction; a budgeted batch adds
two (the lock and one grouped spend query), and a refusal one more. A change made in this
process (admin, ``budgets.services``) clears the cache at once; another process sees it within
``CACHE_SECONDS``.

May import: ``models``, ``periods``; ``qtap_site.chat.models``, ``qtap_site.chat.protocol`` (the error
code) and ``qtap_site.chat.services`` (what counts as a live reply).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import Coalesce
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from qtap_site.budgets import periods
from qtap_site.budgets.models import Budget
from qtap_site.chat.models import Message
from qtap_site.chat.protocol import BUDGET_EXCEEDED
from qtap_site.chat.services import live_streaming

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Limit:
    period: str  # Budget.Period
    max_cost: Decimal | None
    max_tokens: int | None


@dataclass(frozen=True)
class Table:
    """Every budget row: the defaults by period and each user's own rows by period."""

    defaults: Mapping[str, Limit]
    own: Mapping[int, Mapping[str, Limit]]

    def limits_of(self, user_id: int) -> list[Limit]:
        """The user's limits, day before month: their own row of a period, else the default's; a row
        with neither limit set (an exemption) is left out."""
        mine = self.own.get(user_id, {})
        found = [mine.get(p, self.defaults.get(p)) for p in periods.ORDER]
        return [limit for limit in found if limit is not None and (limit.max_cost, limit.max_tokens) != (None, None)]


def table_of(rows: Iterable[tuple[int | None, str, Decimal | None, int | None]]) -> Table:
    defaults: dict[str, Limit] = {}
    own: dict[int, dict[str, Limit]] = {}
    for user_id, period, max_cost, max_tokens in rows:
        limit = Limit(period, max_cost, max_tokens)
        if user_id is None:
            defaults[period] = limit
        else:
            own.setdefault(user_id, {})[period] = limit
    return Table(defaults, own)


def read_table() -> Table:
    return table_of(Budget.objects.order_by().values_list("user_id", "period", "max_cost", "max_tokens"))


_cached: tuple[float, Table] | None = None
_reader: ThreadPoolExecutor | None = None


def _read_apart() -> Table:
    try:
        return read_table()
    finally:
        connections.close_all()  # this thread's own connection: none is left open between reads


def cached_table() -> Table:
    """The budget rows, read at most once per ``CACHE_SECONDS`` in this process, on a connection of
    their own: so the send's transaction runs the same statements whether the cache was fresh or not,
    and the read sees only committed rows (what every process sees)."""
    global _cached, _reader
    now = time.monotonic()
    if _cached is None or now - _cached[0] > CACHE_SECONDS:
        if _reader is None:
            _reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="budgets")
        _cached = (now, _reader.submit(_read_apart).result())
    return _cached[1]


def surely_unbudgeted(user_id: int) -> bool:
    """True only if the cached rows are fresh and no budget covers the user: then the send's check has
    nothing to refuse, and its provider call may leave before the send's transaction has committed.
    Never reads the database (a cold or stale cache answers False)."""
    cached = _cached
    return cached is not None and time.monotonic() - cached[0] <= CACHE_SECONDS and not cached[1].limits_of(user_id)


@receiver(post_save, sender=Budget)
@receiver(post_delete, sender=Budget)
def forget(**_: Any) -> None:
    """Drop the cached rows (a budget changed in this process)."""
    global _cached
    _cached = None


# ---- spend -----------------------------------------------------------------------------------------


@dataclass
class Spend:
    """A user's spend this day and month, the most one reply cost this month, and replies in flight."""

    day_cost: Decimal = Decimal(0)
    day_tokens: int = 0
    month_cost: Decimal = Decimal(0)
    month_tokens: int = 0
    largest_cost: Decimal | None = None
    largest_tokens: int | None = None
    in_flight: int = 0

    def spent(self, period: str) -> tuple[Decimal, int]:
        return (self.day_cost, self.day_tokens) if period == Budget.Period.DAY else (self.month_cost, self.month_tokens)


TOKENS = Coalesce(F("input_tokens"), 0) + Coalesce(F("output_tokens"), 0)


def spend_of(user_ids: Iterable[int], now: datetime, *, exclude: Iterable[int] = ()) -> dict[int, Spend]:
    """One grouped query for every user; ``exclude``: placeholders of the batch being checked."""
    day = Q(created_at__gte=periods.start(Budget.Period.DAY, now))
    rows = (
        Message.objects.filter(
            role=Message.Role.ASSISTANT,
            chat__user_id__in=list(user_ids),
            created_at__gte=periods.start(Budget.Period.MONTH, now),
        )
        .exclude(pk__in=list(exclude))
        .order_by()
        .values("chat__user_id")
        .annotate(
            month_cost=Sum("cost"),
            month_tokens=Sum(TOKENS),
            day_cost=Sum("cost", filter=day),
            day_tokens=Sum(TOKENS, filter=day),
            largest_cost=Max("cost"),
            largest_tokens=Max(TOKENS, filter=~Q(status=Message.Status.STREAMING)),
            in_flight=Count("pk", filter=live_streaming()),
        )
    )
    return {
        row["chat__user_id"]: Spend(
            day_cost=row["day_cost"] or Decimal(0),
            day_tokens=row["day_tokens"] or 0,
            month_cost=row["month_cost"] or Decimal(0),
            month_tokens=row["month_tokens"] or 0,
            largest_cost=row["largest_cost"],
            largest_tokens=row["largest_tokens"] or None,
            in_flight=row["in_flight"],
        )
        for row in rows
    }


# ---- the check ---------------------------------------------------------------------------------------


def refusal(limits: list[Limit], spend: Spend, now: datetime) -> str | None:
    """Why a send is refused (the words the person reads), or None."""
    for limit in limits:
        cost, tokens = spend.spent(limit.period)
        checks = (
            ("cost", limit.max_cost, cost, spend.largest_cost),
            ("token", limit.max_tokens, tokens, spend.largest_tokens),
        )
        for kind, cap, spent, largest in checks:
            if cap is None:
                continue
            if spent >= cap:
                return periods.used_up(limit.period, kind, cap, spent, now)
            if spend.in_flight and (largest is None or spent + spend.in_flight * largest >= cap):
                return periods.reserved(limit.period, kind, cap, spent, now)
    return None


def refusals(sends: list[tuple[int, int]], now: datetime) -> dict[int, tuple[str, str]]:
    """For a batch of (user id, placeholder message id), in order: placeholder → the (code, message)
    that ends it instead of a provider request. Runs inside the batch's transaction."""
    table = cached_table()
    if not table.defaults and not table.own:
        return {}
    limits = {user_id: table.limits_of(user_id) for user_id, _ in sends}
    users = sorted(user_id for user_id, found in limits.items() if found)
    if not users:
        return {}
    if connection.features.has_select_for_update:  # SQLite holds the whole database already
        locked = get_user_model().objects.select_for_update(no_key=True).filter(pk__in=users).order_by("pk")
        list(locked.values_list("pk", flat=True))
    spend = spend_of(users, now, exclude=[message_id for _, message_id in sends])
    refused: dict[int, tuple[str, str]] = {}
    for user_id, message_id in sends:
        if not limits[user_id]:
            continue
        theirs = spend.setdefault(user_id, Spend())
        problem = refusal(limits[user_id], theirs, now)
        if problem is None:
            theirs.in_flight += 1  # the next send of this batch sees this one in flight
        else:
            refused[message_id] = (BUDGET_EXCEEDED, problem)
    if refused:
        # Not "streaming" any more, so a refused reply reserves nothing; the runner saves the rest.
        Message.objects.filter(pk__in=list(refused)).update(
            status=Message.Status.ERROR, finish_reason="error", error_code=BUDGET_EXCEEDED
        )
    return refused
