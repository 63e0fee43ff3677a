"""The page a throttled sign-in gets (django-axes calls ``lockout_response`` once the failure limit is reached)."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    """The sign-in page's lockout message, saying when the next try is allowed.

    Each try while locked out counts as a failure and restarts the cool-off, so the next try is allowed one
    cool-off after this request. Axes passes (request, original response, credentials) from its synchronous
    middleware and (request, credentials) from its asynchronous one: neither is needed here.
    """
    cool_off = get_cool_off(request)
    context: dict[str, Any] = {"failure_limit": settings.AXES_FAILURE_LIMIT}
    if cool_off:
        started = getattr(request, "axes_attempt_time", None) or timezone.now()
        context["retry_at"] = started + cool_off
        context["cool_off_minutes"] = max(1, round(cool_off.total_seconds() / 60))
    return render(request, "registration/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
