"""Stored API keys, connection profiles, image profiles, tool settings and plugin enable/disable state.

``plugin`` is a plain CharField validated against the registry in ``clean()`` (no ``choices=``), so a
new plugin needs no migration, and a profile whose plugin is gone keeps its value and shows
"provider unavailable" instead of being dropped.

May import: ``providers.crypto``, ``providers.parameters``, ``providers.reasoning``, ``providers.registry``,
``providers.tool_values``, ``providers.urlpolicy``, and for types only ``providers.contract``,
``providers.manifest``; never the services, selectors, forms or views that use them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, router, transaction

from providers import crypto
from providers.parameters import ChatParameters, ImageParameters, validate_parameters
from providers.reasoning import parameter_problems, tools_problem
from providers.registry import registry
from providers.tool_values import unknown_tools
from providers.urlpolicy import validate_base_url

if TYPE_CHECKING:  # pragma: no cover - typing only
    from providers.contract import ProviderPlugin
    from providers.manifest import Manifest
    from providers.parameters import _Strict

ProfileStatus = Literal["ok", "provider unavailable", "provider disabled"]
LAST4_MIN_SECRET_LENGTH = 8  # shorter secrets show no tail at all: four characters would give most of it away


def canonical_plugin_name(name: str) -> str:
    """A plugin's registered name for any of its names (plugin, providerName, legacy); else ``name``."""
    plugin = registry.find(name) if name else None
    return plugin.manifest.name if plugin else name


def _unknown_plugin_message(name: str) -> str:
    available = ", ".join(sorted(registry.names())) or "none"
    return f"Unknown provider {name!r}. Available providers: {available}."


class PluginStateManager(models.Manager["PluginState"]):
    """The one answer to "is this plugin enabled?": a stored row, else the manifest's ``enabledByDefault``.

    Read at the moment of use, never cached and never in ``AppConfig.ready()``, so an operator who
    disables a plugin is obeyed by the next request of every process. Callers that judge many profiles
    at once fetch ``enabled_states()`` once (one query) and pass it on.
    """

    def is_enabled(self, manifest: Manifest) -> bool:
        stored = self.filter(name=manifest.name).values_list("enabled", flat=True).first()
        return manifest.enabled_by_default if stored is None else bool(stored)

    async def ais_enabled(self, manifest: Manifest) -> bool:
        stored = await self.filter(name=manifest.name).values_list("enabled", flat=True).afirst()
        return manifest.enabled_by_default if stored is None else bool(stored)

    def enabled_states(self, manifests: list[Manifest] | None = None) -> dict[str, bool]:
        """Every loaded plugin's state (or those of ``manifests``), by plugin name, in one query."""
        if manifests is None:
            manifests = [plugin.manifest for plugin in registry.all()]
        stored = dict(self.filter(name__in=[m.name for m in manifests]).values_list("name", "enabled"))
        return {m.name: bool(stored.get(m.name, m.enabled_by_default)) for m in manifests}


class PluginState(models.Model):
    """Enable/disable of a plugin, kept in the database so it survives restarts and is shared by processes.

    Written through providers.plugin_state; read through ``PluginState.objects`` (no row means the
    manifest's enabledByDefault).
    """

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[PluginStateManager] = PluginStateManager()

    class Meta:
        ordering = ("name",)
        verbose_name = "plugin state"

    def __str__(self) -> str:
        return f"{self.name} ({'enabled' if self.enabled else 'disabled'})"


def enabled_tool_plugins() -> list[ProviderPlugin[Manifest]]:
    """The loaded TOOL_PROVIDER plugins that are enabled, by name (one query): the one answer to "which
    tools can be offered?" for profiles, the settings page and the chat's tool loop."""
    plugins = [plugin for plugin in registry.all() if plugin.manifest.is_tool_provider]
    enabled = PluginState.objects.enabled_states([plugin.manifest for plugin in plugins])
    return sorted((p for p in plugins if enabled[p.manifest.name]), key=lambda p: p.manifest.name)


def plugin_status(name: str, enabled: dict[str, bool] | None = None) -> ProfileStatus:
    """A profile's or key's plugin as a person sees it; ``enabled`` preloaded saves the query."""
    plugin = registry.find(name) if name else None
    if plugin is None:
        return "provider unavailable"
    manifest = plugin.manifest
    is_enabled = enabled[manifest.name] if enabled and manifest.name in enabled else None
    if is_enabled is None:
        is_enabled = PluginState.objects.is_enabled(manifest)
    return "ok" if is_enabled else "provider disabled"


class ApiKey(models.Model):
    known_status: ProfileStatus | None = None  # set for many rows at once by selectors.with_statuses
    warnings: list[str]  # set by providers.services when it writes the key: remarks that did not refuse it

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    plugin = models.CharField(max_length=100, db_index=True)
    label = models.CharField(max_length=100)
    # Fernet token from providers.crypto; never shown, never searchable.
    encrypted_secret = models.TextField(editable=False)
    last4 = models.CharField(max_length=4, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What the legacy -> plugin migration changed on this row, so that it can be undone exactly.
    migrated_from = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("plugin", "label", "id")
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.label} ({self.plugin}, {self.masked})"

    def __repr__(self) -> str:
        return f"<ApiKey {self.pk} user={self.user_id} plugin={self.plugin!r} label={self.label!r} {self.masked}>"

    @property
    def masked(self) -> str:
        return f"…{self.last4}" if self.last4 else "…"

    def set_secret(self, secret: str) -> None:
        """Encrypt ``secret`` into this row (not saved) and remember its last four characters."""
        self.encrypted_secret = crypto.encrypt(secret)
        self.last4 = secret[-4:] if len(secret) >= LAST4_MIN_SECRET_LENGTH else ""

    def get_secret(self) -> str:
        """The decrypted secret. Raises ``crypto.DecryptionError`` when no configured key opens it."""
        if not self.encrypted_secret:
            raise crypto.DecryptionError(f"API key {self.pk} has no stored secret")
        return crypto.decrypt(self.encrypted_secret)

    @property
    def plugin_object(self) -> ProviderPlugin[Manifest] | None:
        return registry.find(self.plugin) if self.plugin else None

    @property
    def status(self) -> ProfileStatus:
        return self.known_status or plugin_status(self.plugin)

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        """The fields' own checks, and a stored secret unless ``encrypted_secret`` is excluded: a form
        takes the secret in clear and excludes it (the services encrypt it when they write the key)."""
        errors: dict[str, Any] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "encrypted_secret" not in (exclude or ()) and not self.encrypted_secret:
            errors.setdefault(NON_FIELD_ERRORS, []).append("Enter the secret of this API key.")
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        plugin = registry.find(self.plugin) if self.plugin else None
        if self.plugin and plugin is None:
            raise ValidationError({"plugin": _unknown_plugin_message(self.plugin)})
        if plugin is not None and plugin.manifest.provider_config is None:
            raise ValidationError({"plugin": f"{plugin.manifest.name} is not a provider: it takes no API key."})
        if plugin is not None:
            self.plugin = plugin.manifest.name


class ProfileBase(models.Model):
    """What connection and image profiles share: a plugin, a key, a base URL, a model and parameters."""

    known_status: ProfileStatus | None = None  # set for many rows at once by selectors.with_statuses

    name = models.CharField(max_length=100)
    plugin = models.CharField(max_length=100, db_index=True)
    base_url = models.CharField(max_length=500, blank=True, default="")
    model = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    migrated_from = models.JSONField(null=True, blank=True, editable=False)

    # set by subclasses
    user_id: Any
    api_key_id: Any
    parameters_schema: ClassVar[type[_Strict]]
    kind: ClassVar[str] = "profile"

    class Meta:
        abstract = True
        ordering = ("name", "id")

    def __str__(self) -> str:
        return f"{self.name} ({self.plugin} · {self.model})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # One default per user: making this one the default unsets the others in the same transaction.
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            if self.is_default:
                others = type(self)._default_manager.filter(is_default=True).exclude(pk=self.pk)
                others.filter(**{"user_id": self.user_id}).update(is_default=False)
            super().save(*args, **kwargs)

    @property
    def plugin_object(self) -> ProviderPlugin[Manifest] | None:
        return registry.find(self.plugin) if self.plugin else None

    @property
    def plugin_available(self) -> bool:
        return self.plugin_object is not None

    @property
    def status(self) -> ProfileStatus:
        """One of "ok", "provider unavailable" (plugin missing or failed) or "provider disabled" (switched off).

        Pages that list many rows set ``known_status`` for all of them in one query
        (``providers.selectors.with_statuses``); a row on its own asks the database.
        """
        return self.known_status or plugin_status(self.plugin)

    @property
    def effective_base_url(self) -> str | None:
        """The profile's base URL, else the manifest default, else None."""
        if self.base_url:
            return self.base_url
        plugin = self.plugin_object
        config = plugin.manifest.provider_config if plugin else None
        return config.base_url_default if config else None

    def _check_plugin(self, plugin: ProviderPlugin[Manifest]) -> list[str]:
        if plugin.manifest.provider_config is None:
            return [f"{plugin.manifest.name} is not a chat provider."]
        return []

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        plugin = registry.find(self.plugin) if self.plugin else None
        if self.plugin and plugin is None:
            add("plugin", _unknown_plugin_message(self.plugin))
        config = None
        if plugin is not None:
            self.plugin = plugin.manifest.name
            for problem in self._check_plugin(plugin):
                add("plugin", problem)
            config = plugin.manifest.provider_config

        key: ApiKey | None = getattr(self, "api_key", None) if self.api_key_id else None
        if key is not None:
            if self.user_id is not None and key.user_id != self.user_id:
                add("api_key", "This API key belongs to another user.")
            elif plugin is not None and canonical_plugin_name(key.plugin) != plugin.manifest.name:
                add(
                    "api_key",
                    f"This API key is for {key.plugin}, but the profile uses {plugin.manifest.name}. "
                    "Choose a key of the same provider.",
                )

        self.base_url = (self.base_url or "").strip()
        if config is not None and config.requires_base_url and not self.base_url:
            if config.base_url_default:
                self.base_url = config.base_url_default
            else:
                add("base_url", f"{config.display_name} needs a base URL ({config.base_url_label}).")
        if self.base_url:
            try:
                self.base_url = validate_base_url(self.base_url)
            except ValidationError as exc:
                for message in exc.messages:
                    add("base_url", message)

        try:
            self.parameters = validate_parameters(self.parameters_schema, self.parameters)
        except ValueError as exc:
            for message in exc.args:
                add("parameters", str(message))
        else:
            if config is not None and self.parameters_schema is ChatParameters:
                for message in parameter_problems(config, self.model, self.parameters):
                    add("parameters", message)
                tools = tuple(self.parameters.get("tools") or ())
                # Only a model that calls tools takes them, and only tools of enabled tool plugins.
                refusal = tools_problem(config, self.model, tools)
                if tools and refusal is None:
                    refusal = unknown_tools(tools, [p.manifest for p in enabled_tool_plugins()])
                if refusal is not None:
                    add("parameters", refusal)

        if errors:
            raise ValidationError(errors)


class ConnectionProfile(ProfileBase):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connection_profiles")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="connection_profiles"
    )

    parameters_schema = ChatParameters
    kind = "connection profile"

    class Meta(ProfileBase.Meta):
        verbose_name = "connection profile"
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_default=True), name="providers_one_default_profile"
            )
        ]


class ImageProfile(ProfileBase):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_profiles")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="image_profiles")

    parameters_schema = ImageParameters
    kind = "image profile"

    class Meta(ProfileBase.Meta):
        verbose_name = "image profile"
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_default=True), name="providers_one_default_image_profile"
            )
        ]

    def _check_plugin(self, plugin: ProviderPlugin[Manifest]) -> list[str]:
        config = plugin.manifest.provider_config
        if config is None or not config.capabilities.image_generation:
            return [f"{plugin.manifest.name} does not generate images."]
        return []


class ToolSettings(models.Model):
    """A user's settings for one tool plugin: plain ``values`` (JSON, validated against its configSchema by
    ``providers.tool_values``) and ``encrypted_secrets``, address -> Fernet token, each secret encrypted on
    its own (``providers.crypto``, as API keys), so one that no key opens costs only itself. Written by
    ``providers.services.tool_settings_update``; read by ``providers.tool_settings``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tool_settings")
    plugin = models.CharField(max_length=100, db_index=True)
    values = models.JSONField(default=dict, blank=True)
    encrypted_secrets = models.JSONField(default=dict, blank=True, editable=False)  # never shown, never searched
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("plugin", "id")
        verbose_name = verbose_name_plural = "tool settings"
        constraints = [models.UniqueConstraint(fields=["user", "plugin"], name="providers_one_tool_settings")]

    def __str__(self) -> str:
        return f"{self.plugin} settings of user {self.user_id}"

    def secret(self, address: str) -> str:
        """The decrypted secret at ``address``; raises ``crypto.DecryptionError`` when no key opens it."""
        return crypto.decrypt(self.encrypted_secrets[address])

    def clean(self) -> None:
        plugin = registry.find(self.plugin) if self.plugin else None
        if plugin is None or not plugin.manifest.is_tool_provider:
            tools = sorted(p.manifest.name for p in registry.all() if p.manifest.is_tool_provider)
            raise ValidationError({"plugin": f"{self.plugin!r} is not a tool plugin ({', '.join(tools) or 'none'})."})
        self.plugin = plugin.manifest.name
