"""``GET /search/?q=…``: the search page, or only its results for an htmx request (the box searches as
you type).

Input never errors: text with nothing to search for (empty, punctuation only) gets a message saying so,
and anything else is escaped into a safe query by ``query.parse`` before an engine sees it.

May import: ``query``, ``services``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from qtap_site.search import services
from qtap_site.search.query import MAX_QUERY_CHARS, MAX_TERMS, parse

RESULTS_LIMIT = 50


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    text = request.GET.get("q", "")
    parsed = parse(text)
    context = {
        "q": text[:MAX_QUERY_CHARS],
        "asked": bool(text.strip()),
        "parsed": parsed,
        "results": services.search(user=request.user, query=parsed, limit=RESULTS_LIMIT) if parsed else [],
        "max_chars": MAX_QUERY_CHARS,
        "max_terms": MAX_TERMS,
        "limit": RESULTS_LIMIT,
    }
    template = "search/search.html#results" if getattr(request, "htmx", False) else "search/search.html"
    return render(request, template, context)
