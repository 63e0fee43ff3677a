"""Forms for API keys and profiles, shared by the settings pages and the admin: they validate, and
``providers.services`` writes (a form's ``save()`` calls the same services the views and the admin call).

The secret is write-only: a ``PasswordInput(render_value=False)`` that is never filled back in, and an
empty secret on edit keeps the stored one; the form holds it in clear and never encrypts it. Plugin
choices come from the registry when the form is built (never ``choices=`` on the model), labelled with
each manifest's displayName.

May import: ``providers.models``, ``providers.parameters``, ``providers.reasoning``, ``providers.registry``,
``providers.services``, ``providers.tool_values``.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.views.decorators.debug import sensitive_variables

from providers import services
from providers.models import ApiKey, ConnectionProfile, ImageProfile, enabled_tool_plugins
from providers.parameters import ChatParameters, ImageParameters, validate_parameters
from providers.reasoning import takes_tools
from providers.registry import registry
from providers.services import api_key_pattern_warning, clean_secret
from providers.tool_values import offered_tools


def plugin_choices(*, capability: str | None = None, current: str = "") -> list[tuple[str, str]]:
    """(plugin name, display name) of the loaded provider plugins, optionally only those with ``capability``.

    ``current`` (an existing row's value) is kept selectable even when its plugin is gone, so editing an
    orphaned row says "unavailable" instead of silently switching provider.
    """
    plugins = registry.by_capability(capability) if capability else registry.all()
    choices = sorted(
        (
            (plugin.manifest.name, plugin.manifest.provider_config.display_name)
            for plugin in plugins
            if plugin.manifest.provider_config is not None
        ),
        key=lambda choice: choice[1].lower(),
    )
    if current and current not in {name for name, _ in choices}:
        choices.append((current, f"{current} (unavailable)"))
    return choices


class ApiKeyForm(forms.ModelForm):
    secret = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again; only its last four characters are displayed.",
    )

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = ("plugin", "label", "is_active")

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:
            self.instance.user = user
        self.warnings: list[str] = []
        editing = self.instance.pk is not None
        self.fields["plugin"] = forms.ChoiceField(
            label="Provider",
            choices=plugin_choices(current=self.instance.plugin if editing else ""),
            # Profiles point at this key by plugin: moving a key to another provider would break them.
            disabled=editing,
        )
        self.fields["secret"].required = not editing
        if editing:
            self.fields["secret"].help_text = "Leave empty to keep the stored secret."

    @sensitive_variables("secret")
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        secret = cleaned.get("secret")
        if secret:
            try:
                cleaned["secret"] = secret = clean_secret(secret)
            except ValidationError as exc:
                self.add_error("secret", exc.message_dict["secret"])
                return cleaned
            warning = api_key_pattern_warning(plugin=cleaned.get("plugin") or self.instance.plugin, secret=secret)
            if warning:
                self.warnings.append(warning)
        return cleaned

    @sensitive_variables("secret")
    def save(self, commit: bool = True) -> ApiKey:
        """The validated key written by ``services.api_key_update`` (which creates a new one, encrypting
        its secret); with ``commit=False`` the unsaved instance, without its secret."""
        key = super().save(commit=False)  # validates first, as ModelForm.save does
        if not commit:
            return key
        return services.api_key_update(api_key=key, secret=self.cleaned_data.get("secret") or None)


def _chat_parameter_fields() -> dict[str, forms.Field]:
    return {
        "temperature": forms.FloatField(
            required=False,
            min_value=0,
            max_value=2,
            widget=forms.NumberInput(attrs={"step": "0.1"}),
            help_text="0 to 2; empty uses the provider's default.",
        ),
        "max_tokens": forms.IntegerField(
            required=False,
            min_value=1,
            label="Max tokens",
            help_text="Longest reply; empty uses the provider's default.",
        ),
        "top_p": forms.FloatField(
            required=False, min_value=0, max_value=1, label="Top p", widget=forms.NumberInput(attrs={"step": "0.05"})
        ),
        "stop": forms.CharField(
            required=False,
            label="Stop sequences",
            widget=forms.Textarea(attrs={"rows": 2}),
            help_text="One per line, up to 4.",
        ),
    }


EFFORT_LABELS = {
    "none": "None",
    "minimal": "Minimal",
    "low": "Low",
    "medium": "Medium",
    "high": "High",
    "xhigh": "Extra high",
}
API_LABELS = {"responses": "Responses API", "chat_completions": "Chat Completions (for gateways that speak only it)"}


def _on_by_default(label: str, *, on: str, off: str) -> forms.Field:
    """A switch stored only when turned off (``False``); empty means the default, on."""
    return forms.TypedChoiceField(
        required=False,
        choices=[("", on), ("false", off)],
        coerce=lambda value: value != "false",
        empty_value=None,
        label=label,
    )


def model_parameter_fields(plugin: str, model: str) -> dict[str, forms.Field]:
    """The controls ``model`` of ``plugin`` takes, from its manifest's rules: its reasoning effort or thinking
    budget, whether to show its reasoning, prompt caching, the wire API, and the tools on by default (only
    for a model that calls tools). None for a model without them."""
    found = registry.find(plugin) if plugin else None
    config = found.manifest.provider_config if found else None
    if config is None:
        return {}
    fields: dict[str, forms.Field] = {}
    rule = config.rule_for(model) if model else None
    knob = rule.reasoning if rule is not None else None
    if knob is not None and knob.efforts:
        choices = [("", "Model default"), *((effort, EFFORT_LABELS[effort]) for effort in knob.efforts)]
        fields["reasoning_effort"] = forms.ChoiceField(
            required=False, choices=choices, label="Reasoning effort", help_text=f"What {model} takes."
        )
    if knob is not None and knob.budget_tokens is not None:
        budget = knob.budget_tokens
        fields["reasoning_budget_tokens"] = forms.IntegerField(
            required=False,
            min_value=budget.min,
            max_value=budget.max,
            label="Thinking budget (tokens)",
            help_text=f"{budget.min} to {budget.max}; empty leaves thinking to the model's default.",
        )
    if knob is not None and knob.summary:
        fields["reasoning_summary"] = _on_by_default("Reasoning", on="Show it", off="Do not return it")
    if config.prompt_caching:
        fields["prompt_caching"] = _on_by_default("Prompt caching", on="On (cheaper repeated context)", off="Off")
    if model and takes_tools(config, model):
        groups = [(p.manifest.title, offered_tools(p.manifest)) for p in enabled_tool_plugins()]
        if groups:
            fields["tools"] = forms.MultipleChoiceField(
                required=False,
                choices=groups,
                widget=forms.CheckboxSelectMultiple,
                label="Tools on by default",
                help_text="A plugin's “All tools” includes the tools it finds later (such as your MCP servers').",
            )
    if len(config.apis) > 1:
        fields["api"] = forms.ChoiceField(
            required=False,
            choices=[("", f"Default ({API_LABELS[config.apis[0]]})"), *((a, API_LABELS[a]) for a in config.apis)],
            label="API",
        )
    return fields


def _image_parameter_fields() -> dict[str, forms.Field]:
    return {
        "size": forms.CharField(required=False, help_text="e.g. 1024x1024 (OpenAI)."),
        "aspect_ratio": forms.CharField(required=False, label="Aspect ratio", help_text="e.g. 16:9 (Imagen, Grok)."),
        "quality": forms.CharField(required=False, help_text="e.g. standard, hd, high."),
        "style": forms.CharField(required=False, help_text="e.g. vivid or natural (DALL-E 3)."),
        "n": forms.IntegerField(required=False, min_value=1, max_value=10, label="Images per prompt"),
    }


class _ProfileForm(forms.ModelForm):
    capability: ClassVar[str] = "chat"
    # The admin may pick keys of any user (the model still checks the owner); the settings pages may not.
    any_user_keys: ClassVar[bool] = False
    # One form field per parameter; together they are stored as the profile's ``parameters`` JSON, which
    # the model validates against its schema. Keys without a field here are kept as they are.
    parameter_fields: ClassVar[Any] = staticmethod(_chat_parameter_fields)
    parameter_schema: ClassVar[type[Any]] = ChatParameters

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:
            self.instance.user = user
        stored = self.instance.parameters or {}
        self.parameter_names: list[str] = []
        for name, field in {**self.parameter_fields(), **self._model_fields()}.items():
            value = stored.get(name)
            if isinstance(value, bool):
                value = "" if value else "false"
            if isinstance(value, list) and not isinstance(field, forms.MultipleChoiceField):
                value = "\n".join(value)
            field.initial = value
            self.fields[name] = field
            self.parameter_names.append(name)
        self.fields["plugin"] = forms.ChoiceField(
            label="Provider", choices=plugin_choices(capability=self.capability, current=self.instance.plugin)
        )
        cast(forms.ModelChoiceField, self.fields["api_key"]).queryset = self._key_choices()
        self.fields["api_key"].required = False
        self.fields["base_url"].required = False

    def _model_fields(self) -> dict[str, forms.Field]:
        if self.capability != "chat":
            return {}
        source = self.data if self.is_bound else {**{"plugin": self.instance.plugin, "model": self.instance.model}}
        plugin = source.get(self.add_prefix("plugin")) or self.initial.get("plugin") or source.get("plugin") or ""
        model = source.get(self.add_prefix("model")) or self.initial.get("model") or source.get("model") or ""
        return model_parameter_fields(str(plugin), str(model))

    def _owner_id(self) -> Any:
        if self.user is not None:
            return self.user.pk
        if self.instance.user_id is not None:
            return self.instance.user_id
        if self.is_bound and "user" in self.fields:
            return self.data.get(self.add_prefix("user")) or None
        return None

    def _key_choices(self) -> QuerySet[ApiKey]:
        owner = self._owner_id()
        if owner is None:
            return ApiKey.objects.all() if self.any_user_keys else ApiKey.objects.none()
        keys = ApiKey.objects.filter(user_id=owner)
        if self.is_bound:
            # Any of the owner's keys is accepted here, so a key of another provider gets the model's
            # precise message ("this key is for X…") rather than "not one of the available choices".
            return keys
        plugin_name = self.initial.get("plugin", self.instance.plugin)
        plugin = registry.find(plugin_name) if plugin_name else None
        if plugin is not None:
            keys = keys.filter(plugin=plugin.manifest.name)
        return keys

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        parameters = dict(self.instance.parameters or {})
        for name in self.parameter_names:
            value = cleaned.get(name)
            if name == "stop" and isinstance(value, str):
                value = [line for line in value.splitlines() if line.strip()]
            if value in (None, "", []):
                parameters.pop(name, None)
            else:
                parameters[name] = value
        if self.capability == "chat" and "tools" not in self.fields:
            # No tools are offered for this model: any posted are refused (below, saying why), and stored
            # ones, which the person can no longer see, are dropped.
            key = self.add_prefix("tools")
            raw = self.data.getlist(key) if hasattr(self.data, "getlist") else self.data.get(key)
            posted = [raw] if isinstance(raw, str) else list(raw or ())
            if posted:
                parameters["tools"] = posted
            else:
                parameters.pop("tools", None)
        owner = self._owner_id()
        if owner is not None and not cleaned.get("is_default"):
            # A user's first profile of a kind is their default: a chat started without a choice needs one.
            others = type(self.instance)._default_manager.filter(user_id=owner).exclude(pk=self.instance.pk)
            if not others.exists():
                cleaned["is_default"] = True
        try:
            self.instance.parameters = validate_parameters(self.parameter_schema, parameters)
        except ValueError as exc:
            for line in exc.args:
                name = str(line).split(":", 1)[0].split(".", 1)[0]
                self.add_error(name if name in self.fields else None, str(line))
        return cleaned

    def _update_errors(self, errors: ValidationError) -> None:
        # The model judges ``parameters`` as a whole, which this form splits into fields: its refusals
        # (a tool the model cannot call, an effort it does not take) are shown above the form.
        if hasattr(errors, "error_dict") and "parameters" in errors.error_dict:
            errors.error_dict.setdefault(NON_FIELD_ERRORS, []).extend(errors.error_dict.pop("parameters"))
        super()._update_errors(errors)  # type: ignore[misc]  # a ModelForm hook the stubs do not declare

    def save(self, commit: bool = True) -> Any:
        """The validated profile written by ``services.profile_update`` (which creates a new one)."""
        profile = super().save(commit=False)  # validates first, as ModelForm.save does
        return services.profile_update(profile=profile) if commit else profile


class ConnectionProfileForm(_ProfileForm):
    capability = "chat"

    class Meta:
        model = ConnectionProfile
        fields: tuple[str, ...] = ("name", "plugin", "api_key", "base_url", "model", "is_default")
        help_texts = {"base_url": "Empty uses the provider's default."}


class ImageProfileForm(_ProfileForm):
    capability = "imageGeneration"
    parameter_fields = staticmethod(_image_parameter_fields)
    parameter_schema = ImageParameters

    class Meta:
        model = ImageProfile
        fields: tuple[str, ...] = ("name", "plugin", "api_key", "base_url", "model", "is_default")
        help_texts = {"base_url": "Empty uses the provider's default."}
