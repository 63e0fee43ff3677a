"""The plugin manifest: a strict pydantic model, its JSON Schema, and loading.

manifest.json is the single source of truth for a plugin's metadata. Unknown keys are errors
that name the key, so a typo never silently turns a feature off.

May import: ``providers.errors`` (pydantic, no Django); the contract does not import it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from providers.errors import ManifestError

QTAP_VERSION = "0.1.0"
MANIFEST_FILENAME = "manifest.json"

Capability = Literal["LLM_PROVIDER", "IMAGE_PROVIDER", "EMBEDDING_PROVIDER", "UPGRADE_MIGRATION", "TOOL_PROVIDER"]
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_COLOUR = r"^#[0-9a-fA-F]{6}$"


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, str_strip_whitespace=True
    )


class Colors(_Strict):
    bg: str = Field(pattern=_COLOUR)
    text: str = Field(pattern=_COLOUR)


class ProviderCapabilities(_Strict):
    chat: bool = True
    image_generation: bool = False
    embeddings: bool = False
    web_search: bool = False


class AttachmentSupport(_Strict):
    supported: bool = False
    mime_types: tuple[str, ...] = ()
    max_bytes: int | None = Field(default=None, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _types_when_supported(self) -> AttachmentSupport:
        if self.supported and not self.mime_types:
            raise ValueError("attachmentSupport.supported is true but mimeTypes is empty")
        return self


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
SamplingParameter = Literal["temperature", "top_p", "stop"]
Api = Literal["responses", "chat_completions"]


class BudgetRange(_Strict):
    min: int = Field(ge=0)
    max: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BudgetRange:
        if self.min > self.max:
            raise ValueError("budgetTokens.min is larger than budgetTokens.max")
        return self


class ReasoningRule(_Strict):
    """The reasoning knob a model takes: effort levels, a token budget, or both (the plugin maps them)."""

    efforts: tuple[ReasoningEffort, ...] = ()
    budget_tokens: BudgetRange | None = None
    summary: bool = False


class ModelRule(_Strict):
    """What the models whose id matches ``match`` (a regular expression, searched) take."""

    match: str = Field(min_length=1)
    tools: bool = True
    reasoning: ReasoningRule | None = None
    refused_parameters: tuple[SamplingParameter, ...] = ()
    # The attachment types these models take, of the provider's ``attachmentSupport`` (None: all of
    # them; ``[]``: none, a text-only model of a provider with vision).
    attachment_types: tuple[str, ...] | None = None

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"modelRules match is not a valid regular expression: {exc}") from exc
        return value


class ProviderConfig(_Strict):
    provider_name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    display_name: str = Field(min_length=1)
    description: str = ""
    abbreviation: str = Field(pattern=r"^[A-Z0-9]{2,4}$")
    colors: Colors
    requires_api_key: bool = True
    requires_base_url: bool = False
    api_key_label: str = "API key"
    api_key_pattern: str | None = None
    base_url_label: str = "Base URL"
    base_url_default: str | None = None
    base_url_placeholder: str | None = None
    capabilities: ProviderCapabilities = ProviderCapabilities()
    attachment_support: AttachmentSupport = AttachmentSupport()
    legacy_names: tuple[str, ...] = ()
    # Per-model rules, first match wins; a model no rule matches takes no reasoning knob and every parameter.
    model_rules: tuple[ModelRule, ...] = ()
    apis: tuple[Api, ...] = ()  # the wire APIs a profile may choose between (first: the default)
    prompt_caching: bool = False  # the plugin places cache breakpoints when a profile's prompt_caching is on

    @field_validator("api_key_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"apiKeyPattern is not a valid regular expression: {exc}") from exc
        return value

    @field_validator("base_url_default")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("baseUrlDefault must be an absolute http(s) URL")
        return value

    def rule_for(self, model: str) -> ModelRule | None:
        return next((rule for rule in self.model_rules if re.search(rule.match, model)), None)

    def accepts_mime_type(self, mime_type: str) -> bool:
        support = self.attachment_support
        return support.supported and mime_type in support.mime_types


_TOOL_NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
FieldType = Literal["text", "secret", "number", "boolean", "url", "list"]


class ToolInfo(_Strict):
    """One tool a plugin offers. (A plugin whose tools come from elsewhere, like MCP servers, lists
    none here and sets ``dynamicTools``.)"""

    name: str = Field(pattern=_TOOL_NAME)
    display_name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class ConfigField(_Strict):
    """A typed setting of a tool plugin, rendered as a form field; a ``secret`` is stored encrypted and
    never shown again, like an API key. A ``list`` holds strings (one per line in the form)."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1)
    type: FieldType = "text"
    description: str = ""
    default: Any = None
    required: bool = False


class ToolConfig(_Strict):
    tools: tuple[ToolInfo, ...] = ()
    dynamic_tools: bool = False  # list_tools answers tools beyond those listed (their names are its own)
    needs_approval: bool = False  # whether a call waits for the user's approval unless a setting says otherwise
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    config_schema: tuple[ConfigField, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ToolConfig:
        for label, names in (
            ("tools", [t.name for t in self.tools]),
            ("configSchema", [f.key for f in self.config_schema]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"toolConfig.{label} names {', '.join(duplicates)} more than once")
        if not self.tools and not self.dynamic_tools:
            raise ValueError("toolConfig lists no tools and does not set dynamicTools")
        return self


class Compatibility(_Strict):
    qtap_version: str = ">=0.1"

    @field_validator("qtap_version")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier as exc:
            raise ValueError(f"compatibility.qtapVersion is not a version specifier: {value!r}") from exc
        return value


class Manifest(_Strict):
    name: str = Field(pattern=r"^qtap-plugin-[a-z0-9-]+$")
    title: str = Field(min_length=1)
    description: str = ""
    version: str
    author: str = ""
    license: str = ""
    compatibility: Compatibility = Compatibility()
    capabilities: tuple[Capability, ...] = ("LLM_PROVIDER",)
    enabled_by_default: bool = True
    provider_config: ProviderConfig | None = None
    tool_config: ToolConfig | None = None

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError(f"version must be semver (MAJOR.MINOR.PATCH), got {value!r}")
        return value

    @model_validator(mode="after")
    def _provider_config_matches(self) -> Manifest:
        if "LLM_PROVIDER" in self.capabilities and self.provider_config is None:
            raise ValueError("providerConfig is required when capabilities include LLM_PROVIDER")
        if ("TOOL_PROVIDER" in self.capabilities) != (self.tool_config is not None):
            raise ValueError("toolConfig is required when capabilities include TOOL_PROVIDER, and only then")
        if self.provider_config is not None:
            wants_images = "IMAGE_PROVIDER" in self.capabilities
            if wants_images != self.provider_config.capabilities.image_generation:
                raise ValueError("capabilities IMAGE_PROVIDER and providerConfig.capabilities.imageGeneration disagree")
        return self

    def is_compatible(self, qtap_version: str = QTAP_VERSION) -> bool:
        try:
            return Version(qtap_version) in SpecifierSet(self.compatibility.qtap_version)
        except InvalidVersion:
            return False

    @property
    def provider_name(self) -> str | None:
        return self.provider_config.provider_name if self.provider_config else None

    @property
    def is_tool_provider(self) -> bool:
        return self.tool_config is not None

    @property
    def legacy_names(self) -> tuple[str, ...]:
        return self.provider_config.legacy_names if self.provider_config else ()


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the key in the manifest's own spelling."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"]) or "manifest"
        if item["type"] == "extra_forbidden":
            parts.append(f"unknown key {location!r}")
        else:
            parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def parse_manifest(data: Any, *, source: str = "manifest") -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: the manifest must be a JSON object")
    try:
        return Manifest.model_validate(data, by_alias=True)
    except ValidationError as exc:
        raise ManifestError(f"{source}: {format_validation_error(exc)}") from None


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json``; every failure is a ManifestError with a one-line reason."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_manifest(data, source=str(path))


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qtap plugin manifest"
    return schema
