from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from providers.registry import registry


@login_required
def plugin_list(request: HttpRequest) -> HttpResponse:
    return render(request, "providers/plugins.html", {"plugins": registry.all(), "failures": registry.failures()})
