"""What the usage pages read: spend and tokens of assistant messages by UTC day, by model and by
provider over a range of days, for one user (``of_user``) or, for staff, per user (``per_user``).

Every query starts from ``chat.Message`` filtered to assistant replies in the range, and to one user's
chats unless the caller is the staff page: sums are the messages' own (a reply nothing priced adds no
cost; its tokens still count).

May import: ``periods``; ``qtap_site.chat.models``; ``providers.registry`` (a plugin's display name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate

from providers.registry import registry
from qtap_site.budgets.periods import money
from qtap_site.chat.models import Message

MAX_DAYS = 366  # the longest range a page draws


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    @classmethod
    def this_month(cls, now: datetime) -> DateRange:
        today = now.astimezone(UTC).date()
        return cls(today.replace(day=1), today)

    @classmethod
    def parse(cls, first: str | None, last: str | None, now: datetime) -> tuple[DateRange, str]:
        """The range the query string asks for, else this month; and what was wrong with it, if anything."""
        default = cls.this_month(now)
        if not first and not last:
            return default, ""
        try:
            chosen = cls(date.fromisoformat(first or str(default.first)), date.fromisoformat(last or str(default.last)))
        except ValueError:
            return default, "Dates are written YYYY-MM-DD; showing this month instead."
        if chosen.last < chosen.first:
            return default, "The range ends before it starts; showing this month instead."
        if (chosen.last - chosen.first).days >= MAX_DAYS:
            return default, f"A range covers at most {MAX_DAYS} days; showing this month instead."
        return chosen, ""

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


TOKENS = Coalesce(F("input_tokens"), 0) + Coalesce(F("output_tokens"), 0)
SUMS = {
    "cost": Coalesce(Sum("cost"), Decimal(0)),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "replies": Count("pk"),
}


def replies(span: DateRange, *, user: Any | None) -> QuerySet[Message]:
    """Assistant messages created in ``span``; ``user`` None only for the staff page."""
    rows = Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=span.since, created_at__lt=span.until)
    return rows.filter(chat__user=user) if user is not None else rows


@dataclass
class Row:
    label: str
    cost: Decimal
    input_tokens: int
    output_tokens: int
    replies: int
    share: int = 0  # percent of the largest row's cost (or tokens, when nothing cost anything): bar width

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def dollars(self) -> str:
        return money(self.cost)


@dataclass
class Usage:
    span: DateRange
    total: Row
    by_day: list[Row] = field(default_factory=list)
    by_model: list[Row] = field(default_factory=list)
    by_provider: list[Row] = field(default_factory=list)


def _rows(values: Any, label: Any) -> list[Row]:
    found = [
        Row(label(v), v["cost"], v["input_tokens"], v["output_tokens"], v["replies"])
        for v in values.annotate(**SUMS).order_by()
    ]
    return _shared(found)


def _shared(found: list[Row]) -> list[Row]:
    by_cost = max((r.cost for r in found), default=Decimal(0)) > 0
    top = max(((r.cost if by_cost else r.tokens) for r in found), default=0)
    for row in found:
        row.share = int((row.cost if by_cost else row.tokens) * 100 / top) if top else 0
    return found


def _provider(plugin: str) -> str:
    found = registry.find(plugin) if plugin else None
    if found is not None and found.manifest.provider_config is not None:
        return found.manifest.provider_config.display_name
    return plugin or "(no provider)"


def of_user(user: Any, span: DateRange) -> Usage:
    """One user's usage in ``span``: totals, each day (days with nothing included), models, providers."""
    rows = replies(span, user=user)
    total = rows.aggregate(**SUMS)
    days = {
        v["day"]: v
        for v in rows.annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day").annotate(**SUMS).order_by()
    }
    empty = {"cost": Decimal(0), "input_tokens": 0, "output_tokens": 0, "replies": 0}
    by_day = [Row(day.isoformat(), **{k: days.get(day, empty)[k] for k in empty}) for day in span.days()]
    by_model = _rows(rows.values("plugin", "model"), lambda v: v["model"] or "(unknown model)")
    by_provider = _rows(rows.values("plugin"), lambda v: _provider(v["plugin"]))
    return Usage(
        span=span,
        total=Row("Total", **total),
        by_day=_shared(by_day),
        by_model=sorted(by_model, key=lambda r: (-r.cost, -r.tokens, r.label)),
        by_provider=sorted(by_provider, key=lambda r: (-r.cost, -r.tokens, r.label)),
    )


def per_user(span: DateRange) -> tuple[Row, list[Row]]:
    """Every user's usage in ``span`` (staff), largest first, and the total."""
    rows = replies(span, user=None)
    total = Row("Total", **rows.aggregate(**SUMS))
    found = _rows(rows.values("chat__user__username"), lambda v: v["chat__user__username"])
    return total, sorted(found, key=lambda r: (-r.cost, -r.tokens, r.label))
