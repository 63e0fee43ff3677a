"""Forms of the Tools settings page: a tool plugin's configSchema as a form, and one MCP server.

They turn what was posted into the values ``services.tool_settings_update`` takes, which validates and
writes (the forms add its refusals to their fields). Secrets are write-only: ``PasswordInput`` that is
never filled back in, "set" beside a stored one, and a blank one keeps it.

May import: ``providers.manifest``, ``providers.models``, ``providers.tool_values``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from providers.manifest import ConfigField, Manifest
from providers.models import ToolSettings
from providers.tool_values import MAX_SECRET, MAX_TEXT, SERVER_NAME, schema_of, server_named

KEEP_STORED_HELP = "Stored (set). Leave empty to keep it."


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"})


def _field(spec: ConfigField, *, stored_secret: bool) -> forms.Field:
    common: dict[str, Any] = {"label": spec.label, "help_text": spec.description, "required": spec.required}
    if spec.type == "secret":
        common["required"] = spec.required and not stored_secret
        if stored_secret:
            common["help_text"] = f"{spec.description} {KEEP_STORED_HELP}".strip()
        return forms.CharField(max_length=MAX_SECRET, widget=_secret_input(), strip=True, **common)
    if spec.type == "number":
        return forms.FloatField(**common)
    if spec.type == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    if spec.type == "list":
        help_text = f"{spec.description} One per line.".strip()
        return forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), **{**common, "help_text": help_text})
    widget = forms.URLInput() if spec.type == "url" else forms.TextInput()
    return forms.CharField(max_length=MAX_TEXT, widget=widget, **common)


class ToolSettingsForm(forms.Form):
    """The configSchema of ``manifest`` (its ``servers``, for MCP, have their own form)."""

    def __init__(self, manifest: Manifest, row: ToolSettings | None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_{manifest.name}_%s")
        super().__init__(*args, **kwargs)
        self.manifest = manifest
        self.schema = {spec.key: spec for spec in schema_of(manifest)}
        stored = row.values if row else {}
        self.stored_secrets = set(row.encrypted_secrets) if row else set()
        for key, spec in self.schema.items():
            field = _field(spec, stored_secret=key in self.stored_secrets)
            if spec.type != "secret":
                value = stored.get(key, spec.default)
                field.initial = "\n".join(value) if spec.type == "list" and isinstance(value, list) else value
            self.fields[key] = field

    def values(self) -> dict[str, Any]:
        """What was posted, in the types the configSchema names (an empty secret keeps the stored one)."""
        values: dict[str, Any] = {}
        for key, spec in self.schema.items():
            value = self.cleaned_data.get(key)
            if spec.type == "list":
                value = [line.strip() for line in (value or "").splitlines() if line.strip()]
            elif spec.type == "number" and isinstance(value, float) and value.is_integer():
                value = int(value)  # 1000, not 1000.0, for a setting such as max_bytes
            values[key] = value
        return values

    def add_refusal(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        for key, messages in exc.message_dict.items():
            self.add_error(key if key in self.fields else None, messages)


class ServerForm(forms.Form):
    """One MCP server: a new one, or a stored one (``previous_name``) whose headers are listed by name
    only, each with a blank value field (keep) and a remove box."""

    previous_name = forms.CharField(required=False, widget=forms.HiddenInput())
    name = forms.CharField(max_length=24, help_text="Letters, digits, '-' and '_'; at most 24 characters.")
    url = forms.CharField(label="URL", max_length=MAX_TEXT, widget=forms.URLInput())
    needs_approval = forms.BooleanField(
        required=False, initial=True, label="Ask me before each call", help_text="Recommended."
    )
    new_header_name = forms.CharField(required=False, max_length=100, label="Add a header")
    new_header_value = forms.CharField(required=False, max_length=MAX_SECRET, label="Its value", widget=_secret_input())

    def __init__(self, *args: Any, stored: dict[str, Any] | None = None, editing: str = "", **kwargs: Any) -> None:
        """``stored``: the settings' stored values; ``editing``: the name of the server being edited."""
        kwargs.setdefault("auto_id", f"id_server_{editing or 'new'}_%s")
        super().__init__(*args, **kwargs)
        server = server_named(stored or {}, editing) if editing else None
        self.server = server
        self.header_names: list[str] = list(server.get("headers") or ()) if server else []
        if server is not None and not self.is_bound:
            self.initial.update({"previous_name": server["name"], "name": server["name"], "url": server["url"]})
            self.initial["needs_approval"] = server.get("needs_approval", True)
        for number, header in enumerate(self.header_names):
            self.fields[f"header_{number}"] = forms.CharField(
                required=False, label=header, widget=_secret_input(), max_length=MAX_SECRET, help_text=KEEP_STORED_HELP
            )
            self.fields[f"remove_header_{number}"] = forms.BooleanField(required=False, label=f"Remove {header}")

    def main_fields(self) -> list[Any]:
        return [self[name] for name in ("name", "url", "needs_approval")]

    def header_rows(self) -> list[tuple[str, Any, Any]]:
        return [
            (header, self[f"header_{number}"], self[f"remove_header_{number}"])
            for number, header in enumerate(self.header_names)
        ]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not SERVER_NAME.match(name):
            raise ValidationError("A name is 1 to 24 letters, digits, '-' or '_'.")
        return name

    def server_values(self) -> dict[str, Any]:
        """The server as ``tool_settings_update`` takes it: kept headers blank (their stored values stay)."""
        data = self.cleaned_data
        headers = {
            header: data.get(f"header_{number}") or ""
            for number, header in enumerate(self.header_names)
            if not data.get(f"remove_header_{number}")
        }
        if data.get("new_header_name"):
            headers[data["new_header_name"].strip()] = data.get("new_header_value") or ""
        server = {
            "name": data["name"],
            "url": data["url"],
            "headers": headers,
            "needs_approval": data["needs_approval"],
        }
        if self.server is not None:
            server["previous_name"] = self.server["name"]
        return server
