"""Settings pages: API keys, connection and image profiles, plugins.

Thin views: forms and services (providers.forms, providers.services, providers.plugin_state) do the
work; every object is fetched through ``request.user`` so another user's key or profile answers 404.
Keys are write-only: a form never renders a secret back, pages show ``…last4`` only.

May import: ``providers.errors``, ``providers.forms``, ``providers.models``, ``providers.plugin_info``,
``providers.plugin_state``, ``providers.registry``, ``providers.selectors``, ``providers.services``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from providers import forms, selectors, services
from providers.errors import ProviderError, QtapProviderError
from providers.models import ApiKey, ConnectionProfile, ImageProfile
from providers.plugin_info import all_plugin_info
from providers.plugin_state import plugin_enabled_states, plugin_set_enabled
from providers.registry import registry


class HtmxHttpRequest(HttpRequest):
    """What these views see: signed in (login_required) and with django-htmx's details."""

    htmx: HtmxDetails
    user: User


# ---- provider metadata for the pickers -------------------------------------------------------------


def provider_choices(*, images: bool = False) -> list[dict[str, Any]]:
    """Every loaded plugin that can back a profile, with what the picker shows (from its manifest)."""
    enabled = plugin_enabled_states()
    choices = []
    for plugin in sorted(registry.all(), key=lambda p: p.manifest.title.lower()):
        config = plugin.manifest.provider_config
        if config is None or (images and not config.capabilities.image_generation):
            continue
        name = plugin.manifest.name
        choices.append({"name": name, "config": config, "enabled": enabled.get(name, True)})
    return choices


def provider_config(name: str) -> Any:
    plugin = registry.find(name) if name else None
    return plugin.manifest.provider_config if plugin else None


# ---- API keys ------------------------------------------------------------------------------------------


def _with_destinations(user: User, keys: Any) -> list[ApiKey]:
    """Each key with ``destinations`` ((base URL, label) pairs) for its "Test": the base URLs of its owner's
    saved profiles that use it (a key meant for a proxy is tested there), then its plugin's default ("")."""
    keys = list(keys)
    saved: dict[int, list[str]] = {key.pk: [] for key in keys}
    for model in (ConnectionProfile, ImageProfile):
        rows = model.objects.filter(user=user, api_key__in=keys).exclude(base_url="").order_by("-is_default", "name")
        for key_id, url in rows.values_list("api_key_id", "base_url"):
            if url not in saved[key_id]:
                saved[key_id].append(url)
    for key in keys:
        config = provider_config(key.plugin)
        default = [("", f"{config.base_url_default} (default)")] if config and config.base_url_default else []
        setattr(key, "destinations", [(url, url) for url in saved[key.pk]] + default)  # noqa: B010
    return keys


def _keys_context(request: HtmxHttpRequest, form: Any) -> dict[str, Any]:
    return {
        "form": form,
        "keys": _with_destinations(
            request.user, selectors.api_keys_for(request.user).order_by("plugin", "label", "id")
        ),
        "providers": provider_choices(),
        "selected": form["plugin"].value() if form is not None else "",
    }


@login_required
@sensitive_post_parameters("secret")
@sensitive_variables("secret")
def keys(request: HtmxHttpRequest) -> HttpResponse:
    form = forms.ApiKeyForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        key = services.api_key_create(
            user=request.user,
            plugin=data["plugin"],
            label=data["label"],
            secret=data["secret"],
            is_active=data["is_active"],
        )
        if request.htmx:
            context = _keys_context(request, forms.ApiKeyForm(user=request.user))
            context["saved_warnings"] = key.warnings
            return render(request, "providers/keys.html#key-section", context)
        for warning in key.warnings:
            messages.warning(request, warning)
        return redirect("providers:keys")
    if request.htmx and request.method == "POST":
        # htmx swaps only 2xx answers: the section comes back with the form's errors in it.
        return render(request, "providers/keys.html#key-section", _keys_context(request, form))
    return render(request, "providers/keys.html", _keys_context(request, form), status=400 if form.errors else 200)


@login_required
@require_POST
@sensitive_post_parameters("secret")
@sensitive_variables("secret")
def key_check(request: HtmxHttpRequest) -> HttpResponse:
    """htmx: warn (never refuse) when the typed key does not look like the provider's keys."""
    secret = request.POST.get("secret", "")
    warning = services.api_key_pattern_warning(plugin=request.POST.get("plugin", ""), secret=secret) if secret else None
    return render(request, "providers/keys.html#key-warning", {"warning": warning})


@login_required
@require_POST
def key_toggle(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    key = services.api_key_set_active(api_key=key, is_active=not key.is_active)
    if request.htmx:
        return render(request, "providers/keys.html#key-row", {"key": _with_destinations(request.user, [key])[0]})
    return redirect("providers:keys")


@login_required
@require_POST
def key_delete(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    services.api_key_delete(api_key=key)
    return HttpResponse("") if request.htmx else redirect("providers:keys")


async def _owned(model: type[Model], request: HtmxHttpRequest, pk: int) -> Any:
    user = await request.auser()
    if not user.is_authenticated:
        raise Http404
    obj = await model._default_manager.filter(pk=pk, user_id=user.id).afirst()
    if obj is None:
        raise Http404
    return obj


@login_required
@require_POST
async def key_test(request: HtmxHttpRequest, key_id: int) -> HttpResponse:
    """Test the key at the base URL chosen (a saved profile's, "" for the plugin's default) or typed in; the
    services send it only where ``providers.calls.key_destination_refusal`` allows, and refuse the rest."""
    key = await _owned(ApiKey, request, key_id)
    base_url = request.POST.get("other_base_url", "").strip() or request.POST.get("base_url", "").strip() or None
    result = await services.test_connection(key, base_url=base_url)
    config = provider_config(key.plugin)
    target = base_url or (config.base_url_default if config else "") or ""
    host = urlsplit(target).netloc or target
    context = {"result": result, "host": host}
    return await sync_to_async(render)(request, "providers/keys.html#test-result", context)


# ---- connection and image profiles ---------------------------------------------------------------------

PROFILE_KINDS: dict[str, dict[str, Any]] = {
    "chat": {
        "model": ConnectionProfile,
        "rows": selectors.profiles_for,
        "form": "ConnectionProfileForm",
        "list": "providers:profiles",
        "images": False,
    },
    "image": {
        "model": ImageProfile,
        "rows": selectors.image_profiles_for,
        "form": "ImageProfileForm",
        "list": "providers:image_profiles",
        "images": True,
    },
}


# Fields the profile template lays out itself; any other form field is rendered generically.
HANDLED_FIELDS = frozenset({"name", "plugin", "api_key", "base_url", "model", "is_default"})
# Fields that depend on the chosen model (forms.model_parameter_fields), drawn beside the model field.
MODEL_FIELDS = frozenset(
    {"reasoning_effort", "reasoning_budget_tokens", "reasoning_summary", "prompt_caching", "api", "tools"}
)


def _form_class(kind: str) -> Any:
    return getattr(forms, PROFILE_KINDS[kind]["form"])


def _profile_list(request: HtmxHttpRequest, kind: str) -> HttpResponse:
    # A constant number of queries however many profiles: their keys joined, their statuses from one query.
    profiles = selectors.with_statuses(PROFILE_KINDS[kind]["rows"](request.user).order_by("-is_default", "name"))
    started = kind == "chat" and request.GET.get("first") == "1" and bool(profiles)
    return render(request, "providers/profiles.html", {"profiles": profiles, "kind": kind, "started": started})


@login_required
@require_GET
def profiles(request: HtmxHttpRequest) -> HttpResponse:
    return _profile_list(request, "chat")


@login_required
@require_GET
def image_profiles(request: HtmxHttpRequest) -> HttpResponse:
    return _profile_list(request, "image")


def _fields_context(request: HtmxHttpRequest, kind: str, plugin: str, form: Any | None = None) -> dict[str, Any]:
    config = provider_config(plugin)
    keys = ApiKey.objects.filter(user=request.user, plugin=plugin, is_active=True) if config else ApiKey.objects.none()
    # The controls the chosen model takes (reasoning, caching, API) are drawn with the provider's fields.
    model_fields = [form[name] for name in MODEL_FIELDS if form is not None and name in form.fields]
    return {"config": config, "plugin": plugin, "keys": keys, "form": form, "kind": kind, "model_fields": model_fields}


def _profile_form(request: HtmxHttpRequest, kind: str, instance: Any | None) -> HttpResponse:
    form = _form_class(kind)(request.POST or None, instance=instance, user=request.user)
    others = PROFILE_KINDS[kind]["model"].objects.filter(user=request.user).exclude(pk=getattr(instance, "pk", None))
    first = not others.exists()
    if request.method == "POST" and form.is_valid():
        services.profile_update(profile=form.instance)  # the instance the form validated, new or stored
        # After the very first chat profile the list offers "Start chatting".
        started = "?first=1" if first and kind == "chat" and instance is None else ""
        return redirect(reverse(PROFILE_KINDS[kind]["list"]) + started)
    plugin = form["plugin"].value() or (instance.plugin if instance else "")
    context = {
        "form": form,
        "extra_fields": [field for field in form if field.name not in HANDLED_FIELDS | MODEL_FIELDS],
        "kind": kind,
        "instance": instance,
        "providers": provider_choices(images=PROFILE_KINDS[kind]["images"]),
        "first_profile": first,  # "Use as my default" starts ticked: the first profile is the default anyway
        **_fields_context(request, kind, plugin, form),
    }
    return render(request, "providers/profile_form.html", context, status=400 if form.errors else 200)


@login_required
def profile_new(request: HtmxHttpRequest) -> HttpResponse:
    return _profile_form(request, "chat", None)


@login_required
def profile_edit(request: HtmxHttpRequest, profile_id: int) -> HttpResponse:
    return _profile_form(request, "chat", get_object_or_404(ConnectionProfile, pk=profile_id, user=request.user))


@login_required
def image_profile_new(request: HtmxHttpRequest) -> HttpResponse:
    return _profile_form(request, "image", None)


@login_required
def image_profile_edit(request: HtmxHttpRequest, profile_id: int) -> HttpResponse:
    return _profile_form(request, "image", get_object_or_404(ImageProfile, pk=profile_id, user=request.user))


def _kind_model(kind: str) -> Any:
    if kind not in PROFILE_KINDS:
        raise Http404
    return PROFILE_KINDS[kind]["model"]


@login_required
@require_POST
def profile_delete(request: HtmxHttpRequest, kind: str, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(_kind_model(kind), pk=profile_id, user=request.user)
    services.profile_delete(profile=profile)
    return HttpResponse("") if request.htmx else redirect(PROFILE_KINDS[kind]["list"])


@login_required
@require_POST
def profile_make_default(request: HtmxHttpRequest, kind: str, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(_kind_model(kind), pk=profile_id, user=request.user)
    services.profile_make_default(profile=profile)
    target = reverse(PROFILE_KINDS[kind]["list"])
    return HttpResponseClientRedirect(target) if request.htmx else redirect(target)


@login_required
@require_POST
async def profile_test(request: HtmxHttpRequest, kind: str, profile_id: int) -> HttpResponse:
    profile = await _owned(_kind_model(kind), request, profile_id)
    result = await services.test_connection(profile)
    return await sync_to_async(render)(request, "providers/keys.html#test-result", {"result": result})


@login_required
@require_GET
def provider_fields(request: HtmxHttpRequest, kind: str) -> HttpResponse:
    """htmx: the provider-dependent part of a profile form (key, base URL, model) for the picked plugin."""
    if kind not in PROFILE_KINDS:
        raise Http404
    plugin = request.GET.get("plugin", "")
    # Re-drawn when the provider or the model changes: what was typed so far is kept.
    initial = {name: request.GET.get(name, "") for name in ("plugin", "model", "base_url", "api_key")}
    form = _form_class(kind)(initial=initial, user=request.user)
    context = _fields_context(request, kind, plugin, form)
    return render(request, "providers/profile_form.html#provider-fields", context)


@login_required
@require_POST
async def model_options(request: HtmxHttpRequest) -> HttpResponse:
    """htmx: the provider's live model list (cached by the provider layer) as <option>s of a datalist.

    A POST (so CSRF-checked): it may decrypt and use a stored key, which services send only to the plugin's
    default base URL or to one of the owner's saved profiles that use that key.
    """
    key_id = request.POST.get("api_key", "")
    api_key = None
    if key_id.isdigit():
        api_key = await _owned(ApiKey, request, int(key_id))
    context: dict[str, Any] = {"models": [], "error": None}
    try:
        context["models"] = await services.list_models(
            plugin=request.POST.get("plugin", ""),
            api_key=api_key,
            base_url=request.POST.get("base_url", "").strip() or None,
        )
    except ProviderError as exc:
        context["error"] = f"{exc.code}: {exc.message}"
    except (QtapProviderError, ValidationError, ValueError) as exc:
        context["error"] = getattr(exc, "message", None) or str(exc)
    return await sync_to_async(render)(request, "providers/profile_form.html#model-options", context)


# ---- plugins -------------------------------------------------------------------------------------------


@login_required
@require_GET
def plugin_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "providers/plugins.html", {"plugins": all_plugin_info()})


@staff_member_required
@require_POST
def plugin_toggle(request: HtmxHttpRequest, name: str) -> HttpResponse:
    if registry.find(name) is None:
        raise Http404
    plugin_set_enabled(name=name, enabled=request.POST.get("enabled") == "1")
    return HttpResponseClientRedirect(reverse("providers:plugins")) if request.htmx else redirect("providers:plugins")


@login_required
@require_GET
def plugin_icon(request: HtmxHttpRequest, name: str) -> FileResponse:
    """A plugin's icon.svg, read from its own folder (never a path taken from the request)."""
    plugin = registry.find(name)
    folder: Path | None = registry.path(plugin.manifest.name) if plugin else None
    icon = folder / "icon.svg" if folder else None
    if icon is None or not icon.is_file():
        raise Http404
    response = FileResponse(icon.open("rb"), content_type="image/svg+xml")
    # SVG can carry script: forbid it outright, whatever the plugin shipped.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
