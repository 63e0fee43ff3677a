"""Schemas of the generation parameters stored on profiles (JSON), validated with pydantic.

One schema for chat (temperature, max_tokens, top_p, stop, reasoning and API switches, tools) and one for
images (size, aspect_ratio, quality, style, n, …). Unknown keys are errors that name the key, so a typo
never silently does nothing.

May import: nothing of qtap's (pydantic only).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")  # a tool's name, or a plugin's


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChatParameters(_Strict):
    """Sampling parameters, and the reasoning and API switches a plugin's manifest says its models take
    (checked against those rules by ``providers.reasoning.parameter_problems``)."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=4)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    reasoning_budget_tokens: int | None = Field(default=None, ge=0)
    reasoning_summary: bool | None = None
    prompt_caching: bool | None = None
    api: Literal["responses", "chat_completions"] | None = None
    # Tools on by default: a tool's name, or a tool plugin's name for all its tools (which exist is
    # the registry's answer, checked by the profile's clean()).
    tools: list[str] | None = Field(default=None, max_length=64)

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, value: list[str] | None) -> list[str] | None:
        if not value:
            return None  # none on: stored as no key at all
        for name in value:
            if not _TOOL_NAME.match(name):
                raise ValueError(f"{name!r} is not a tool name")
        return list(dict.fromkeys(value))  # each once, in the order given

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: list[str]) -> list[str]:
        if any(not item for item in value):
            raise ValueError("stop sequences cannot be empty")
        return value


class ImageParameters(_Strict):
    size: str | None = Field(default=None, pattern=r"^\d{2,5}x\d{2,5}$")
    aspect_ratio: str | None = Field(default=None, pattern=r"^\d{1,2}:\d{1,2}$")
    quality: str | None = Field(default=None, max_length=50)
    style: str | None = Field(default=None, max_length=50)
    n: int | None = Field(default=None, ge=1, le=10)
    negative_prompt: str | None = Field(default=None, max_length=2000)
    seed: int | None = Field(default=None, ge=0)


def describe(error: ValidationError) -> list[str]:
    """One readable line per problem, naming the parameter."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "parameters"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown parameter {where!r}")
        else:
            lines.append(f"{where}: {item['msg']}")
    return lines


def validate_parameters(schema: type[_Strict], value: Any) -> dict[str, Any]:
    """Validate ``value`` against ``schema``; answer the normalised dict (unset keys dropped).

    Raises ``ValueError`` whose args are the problem lines.
    """
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValueError("parameters must be a JSON object")
    try:
        parsed = schema.model_validate(value)
    except ValidationError as exc:
        raise ValueError(*describe(exc)) from None
    return parsed.model_dump(exclude_none=True, exclude_defaults=True)
