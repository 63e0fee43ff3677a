"""The usage pages: ``/usage/`` (the signed-in user's own spend, tokens and budgets) and
``/usage/all/`` (staff: every user's). Thin: ``selectors`` reads, ``services`` says what is left.

May import: ``charts``, ``selectors``, ``services``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from qtap_site.budgets import charts, selectors, services


def _span(request: HttpRequest) -> tuple[selectors.DateRange, str, Any]:
    now = timezone.now()
    span, problem = selectors.DateRange.parse(request.GET.get("from"), request.GET.get("to"), now)
    return span, problem, now


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    span, problem, now = _span(request)
    found = selectors.of_user(request.user, span)
    context = {
        "usage": found,
        "chart": charts.day_bars(found.by_day),
        "standings": services.standings(request.user, now),
        "problem": problem,
        "this_month": span == selectors.DateRange.this_month(now),
    }
    return render(request, "budgets/usage.html", context)


@login_required
@require_GET
def usage_all(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only staff see everyone's usage.")
    span, problem, _ = _span(request)
    total, users = selectors.per_user(span)
    return render(request, "budgets/usage_all.html", {"span": span, "total": total, "users": users, "problem": problem})
