"""Tool-calling helpers the native plugins share (Anthropic, Gemini, Ollama): what ``tool_choice`` asks for,
ids for calls a provider sends without one, calls whose arguments arrive as objects, and the called tool's
name for a result that does not carry it.

Each provider's wire format stays in its plugin; only the rules that would otherwise be written three
times live here, so the plugins answer the same request the same way.

May import: ``providers.contract`` and ``providers.errors`` (data and errors only; no network, no Django).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from providers import errors
from providers.contract import ChatRequest, Message, ToolCall, ToolSpec, tool_call_from_text

ChoiceKind = Literal["auto", "none", "required", "tool"]


@dataclass(frozen=True)
class ToolChoice:
    """``ChatRequest.tool_choice`` read once: ``kind`` is ``auto``, ``none``, ``required`` or ``tool`` (then
    ``name`` is the tool the model must call)."""

    kind: ChoiceKind
    name: str | None = None


def tool_choice(request: ChatRequest, provider: str) -> ToolChoice:
    """What the request's ``tool_choice`` asks for. A tool named that the request does not offer is refused
    here, before any request: every provider would refuse it, each in its own words."""
    choice = request.tool_choice or "auto"
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)  # type: ignore[arg-type]
    if not any(tool.name == choice for tool in request.tools):
        offered = ", ".join(tool.name for tool in request.tools) or "none"
        raise errors.InvalidRequestError(
            provider, f"tool_choice names the tool {choice!r}, which the request does not offer (offered: {offered})."
        )
    return ToolChoice("tool", choice)


def offered_tools(request: ChatRequest, provider: str) -> tuple[ToolSpec, ...]:
    """The tools to send a provider that has no ``tool_choice`` of its own (Ollama): none for ``none``, only
    the named one for a named choice, all of them otherwise."""
    choice = tool_choice(request, provider)
    if choice.kind == "none":
        return ()
    if choice.kind == "tool":
        return tuple(tool for tool in request.tools if tool.name == choice.name)
    return request.tools


def fallback_call_id(index: int, name: str, reply: str | None = None) -> str:
    """An id for a call the provider sent without one (older Gemini models, older Ollama servers), from its
    place in the reply and, where the provider marks the reply (Gemini's ``responseId``, Ollama's
    ``created_at``), a digest of that mark: the same reply names its calls the same way, and the calls of a
    tool loop's next reply, where the first call is call 0 again, are not named like this one's (the chat
    page finds a call's panel by its id)."""
    if not reply:
        return f"call_{index}_{name}"
    return f"call_{hashlib.sha256(reply.encode()).hexdigest()[:8]}_{index}_{name}"


def call_from_object(call_id: str, name: str, arguments: Any) -> ToolCall:
    """A ToolCall from arguments a provider sends whole (Gemini's ``args``, Ollama's ``arguments``): an object
    is taken as it is, absent means none; a string (some gateways send one) is parsed like streamed text, and
    anything else is the invalid arguments the host answers with a tool error."""
    if arguments is None:
        return ToolCall(call_id, name, {})
    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments)
    if isinstance(arguments, str):
        return tool_call_from_text(call_id, name, arguments)
    return ToolCall(call_id, name, {}, invalid_arguments=repr(arguments))


def called_names(messages: Iterable[Message]) -> dict[str, str]:
    """Call id → tool name, from every assistant turn's calls: the name a tool result needs (Gemini's
    ``functionResponse``, Ollama's ``tool_name``) when the result message does not carry it."""
    return {call.id: call.name for message in messages for call in message.tool_calls}


def result_name(message: Message, names: dict[str, str]) -> str:
    """The name of the tool a ``tool`` message answers: its own ``tool_name``, else its call's."""
    return message.tool_name or names.get(message.tool_call_id or "", "") or "tool"
