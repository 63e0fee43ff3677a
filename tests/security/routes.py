"""Every URL route of the site, found by walking the URL resolver, with concrete URLs naming alice's objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

OBJECT_PARAMS = frozenset({"chat_id", "key_id", "profile_id", "attachment_id", "image_id", "import_id"})
# A tool plugin's settings and its MCP servers are named, not numbered, and always the requester's own.
KNOWN_PARAMS = OBJECT_PARAMS | {"kind", "name", "plugin", "server"}


@dataclass(frozen=True)
class Endpoint:
    name: str  # namespaced URL name
    route: str
    params: tuple[str, ...]

    @property
    def names_objects(self) -> bool:
        return bool(OBJECT_PARAMS & set(self.params))


def _params(pattern: URLPattern) -> tuple[str, ...]:
    converters = getattr(pattern.pattern, "converters", None)
    if converters is not None:
        return tuple(converters)
    return tuple(pattern.pattern.regex.groupindex)


def site_endpoints() -> list[Endpoint]:
    """Every named route outside the admin (the admin is walked through its model registry)."""
    found: list[Endpoint] = []

    def walk(patterns: list[Any], namespace: str, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = namespace
                if entry.namespace:
                    inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
                if inner == "admin":
                    continue
                walk(entry.url_patterns, inner, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                if entry.name is None:
                    raise AssertionError(f"route {route!r} has no name: the security walk cannot reverse it")
                name = f"{namespace}:{entry.name}" if namespace else entry.name
                found.append(Endpoint(name, route, _params(entry)))

    walk(get_resolver().url_patterns, "", "/")
    return found


def concrete_urls(endpoint: Endpoint, ids: dict[str, Any], image_profile_id: int) -> list[str]:
    """The URLs of ``endpoint`` naming alice's objects (one per profile kind where there is a kind)."""
    unknown = set(endpoint.params) - KNOWN_PARAMS
    if unknown:
        raise AssertionError(
            f"{endpoint.name} ({endpoint.route}) takes {sorted(unknown)}: teach tests/security/routes.py "
            "which object of alice's to put there"
        )
    kinds = ["chat", "image"] if "kind" in endpoint.params else [None]
    urls = []
    for kind in kinds:
        kwargs: dict[str, Any] = {}
        for param in endpoint.params:
            if param == "kind":
                kwargs["kind"] = kind
            elif param == "name":
                kwargs["name"] = "qtap-plugin-openai"
            elif param == "plugin":
                kwargs["plugin"] = "qtap-plugin-mcp"
            elif param == "server":
                kwargs["server"] = "local"
            elif param == "profile_id" and (kind == "image" or "image" in endpoint.name):
                kwargs["profile_id"] = image_profile_id
            else:
                kwargs[param] = ids[param]
        urls.append(reverse(endpoint.name, kwargs=kwargs))
    return urls


def admin_urls(object_ids: dict[type, int]) -> list[str]:
    """The admin index, each app index, and every registered model's list, add, change, delete and history."""
    urls = [reverse("admin:index")]
    apps = set()
    for model in admin.site._registry:
        app_label, model_name = model._meta.app_label, model._meta.model_name
        apps.add(app_label)
        urls.append(reverse(f"admin:{app_label}_{model_name}_changelist"))
        urls.append(reverse(f"admin:{app_label}_{model_name}_add"))
        object_id = object_ids.get(model, 1)
        for view in ("change", "delete", "history"):
            urls.append(reverse(f"admin:{app_label}_{model_name}_{view}", args=[object_id]))
    urls += [reverse("admin:app_list", kwargs={"app_label": label}) for label in sorted(apps)]
    return urls
