"""The Tools settings page: each enabled tool plugin, its tools, its settings form, and (MCP) its servers
with a Test button.

Thin views: ``providers.tool_forms`` reads what was posted, ``providers.services`` validates and writes;
every row is the signed-in user's (``providers.tool_settings``), so another user's settings are never
read. Every change is a POST (CSRF-checked); a GET changes nothing. Secrets never come back to the page.

May import: ``providers.models``, ``providers.services``, ``providers.tool_forms``, ``providers.tool_settings``,
``providers.tool_values``.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from providers import services
from providers.models import ToolSettings
from providers.tool_forms import ServerForm, ToolSettingsForm
from providers.tool_settings import tool_plugins, tool_settings_row
from providers.tool_values import SERVERS, has_servers, header_address, servers_as_stored


def _plugin(name: str) -> Any:
    """An enabled tool plugin by its name, else 404 (a disabled one has no settings page)."""
    found = next((p for p in tool_plugins() if p.manifest.name == name), None)
    if found is None:
        raise Http404("No such tool plugin")
    return found


def _servers(row: ToolSettings | None) -> list[dict[str, Any]]:
    """The stored servers as the page shows them: header names, and whether each has a stored value."""
    if row is None:
        return []
    return [
        {
            **server,
            "headers": [(h, header_address(server["name"], h) in row.encrypted_secrets) for h in server["headers"]],
            "form": ServerForm(stored=row.values, editing=server["name"]),
        }
        for server in row.values.get(SERVERS) or ()
    ]


def _cards(request: HttpRequest, bound: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One card per enabled tool plugin; ``bound`` puts a posted (refused) form in its plugin's card."""
    cards = []
    for plugin in tool_plugins():
        manifest = plugin.manifest
        row = tool_settings_row(request.user, manifest.name)
        card: dict[str, Any] = {
            "manifest": manifest,
            "config": manifest.tool_config,
            "form": ToolSettingsForm(manifest, row),
            "servers": _servers(row) if has_servers(manifest) else None,
            "server_form": ServerForm(stored=row.values if row else {}) if has_servers(manifest) else None,
        }
        if bound and bound["plugin"] == manifest.name:
            if "form" in bound:
                card["form"] = bound["form"]
            edited = next((s for s in card["servers"] or () if s["name"] == bound.get("editing")), None)
            if "server_form" in bound and edited is not None:  # a refused edit, in the row it edits
                edited["form"] = bound["server_form"]
            elif "server_form" in bound:  # a refused new server, under "Add a server"
                card["server_form"] = bound["server_form"]
        cards.append(card)
    return cards


def _page(request: HttpRequest, bound: dict[str, Any] | None = None) -> HttpResponse:
    status = 400 if bound else 200
    return render(request, "providers/tools.html", {"cards": _cards(request, bound)}, status=status)


@login_required
@require_GET
def tools(request: HttpRequest) -> HttpResponse:
    return _page(request)


@login_required
@require_POST
@sensitive_post_parameters()
def tool_settings_save(request: HttpRequest, plugin: str) -> HttpResponse:
    manifest = _plugin(plugin).manifest
    form = ToolSettingsForm(manifest, tool_settings_row(request.user, manifest.name), request.POST)
    if form.is_valid():
        try:
            services.tool_settings_update(user=request.user, plugin=manifest.name, values=form.values())
        except ValidationError as exc:
            form.add_refusal(exc)
        else:
            messages.success(request, f"{manifest.title} settings saved.")
            return redirect("providers:tools")
    return _page(request, {"plugin": manifest.name, "form": form})


@login_required
@require_POST
@sensitive_post_parameters()
def tool_server_save(request: HttpRequest, plugin: str) -> HttpResponse:
    """Add a server, or change the one named by ``previous_name``; the others stay as they are."""
    manifest = _plugin(plugin).manifest
    if not has_servers(manifest):
        raise Http404("This tool plugin has no servers")
    row = tool_settings_row(request.user, manifest.name)
    stored = row.values if row else {}
    editing = request.POST.get("previous_name", "")
    form = ServerForm(request.POST, stored=stored, editing=editing)
    if form.is_valid():
        servers = servers_as_stored(stored)
        names = [s["name"] for s in servers]
        if form.server is not None:  # the edited one keeps its place in the list
            servers[names.index(form.server["name"])] = form.server_values()
        else:
            servers.append(form.server_values())
        try:
            services.tool_settings_update(user=request.user, plugin=manifest.name, values={SERVERS: servers})
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Server {form.cleaned_data['name']} saved.")
            return redirect("providers:tools")
    return _page(request, {"plugin": manifest.name, "server_form": form, "editing": editing})


@login_required
@require_POST
def tool_server_delete(request: HttpRequest, plugin: str, server: str) -> HttpResponse:
    manifest = _plugin(plugin).manifest
    row = tool_settings_row(request.user, manifest.name)
    servers = servers_as_stored(row.values if row else {})
    if not has_servers(manifest) or server not in [s["name"] for s in servers]:
        raise Http404("No such server")
    kept = [s for s in servers if s["name"] != server]
    services.tool_settings_update(user=request.user, plugin=manifest.name, values={SERVERS: kept})
    messages.success(request, f"Server {server} removed.")
    return redirect("providers:tools")


@login_required
@require_POST
async def tool_server_test(request: HttpRequest, plugin: str, server: str) -> HttpResponse:
    """Connect to one of the user's servers and list its tools (or say why not); a POST: it uses the
    server's stored headers, which go to that server's URL only."""
    user = await request.auser()
    result = await services.tool_server_test(user=user, plugin=plugin, server=server)
    return await sync_to_async(render)(request, "providers/tools.html#server-test", {"result": result})
