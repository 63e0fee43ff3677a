"""The contract between qtap and its provider plugins.

This is the module plugin authors read. It holds only dataclasses and protocols:
no Django, no network. Plugins import from here, from ``providers.errors`` and from
the shared helpers in ``providers.base``, ``providers.http`` and ``providers.openai_format``.

May import: ``providers.errors`` only (no Django, no manifest): the manifest model, the loader and the
registry are the host's side and import this module, never the other way round.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from providers.errors import CapabilityNotSupportedError

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "other"]
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "content_filter", "tool_calls", "other")
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
REASONING_EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    data: bytes = field(repr=False)

    def __repr__(self) -> str:  # bytes are never worth printing
        return f"Attachment(filename={self.filename!r}, mime_type={self.mime_type!r}, size={len(self.data)})"


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: ``parameters`` is a JSON Schema object for its arguments.
    ``needs_approval`` (a tool plugin's answer; None: its manifest's ``needsApproval``) says whether a
    call waits for the user's yes."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    needs_approval: bool | None = None


@dataclass(frozen=True)
class ToolCall:
    """A call the model made (a stream event, once per call when its arguments are complete; and on an
    assistant ``Message``, the calls of that turn). ``invalid_arguments`` holds the provider's argument
    text when it was not a JSON object: ``arguments`` is then empty and qtap answers the model with a
    tool error instead of calling the tool. Plugins build both through ``tool_call_from_text``."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    invalid_arguments: str | None = None

    @property
    def arguments_text(self) -> str:
        """The arguments as the provider sent them (JSON), for handing the turn back."""
        if self.invalid_arguments is not None:
            return self.invalid_arguments
        return json.dumps(self.arguments, ensure_ascii=False, separators=(",", ":"))


def tool_call_from_text(call_id: str, name: str, text: str | None) -> ToolCall:
    """A ToolCall from streamed argument text (the deltas joined); empty text means no arguments."""
    if text is None or not text.strip():
        return ToolCall(call_id, name, {})
    try:
        value = json.loads(text)
    except ValueError:
        return ToolCall(call_id, name, {}, invalid_arguments=text)
    if not isinstance(value, dict):
        return ToolCall(call_id, name, {}, invalid_arguments=text)
    return ToolCall(call_id, name, value)


@dataclass(frozen=True)
class Message:
    """One turn. ``provider_state`` is what this plugin attached to an assistant turn it produced (signed
    thinking, encrypted reasoning, thought signatures…), handed back unchanged; qtap gives a plugin only
    its own state and never shows it.

    An assistant turn that called tools carries them in ``tool_calls``; each result follows as a
    ``role="tool"`` message naming its call in ``tool_call_id`` (``is_error`` when the call failed)."""

    role: Role
    content: str
    attachments: tuple[Attachment, ...] = ()
    provider_state: Any = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False
    # The called tool's name on a ``tool`` message (Gemini's functionResponse and Ollama need it).
    tool_name: str | None = None


@dataclass(frozen=True)
class ReasoningOptions:
    """How hard a reasoning model thinks: an ``effort`` level or a ``budget_tokens`` budget (a plugin maps
    them to its provider's own knob), and whether its reasoning (or a summary) is returned."""

    effort: ReasoningEffort | None = None
    budget_tokens: int | None = None
    summary: bool = True


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    reasoning: ReasoningOptions | None = None
    # Profile parameters a plugin declares for itself (``prompt_caching``, ``api``…), by name.
    options: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"  # "auto" | "none" | "required" | a tool's name

    @property
    def system_prompt(self) -> str:
        """All system messages joined: the form most non-OpenAI APIs want."""
        return "\n\n".join(m.content for m in self.messages if m.role == "system" and m.content)

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The messages without the system ones."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(a for m in self.messages for a in m.attachments)

    def sampling(self, **names: str) -> dict[str, Any]:
        """The sampling parameters that are set, under the provider's own names: ``names`` maps
        ``temperature``, ``top_p``, ``max_tokens`` and ``stop`` to them (a parameter not named is left out)."""
        values: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
        values["stop"] = list(self.stop) if self.stop else None
        return {names[key]: value for key, value in values.items() if key in names and value is not None}


# ---- stream events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reports them (None where it does not). ``input_tokens`` counts every
    input token, cached ones included; ``cost`` is the provider's own figure where it reports one."""

    input_tokens: int | None
    output_tokens: int | None
    cost: float | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class ProviderState:
    """Opaque, JSON-serialisable state to hand back with this turn on the next request (at most one per
    stream, before ``Finish``)."""

    value: Any


@dataclass(frozen=True)
class Finish:
    reason: FinishReason


StreamEvent = TextDelta | ReasoningDelta | Usage | ProviderState | ToolCall | Finish


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str
    usage: Usage | None
    model: str | None
    reasoning: str = ""
    provider_state: Any = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolResult:
    """What a tool answered: text the model reads (``is_error`` when the call failed, in words)."""

    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolContext:
    """What a tool call knows of its caller: the user's id and this plugin's settings for that user
    (secrets decrypted), nothing else."""

    user_id: int
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    supports_images: bool | None = None
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    model: str
    n: int = 1
    size: str | None = None
    aspect_ratio: str | None = None
    quality: str | None = None
    style: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes = field(repr=False)
    mime_type: str = "image/png"
    revised_prompt: str | None = None


# ---- protocols ---------------------------------------------------------------------------------


@runtime_checkable
class LLMProvider(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """An async generator: text as it arrives, at most one Usage, exactly one Finish, last."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def list_models(self) -> list[ModelInfo]: ...

    async def validate_key(self) -> None:
        """Return if the key works; otherwise raise the ProviderError that says why."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ImageProvider(Protocol):
    async def generate(self, request: ImageRequest) -> list[GeneratedImage]: ...


@runtime_checkable
class ToolProvider(Protocol):
    """Exported by a TOOL_PROVIDER plugin through ``ProviderPlugin.create_tool_provider``."""

    async def list_tools(self, context: ToolContext) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...


async def collect(events: AsyncIterator[StreamEvent], model: str | None = None) -> ChatResult:
    """Fold a stream into a ChatResult; providers may use it to implement ``complete``."""
    text: list[str] = []
    reasoning: list[str] = []
    usage: Usage | None = None
    state: Any = None
    calls: list[ToolCall] = []
    finish = "other"
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, ProviderState):
            state = event.value
        elif isinstance(event, ToolCall):
            calls.append(event)
        elif isinstance(event, Finish):
            finish = event.reason
    return ChatResult(
        text="".join(text),
        finish_reason=finish,
        usage=usage,
        model=model,
        reasoning="".join(reasoning),
        provider_state=state,
        tool_calls=tuple(calls),
    )


ManifestT = TypeVar("ManifestT")


class ProviderPlugin(Generic[ManifestT]):
    """Base class of every plugin's exported ``plugin`` object.

    ``manifest`` is set by the loader after the manifest validated (the host's
    ``providers.manifest.Manifest``, which the host names as ``ProviderPlugin[Manifest]``). Subclasses
    override ``create_provider`` and, when the manifest declares image generation, ``create_image_provider``.
    """

    manifest: ManifestT

    def create_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> LLMProvider:
        raise NotImplementedError(f"{type(self).__name__} does not implement create_provider()")

    def create_image_provider(self, *, api_key: str | None = None, base_url: str | None = None) -> ImageProvider:
        raise CapabilityNotSupportedError(f"{self.name} does not generate images")

    def create_tool_provider(self) -> ToolProvider:
        raise CapabilityNotSupportedError(f"{self.name} offers no tools")

    @property
    def name(self) -> str:
        manifest = getattr(self, "manifest", None)
        return manifest.name if manifest is not None else type(self).__name__

    def implements_image_provider(self) -> bool:
        return type(self).create_image_provider is not ProviderPlugin.create_image_provider

    def implements_tool_provider(self) -> bool:
        return type(self).create_tool_provider is not ProviderPlugin.create_tool_provider

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
