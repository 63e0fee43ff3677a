"""The preset library at ``/settings/presets/``: list and create, edit, delete, and "Add the starter presets".

Thin: ``forms`` validates, ``services`` writes. A preset is always read through ``services.preset_for`` with
the requesting user, so another user's preset answers 404. Ids travel in the query (edit) or the posted form
(edit, delete), never in the path. Every write is a POST, CSRF-checked.

May import: ``forms``, ``models``, ``services``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from qtap_site.presets import services
from qtap_site.presets.forms import PresetForm
from qtap_site.presets.models import Preset


class SignedInRequest(HttpRequest):
    """What these views see (login_required)."""

    user: User


def _save(form: PresetForm, user: Any, preset: Preset | None) -> bool:
    """Write the form's preset; False (the refusal added to the form) when a service refuses it."""
    if not form.is_valid():
        return False
    data = form.cleaned_data
    try:
        if preset is None:
            services.preset_create(user=user, name=data["name"], text=data["text"], profile=data["profile"])
        else:
            services.preset_update(preset=preset, name=data["name"], text=data["text"], profile=data["profile"])
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return False
    return True


@login_required
@require_http_methods(["GET", "POST"])
def preset_list(request: SignedInRequest) -> HttpResponse:
    form = PresetForm(request.POST or None, user=request.user)
    if request.method == "POST" and _save(form, request.user, None):
        messages.success(request, f"Preset {form.cleaned_data['name']!r} saved.")
        return redirect("presets:list")
    presets = Preset.objects.filter(user=request.user).select_related("profile")
    context = {"presets": presets, "form": form, "starters": services.starter_presets()}
    return render(request, "presets/presets.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def preset_edit(request: SignedInRequest) -> HttpResponse:
    preset = services.preset_for(user=request.user, preset_id=request.POST.get("id") or request.GET.get("id"))
    if preset is None:
        raise Http404
    initial = {"name": preset.name, "text": preset.text, "profile": preset.profile_id}
    form = PresetForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST" and _save(form, request.user, preset):
        messages.success(request, f"Preset {preset.name!r} saved.")
        return redirect("presets:list")
    return render(
        request, "presets/preset_form.html", {"preset": preset, "form": form}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def preset_delete(request: SignedInRequest) -> HttpResponse:
    preset = services.preset_for(user=request.user, preset_id=request.POST.get("id"))
    if preset is None:
        raise Http404
    services.preset_delete(preset=preset)
    return HttpResponse("") if request.headers.get("HX-Request") else redirect("presets:list")


@login_required
@require_POST
def starters(request: SignedInRequest) -> HttpResponse:
    added = services.add_starter_presets(user=request.user)
    messages.success(
        request, f"Added {added} starter preset(s)." if added else "You have every starter preset already."
    )
    return redirect("presets:list")
