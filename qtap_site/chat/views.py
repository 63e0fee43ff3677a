"""Pages of the chat app: the chat list and the chat page (htmx partials for htmx requests).

Every object is fetched through the requesting user, so another user's chat answers 404. Messages are
drawn by ``rendering`` in their frame shape (``protocol.message_dict``), the same drawing the websocket
carries. Streaming, stop, regenerate and image generation go over the websocket (``consumers``).

May import: ``attachments``, ``branches``, ``chat_frames``, ``delivery``, ``models``, ``protocol``, ``rendering``,
``services``; of the presets app, ``models`` and ``services`` (the preset a chat starts from).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from providers.models import ConnectionProfile, ImageProfile
from providers.plugin_state import plugin_enabled_states
from providers.reasoning import takes_tools
from providers.registry import registry
from providers.selectors import with_statuses
from providers.tool_settings import tool_plugins
from providers.tool_values import offered_tools
from qtap_site.chat import attachments, branches, chat_frames, delivery, protocol, rendering, services
from qtap_site.chat.models import Attachment, Chat, GeneratedImage, Message
from qtap_site.presets.models import Preset
from qtap_site.presets.services import preset_for


class HtmxHttpRequest(HttpRequest):
    """What these views see: signed in (login_required) and with django-htmx's details."""

    htmx: HtmxDetails
    user: User


def _chats(request: HtmxHttpRequest) -> Any:
    return Chat.objects.filter(user=request.user).only("id", "title", "updated_at").order_by("-updated_at", "-id")


def _has_profile(request: HtmxHttpRequest) -> bool:
    return ConnectionProfile.objects.filter(user=request.user).exists()


def keyless_providers() -> list[str]:
    """The enabled providers whose manifest needs no API key (the first-run card names them). Passed to
    templates uncalled, so pages that show no first-run card never compute it."""
    enabled = plugin_enabled_states()
    configs = [p.manifest.provider_config for p in registry.all() if enabled.get(p.manifest.name, True)]
    return sorted(config.display_name for config in configs if config is not None and not config.requires_api_key)


@login_required
@require_GET
def index(request: HtmxHttpRequest) -> HttpResponse:
    context = {"chats": _chats(request), "has_profile": _has_profile(request), "current_chat": None,
               "keyless_providers": keyless_providers}  # fmt: skip
    if request.htmx:
        return render(request, "chat/index.html#chat-list", context)
    return render(request, "chat/index.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def new(request: HtmxHttpRequest) -> HttpResponse:
    """GET: a blank chat page, saving nothing (a chat nobody wrote in is no chat). POST: the chat, made
    when its first message is about to be sent; the page then opens its socket and sends. A JSON caller
    (the page script) gets ``201 {id, url, ws_path, upload_url}``, a form a redirect to the chat."""
    profile = ConnectionProfile.objects.filter(user=request.user, is_default=True).first()
    # ``?preset=<id>``: the chat starts with the preset's text as its system prompt (and its profile). The
    # page posts back to the address it was opened with, so the choice comes along with the first message.
    preset = preset_for(user=request.user, preset_id=request.GET.get("preset"))
    starting_prompt = preset.text if preset else ""
    profile = (preset.profile if preset else None) or profile
    if request.method == "GET":
        return _page(request, Chat(user=request.user, profile=profile, system_prompt=starting_prompt), preset=preset)
    chosen = request.POST.get("profile_id", "")
    if chosen.isdigit():
        profile = ConnectionProfile.objects.filter(user=request.user, pk=int(chosen)).first() or profile
    chat = services.chat_create(user=request.user, profile=profile, system_prompt=starting_prompt)
    if "application/json" not in request.headers.get("Accept", ""):
        return redirect("chat:detail", chat_id=chat.pk)
    return JsonResponse(
        {
            "id": chat.pk,
            "url": reverse("chat:detail", args=[chat.pk]),
            "ws_path": f"/ws/chats/{chat.pk}/",
            "upload_url": reverse("chat_api:attachment_upload", args=[chat.pk]),
        },
        status=201,
    )


# The chat page shows the newest messages; older ones arrive a page at a time ("Show earlier messages").
HISTORY_PAGE = 100


# The memo of rendered history (bench/page_weight.py clears it to time a cold page).
_message_html = rendering.markdown_of_history


def timeline(
    chat: Chat, *, before: int | None = None, limit: int = HISTORY_PAGE, reach: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Messages and generated images in the order they happened, ready for the template.

    Returns the newest ``limit`` messages of the active branch older than message ``before`` (all the
    newest when None), with the images of that stretch of time, and the cursor of the page before it.
    With ``reach`` (a message of the branch further back, a search result's link), the page goes back
    far enough to hold it.
    """
    # The visible branch only: a regenerated reply or an edit replaces its earlier siblings on screen.
    nodes = services.tree_of([chat.pk]).get(chat.pk, {})
    branch = services.visible_path(nodes)
    if before is not None:
        branch = branch[: branch.index(before)] if before in branch else []
    start = max(len(branch) - limit, 0)
    window = branch[min(start, branch.index(reach)) if reach in branch else start :]
    older = window[0] if len(branch) > len(window) else None
    messages = list(
        Message.objects.filter(pk__in=window)
        .exclude(role=Message.Role.SYSTEM)
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.only("id", "filename", "mime_type", "size"))
        )
    )
    # Each message drawn by the one partial (rendering.message_html), in the shape frames carry it.
    siblings = branches.siblings_of(nodes, window)  # a message with siblings shows its place among them
    items: list[dict[str, Any]] = [
        {"kind": "message", "message": protocol.message_dict(m, siblings=siblings.get(m.pk)), "at": m.created_at}
        for m in messages
    ]
    images = GeneratedImage.objects.filter(chat=chat)
    if older is not None and messages:
        images = images.filter(created_at__gte=messages[0].created_at)
    if before is not None:
        cursor = Message.objects.filter(pk=before).values_list("created_at", flat=True).first()
        images = images.filter(created_at__lt=cursor) if cursor else images.none()
    for image in images:
        items.append(
            {
                "kind": "image",
                "obj": image,
                "at": image.created_at,
                "url": reverse("chat_api:generated_image_file", args=[image.pk]),
            }
        )
    items.sort(key=lambda item: item["at"])
    return items, older


@login_required
@require_GET
def detail(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    return _page(request, get_object_or_404(Chat, pk=chat_id, user=request.user))


def _page(request: HtmxHttpRequest, chat: Chat, *, preset: Preset | None = None) -> HttpResponse:
    """The chat page; for a chat not saved yet (``new``), without history (``preset``: the one it starts from)."""
    # Each profile's plugin status (the picker and the attachment warnings show it) from one query.
    profiles = with_statuses(ConnectionProfile.objects.filter(user=request.user).order_by("-is_default", "name"))
    image_profiles = list(ImageProfile.objects.filter(user=request.user).order_by("-is_default", "name"))
    items, older = timeline(chat) if chat.pk else ([], None)
    selected = chat.profile_id or next((p.pk for p in profiles if p.is_default), None)
    context = {
        "chat": chat,
        "current_chat": chat,
        "chats": _chats(request),
        "timeline": items,
        "older": older,
        "profiles": profiles,
        "selected_profile_id": selected,
        "image_profiles": image_profiles,
        # What each profile's provider and model take: the page refuses other files before uploading.
        "profile_info": attachments.page_rules(profiles),
        "keyless_providers": keyless_providers,
        "presets": Preset.objects.filter(user=request.user).only("id", "name"),
        "preset": preset,
        # What the page script fills with a reply it joins mid-stream: the message partial, for no message yet.
        "placeholder_html": rendering.message_html({"role": "assistant", "status": "streaming"}, retryable=False),
        "blank_call": {"call_id": "", "name": "", "status": "running", "content": "", "duration_ms": None},
        # After this long without a frame while a reply streams, the page reconnects: the process
        # writing the reply may have died, and only a fresh chat.state can say so.
        "silence_limit_s": int(services.stale_after().total_seconds()) + 5,
        **_tools_context(chat),
    }
    return render(request, "chat/chat.html", context)


def _tools_context(chat: Chat, problem: str = "") -> dict[str, Any]:
    """The chat's tool switches: what the enabled tool plugins offer, which are on, and whether the
    chat's model can call tools at all."""
    on = set(services.chat_tools(chat))
    offered = [
        {"name": name, "label": label, "plugin": plugin.manifest.title, "on": name in on}
        for plugin in tool_plugins()
        for name, label in offered_tools(plugin.manifest)
    ]
    plugin = chat.profile.plugin_object if chat.profile else None
    config = plugin.manifest.provider_config if plugin else None
    model_takes = config is None or chat.profile is None or takes_tools(config, chat.profile.model)
    return {"offered_tools": offered, "tools_own": chat.tools is not None, "tools_problem": problem,
            "model_takes_tools": model_takes}  # fmt: skip


@login_required
@require_POST
def tools(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    """Switch the chat's tools: the names ticked, or back to its profile's (``use_profile``)."""
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    names = None if request.POST.get("use_profile") else request.POST.getlist("tool")
    problem = ""
    try:
        chat = services.chat_set_tools(chat, names)
    except ValidationError as exc:
        problem = " ".join(exc.messages)
    if request.htmx:
        context = {"chat": chat, **_tools_context(chat, problem)}
        return render(request, "chat/chat.html#chat-tools", context, status=400 if problem else 200)
    return redirect("chat:detail", chat_id=chat.pk)


@login_required
@require_POST
def system_prompt(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    """Set the chat's system prompt: the text typed, or a preset's ("Use preset…", with its profile)."""
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    preset = preset_for(user=request.user, preset_id=request.POST.get("preset"))
    text = preset.text if preset else request.POST.get("system_prompt", "")
    try:
        services.chat_set_system_prompt(chat, text, profile=preset.profile if preset else None)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("chat:detail", chat_id=chat.pk)


@login_required
@require_GET
def history(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    """htmx: the page of messages before ``?before=<message id>`` (back to ``&to=<message id>`` when that is
    further back: a search result's link), with the button for the page before it."""
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    before = request.GET.get("before", "")
    if not before.isdigit():
        return HttpResponseBadRequest("before=<message id> is required")
    reach = request.GET.get("to", "")
    items, older = timeline(chat, before=int(before), reach=int(reach) if reach.isdigit() else None)
    return render(request, "chat/chat.html#history", {"chat": chat, "timeline": items, "older": older})


@login_required
@require_POST
def rename(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    chat = services.chat_rename(get_object_or_404(Chat, pk=chat_id, user=request.user), request.POST.get("title", ""))
    # Every tab of the chat shows the new title at once (its heading and its list).
    async_to_sync(delivery.send_to_chat)(chat.pk, chat_frames.chat_updated(chat.pk, chat.title))
    if request.htmx:
        current = chat if request.htmx.current_url_abs_path == reverse("chat:detail", args=[chat.pk]) else None
        return render(request, "chat/index.html#chat-item", {"chat": chat, "current_chat": current})
    return redirect("chat:detail", chat_id=chat.pk)


@login_required
@require_POST
def delete(request: HtmxHttpRequest, chat_id: int) -> HttpResponse:
    chat = get_object_or_404(Chat, pk=chat_id, user=request.user)
    page = reverse("chat:detail", args=[chat.pk])
    services.chat_delete(chat, then=delivery.stop_chat)
    if request.htmx:
        if request.htmx.current_url_abs_path == page:
            return HttpResponseClientRedirect(reverse("chat:index"))
        return HttpResponse("")  # the list item is swapped for nothing
    return redirect("chat:index")
