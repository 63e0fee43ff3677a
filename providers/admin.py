"""Admin for keys, profiles, tool settings and plugin switches.

Secrets are write-only here (as in the settings pages): the form's secret field never renders a value,
``encrypted_secret`` is in no form, column, search or filter, and lookups on it are refused, so it cannot
be probed through changelist URLs either. Tool settings are shown, never edited here (their form is the
user's Tools page): their secrets appear by address with "set", never by value or ciphertext.

May import: ``providers.forms``, ``providers.models``, ``providers.registry``, ``providers.services``; every
write goes through the services.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from providers import services
from providers.forms import ApiKeyForm, ConnectionProfileForm, ImageProfileForm, plugin_choices
from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState, ProfileBase, ToolSettings
from providers.registry import registry
from providers.services import test_connection

SECRET_FIELDS = ("encrypted_secret", "encrypted_secrets")


def _touches_secret(lookup: str) -> bool:
    return any(part in SECRET_FIELDS for part in lookup.split("__"))


class _NoSecretLookups:
    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if _touches_secret(lookup):
            return False
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]


class _TestConnectionAction:
    @admin.action(description="Test connection")
    def test_connection_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            result = async_to_sync(test_connection)(obj)
            if result.ok:
                self.message_user(request, f"{obj}: {result.message}", messages.SUCCESS)  # type: ignore[attr-defined]
            else:
                self.message_user(  # type: ignore[attr-defined]
                    request, f"{obj}: connection failed ({result.code}): {result.message}", messages.ERROR
                )


def _plugin_label(name: str) -> str:
    plugin = registry.find(name)
    config = plugin.manifest.provider_config if plugin else None
    return config.display_name if config else f"{name} (unavailable)"


class ApiKeyAdminForm(ApiKeyForm):
    class Meta(ApiKeyForm.Meta):
        fields = ("user", "plugin", "label", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # One "Secret" row: the stored key is named by its last four beside the (empty) field to replace it.
            self.fields["secret"].help_text = f"Stored: {self.instance.masked}. Leave empty to keep the stored secret."


@admin.register(ApiKey)
class ApiKeyAdmin(_NoSecretLookups, _TestConnectionAction, admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ("label", "user", "provider", "masked_secret", "is_active", "last_used_at", "updated_at")
    list_filter = ("is_active", "plugin")
    list_select_related = ("user",)
    search_fields = ("label", "plugin", "user__username")
    readonly_fields = ("last_used_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("user", "plugin", "label", "secret", "is_active")}),
        ("History", {"fields": ("last_used_at", "created_at", "updated_at")}),
    )
    actions = ("test_connection_action", "disable_keys")

    @admin.display(description="Provider", ordering="plugin")
    def provider(self, obj: ApiKey) -> str:
        return _plugin_label(obj.plugin)

    @admin.display(description="Secret")
    def masked_secret(self, obj: ApiKey) -> str:
        return obj.masked if obj.pk else "—"

    @admin.action(description="Disable selected keys")
    def disable_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset)
        for key in keys:
            services.api_key_set_active(api_key=key, is_active=False)
        self.message_user(request, f"Disabled {len(keys)} key(s).", messages.SUCCESS)

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        services.api_key_delete(api_key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.api_key_delete(api_key=key)

    @method_decorator(sensitive_post_parameters("secret"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        # ``obj`` is the key the form validated (new or stored); the services encrypt its secret and save it.
        key = services.api_key_update(api_key=obj, secret=form.cleaned_data.get("secret") or None)
        for warning in key.warnings:
            self.message_user(request, warning, messages.WARNING)


class ConnectionProfileAdminForm(ConnectionProfileForm):
    any_user_keys = True

    class Meta(ConnectionProfileForm.Meta):
        fields = ("user", *ConnectionProfileForm.Meta.fields)


class ImageProfileAdminForm(ImageProfileForm):
    any_user_keys = True

    class Meta(ImageProfileForm.Meta):
        fields = ("user", *ImageProfileForm.Meta.fields)


class _ProfileAdmin(_NoSecretLookups, _TestConnectionAction, admin.ModelAdmin):
    list_display = ("name", "user", "provider", "model", "status", "is_default", "updated_at")
    list_filter = ("plugin", "is_default")
    list_select_related = ("user", "api_key")
    search_fields = ("name", "model", "plugin", "user__username")
    readonly_fields = ("created_at", "updated_at")
    actions = ("test_connection_action",)

    @admin.display(description="Provider", ordering="plugin")
    def provider(self, obj: ProfileBase) -> str:
        return _plugin_label(obj.plugin)

    @admin.display(description="Status")
    def status(self, obj: ProfileBase) -> str:
        return obj.status

    def save_model(self, request: HttpRequest, obj: ProfileBase, form: forms.ModelForm, change: bool) -> None:
        services.profile_update(profile=obj)  # the profile the form validated, new or stored

    def delete_model(self, request: HttpRequest, obj: ProfileBase) -> None:
        services.profile_delete(profile=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for profile in queryset:
            services.profile_delete(profile=profile)


@admin.register(ConnectionProfile)
class ConnectionProfileAdmin(_ProfileAdmin):
    form = ConnectionProfileAdminForm


@admin.register(ImageProfile)
class ImageProfileAdmin(_ProfileAdmin):
    form = ImageProfileAdminForm


@admin.register(ToolSettings)
class ToolSettingsAdmin(_NoSecretLookups, admin.ModelAdmin):
    list_display = ("plugin", "user", "stored_secrets", "updated_at")
    list_filter = ("plugin",)
    list_select_related = ("user",)
    search_fields = ("plugin", "user__username")
    fields = ("user", "plugin", "values", "stored_secrets", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="Secrets")
    def stored_secrets(self, obj: ToolSettings) -> str:
        return ", ".join(f"{address}: set" for address in sorted(obj.encrypted_secrets)) or "none"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # settings are validated against their plugin's schema: users write them on the Tools page

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PluginStateForm(forms.ModelForm):
    class Meta:
        model = PluginState
        fields = ("name", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.name if self.instance.pk else ""
        # Providers and tool plugins alike are switched here.
        choices: list[tuple[str, str]] = plugin_choices(current=current)
        choices += [(p.manifest.name, p.manifest.title) for p in registry.all() if p.manifest.provider_config is None]
        choices.sort(key=lambda choice: choice[1].lower())
        self.fields["name"] = forms.ChoiceField(label="Plugin", choices=choices)


@admin.register(PluginState)
class PluginStateAdmin(admin.ModelAdmin):
    form = PluginStateForm
    list_display = ("name", "enabled", "updated_at")
    list_editable = ("enabled",)
    actions = ("enable_plugins", "disable_plugins")

    @admin.action(description="Enable selected plugins")
    def enable_plugins(self, request: HttpRequest, queryset: QuerySet[PluginState]) -> None:
        count = queryset.update(enabled=True, updated_at=timezone.now())
        self.message_user(request, f"Enabled {count} plugin(s).", messages.SUCCESS)

    @admin.action(description="Disable selected plugins")
    def disable_plugins(self, request: HttpRequest, queryset: QuerySet[PluginState]) -> None:
        count = queryset.update(enabled=False, updated_at=timezone.now())
        self.message_user(request, f"Disabled {count} plugin(s).", messages.SUCCESS)
