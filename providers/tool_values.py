"""What a user's settings for a tool plugin may hold: the rules of its ``configSchema`` and, for
``qtap-plugin-mcp``, of its ``servers`` list, stated once. Pure functions, no database, no network.

Settings are split on the way in: plain values (stored as JSON) and secrets (encrypted one by one by
``providers.tool_services``). A secret has an *address*: a ``secret`` field's key, or
``servers/<server>/<header>`` for an MCP server's header; the address is not secret (the page shows
"set" beside it), the value is. A blank secret keeps the stored one, so a form never has to show it.

May import: ``providers.manifest``, ``providers.urlpolicy``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from providers.manifest import ConfigField, Manifest
from providers.urlpolicy import validate_base_url

MCP_PLUGIN = "qtap-plugin-mcp"
SERVERS = "servers"
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
SERVER_KEYS = frozenset({"name", "url", "headers", "needs_approval", "previous_name"})
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")  # an HTTP token (RFC 9110)
# Headers the HTTP client itself owns: a user setting them would break or smuggle the request.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-type"})
MAX_SERVERS = 20
MAX_HEADERS = 20
MAX_TEXT = 4000
MAX_LIST_ITEMS = 200
MAX_SECRET = 4096


@dataclass(frozen=True)
class Keep:
    """A secret left blank: keep the one stored at ``address`` (a renamed server's old address)."""

    address: str


@dataclass
class CleanedSettings:
    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str | Keep] = field(default_factory=dict)  # address -> new plaintext, or Keep


def header_address(server: str, header: str) -> str:
    return f"{SERVERS}/{server}/{header}"


def schema_of(manifest: Manifest) -> tuple[ConfigField, ...]:
    """The plugin's settings fields; the MCP plugin's ``servers`` follow their own rule, not a field's."""
    config = manifest.tool_config
    fields = config.config_schema if config is not None else ()
    if manifest.name == MCP_PLUGIN:
        fields = tuple(f for f in fields if f.key != SERVERS)
    return fields


def has_servers(manifest: Manifest) -> bool:
    return manifest.name == MCP_PLUGIN


def defaults(manifest: Manifest) -> dict[str, Any]:
    """Every field's default (secrets have none worth merging: they come only from the user)."""
    found = {f.key: f.default for f in schema_of(manifest) if f.type != "secret" and f.default is not None}
    if has_servers(manifest):
        found[SERVERS] = []
    return found


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _clean_value(spec: ConfigField, value: Any) -> Any:
    """``value`` for a non-secret field, normalised, or ValidationError naming the field."""
    label = spec.label
    if spec.type in ("text", "url"):
        if not isinstance(value, str):
            raise ValidationError({spec.key: f"{label} must be text."})
        value = value.strip()
        if len(value) > MAX_TEXT:
            raise ValidationError({spec.key: f"{label} is at most {MAX_TEXT} characters."})
        if spec.type == "url" and value:
            try:
                value = validate_base_url(value)
            except ValidationError as exc:
                raise ValidationError({spec.key: [f"{label}: {m}" for m in exc.messages]}) from None
        return value
    if spec.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError({spec.key: f"{label} must be a number."})
        return value
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise ValidationError({spec.key: f"{label} must be true or false."})
        return value
    # list: of strings, one per item
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValidationError({spec.key: f"{label} must be a list of text items."})
    items = [item.strip() for item in value if item.strip()]
    if len(items) > MAX_LIST_ITEMS or any(len(item) > MAX_TEXT for item in items):
        raise ValidationError({spec.key: f"{label} holds at most {MAX_LIST_ITEMS} items of {MAX_TEXT} characters."})
    return items


def _clean_secret(label: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError({key: f"{label} must be text."})
    value = value.strip()
    if len(value) > MAX_SECRET or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError({key: f"{label} is at most {MAX_SECRET} characters, without line breaks."})
    return value


def clean_settings(
    manifest: Manifest, values: Mapping[str, Any], *, stored: Mapping[str, Any], stored_secrets: Collection[str]
) -> CleanedSettings:
    """The settings ``values`` make, on top of the ``stored`` plain values and the addresses of the stored
    secrets: a key left out keeps what is stored; ``None`` or blank clears a plain value; a blank secret
    keeps the stored one. Raises ValidationError (one message per field) naming what is wrong."""
    if not isinstance(values, Mapping):
        raise ValidationError("Tool settings must be an object of settings.")
    fields = {f.key: f for f in schema_of(manifest)}
    allowed = set(fields) | ({SERVERS} if has_servers(manifest) else set())
    unknown = sorted(str(key) for key in values if key not in allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValidationError(f"Unknown setting {', '.join(map(repr, unknown))} for {manifest.name} (it has: {known}).")
    errors: dict[str, list[str]] = {}
    cleaned = CleanedSettings(values={k: v for k, v in stored.items() if k in allowed})
    for key, spec in fields.items():
        try:
            if spec.type == "secret":
                new = _clean_secret(spec.label, key, values.get(key) or "")
                if new:
                    cleaned.secrets[key] = new
                elif key in stored_secrets:
                    cleaned.secrets[key] = Keep(key)
                elif spec.required:
                    raise ValidationError({key: f"{spec.label} is required."})
                continue
            if key in values:
                if _blank(values[key]):
                    cleaned.values.pop(key, None)
                else:
                    cleaned.values[key] = _clean_value(spec, values[key])
            if spec.required and _blank(cleaned.values.get(key)):
                raise ValidationError({key: f"{spec.label} is required."})
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if has_servers(manifest):
        old_headers = [address for address in stored_secrets if address.startswith(f"{SERVERS}/")]
        try:
            if SERVERS in values:
                cleaned.values[SERVERS] = clean_servers(values[SERVERS], stored_headers=old_headers, into=cleaned)
            else:  # the servers stay as stored, their headers too
                cleaned.secrets.update({address: Keep(address) for address in old_headers})
        except ValidationError as exc:
            errors.setdefault(SERVERS, []).extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_servers(servers: Any, *, stored_headers: Iterable[str], into: CleanedSettings) -> list[dict[str, Any]]:
    """The MCP servers a user keeps, each ``{name, url, headers, needs_approval}``: names unique (case
    aside), ``[A-Za-z0-9_-]``, at most 24 characters; URLs pass the outbound URL policy; header values
    are secrets (a blank one keeps the stored value of that header on that server, or on the server it
    was renamed from, ``previous_name``). Plain values list each server's header names only."""
    if not isinstance(servers, list | tuple):
        raise ValidationError("servers must be a list of servers.")
    if len(servers) > MAX_SERVERS:
        raise ValidationError(f"At most {MAX_SERVERS} MCP servers.")
    stored = set(stored_headers)
    seen: set[str] = set()
    kept = []
    for number, server in enumerate(servers, start=1):
        if not isinstance(server, Mapping):
            raise ValidationError(f"Server #{number} must be an object with a name and a URL.")
        unknown = sorted(str(key) for key in server if key not in SERVER_KEYS)
        if unknown:
            raise ValidationError(f"Server #{number}: unknown key {', '.join(map(repr, unknown))}.")
        name = server.get("name")
        name = name.strip() if isinstance(name, str) else ""
        if not SERVER_NAME.match(name):
            raise ValidationError(
                f"Server #{number}: a name is 1 to 24 letters, digits, '-' or '_' (got {name or 'nothing'!r})."
            )
        if name.lower() in seen:
            raise ValidationError(f"There is already a server named {name!r}; names are unique.")
        seen.add(name.lower())
        url = server.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValidationError(f"Server {name!r} needs a URL.")
        try:
            url = validate_base_url(url)
        except ValidationError as exc:
            raise ValidationError([f"Server {name!r}: {m}" for m in exc.messages]) from None
        approval = server.get("needs_approval", True)
        if not isinstance(approval, bool):
            raise ValidationError(f"Server {name!r}: needs_approval must be true or false.")
        previous = server.get("previous_name")
        old_name = previous.strip() if isinstance(previous, str) and previous.strip() else name
        headers = server.get("headers") or {}
        if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS:
            raise ValidationError(f"Server {name!r}: headers must be at most {MAX_HEADERS} name: value pairs.")
        header_names: list[str] = []
        for header, value in headers.items():
            header = header.strip() if isinstance(header, str) else ""
            if not HEADER_NAME.match(header) or header.lower() in RESERVED_HEADERS:
                raise ValidationError(f"Server {name!r}: {header or 'an empty name'!r} is not a header you can set.")
            if header.lower() in {h.lower() for h in header_names}:
                raise ValidationError(f"Server {name!r}: the header {header!r} is given twice.")
            secret = _clean_secret(f"Header {header}", SERVERS, value or "")
            if secret:
                into.secrets[header_address(name, header)] = secret
            elif header_address(old_name, header) in stored:
                into.secrets[header_address(name, header)] = Keep(header_address(old_name, header))
            else:
                raise ValidationError(f"Server {name!r}: the header {header!r} has no value.")
            header_names.append(header)
        kept.append({"name": name, "url": url, "headers": sorted(header_names), "needs_approval": approval})
    return kept


def server_named(values: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The stored plain entry of one MCP server (its header names, not their values), or None."""
    return next((dict(s) for s in values.get(SERVERS) or () if s.get("name") == name), None)


def offered_tools(manifest: Manifest) -> list[tuple[str, str]]:
    """What a profile can switch on of one tool plugin, (name, label): its static tools, and for one whose
    tools come from elsewhere (``dynamicTools``) the plugin as a whole, meaning all its tools."""
    config = manifest.tool_config
    if config is None:
        return []
    offered = [(tool.name, tool.display_name) for tool in config.tools]
    if config.dynamic_tools:
        offered.append((manifest.name, f"All tools of {manifest.title}"))
    return offered


def unknown_tools(names: Iterable[str], manifests: Iterable[Manifest]) -> str | None:
    """Why ``names`` (a profile's ``tools``) are not all tools of the enabled tool plugins ``manifests``
    (a plugin's own name stands for all its tools), or None."""
    known = {name for manifest in manifests for name, _ in [(manifest.name, ""), *offered_tools(manifest)]}
    missing = [name for name in names if name not in known]
    if not missing:
        return None
    offered = ", ".join(sorted(known)) or "none: no tool plugin is enabled"
    return f"Unknown tool {', '.join(map(repr, missing))}: not a tool of an enabled tool plugin (offered: {offered})."


def servers_as_stored(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored MCP servers in the shape ``clean_servers`` takes, every header blank (kept as stored):
    what a change to one server sends along for the others."""
    return [
        {
            "name": server["name"],
            "url": server["url"],
            "headers": dict.fromkeys(server.get("headers") or (), ""),
            "needs_approval": bool(server.get("needs_approval", True)),
        }
        for server in values.get(SERVERS) or ()
    ]
