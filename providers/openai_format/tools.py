"""Tool calling in both OpenAI wire formats, on the way out: the request's tools and ``tool_choice``, and
the turns that go back next time (the assistant's calls, then one result per call). Pure functions.

Both APIs describe a tool by the same name, description and JSON Schema and take a result as text; they
differ in the envelope. Chat Completions nests each tool under ``function`` and sends the turn back as an
assistant message with ``tool_calls`` followed by ``role: tool`` messages; the Responses API writes tools
flat and the turn as ``function_call`` and ``function_call_output`` items. The rules both share (which
``tool_choice`` values exist, how a failed call reads to the model) live here once.

May import: ``providers.contract`` (no HTTP machinery, no errors raised: callers say who refused what).
"""

from __future__ import annotations

from typing import Any

from providers.contract import ChatRequest, Message, ToolCall, ToolSpec

MODES = ("auto", "none", "required")

# How a failed call's result opens, so the model reads it as the tool's failure, not as its answer.
ERROR_PREFIX = "Error: "


# ---- the request ---------------------------------------------------------------------------------


def tool_choice_problem(request: ChatRequest) -> str | None:
    """Why the request's ``tool_choice`` cannot be sent (None: it can): a mode, or a tool it offers."""
    choice = request.tool_choice
    if not request.tools or choice in MODES:
        return None
    if choice in {spec.name for spec in request.tools}:
        return None
    offered = ", ".join(spec.name for spec in request.tools)
    return f"tool_choice {choice!r} is neither auto, none nor required, nor a tool this request offers ({offered})."


def _described(spec: ToolSpec) -> dict[str, Any]:
    described: dict[str, Any] = {"name": spec.name}
    if spec.description:  # an empty description is left out rather than sent as ""
        described["description"] = spec.description
    described["parameters"] = spec.parameters
    return described


def chat_tools(request: ChatRequest) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for Chat Completions; nothing at all when the request offers no tools.

    ``auto`` is the servers' own default and is not sent (some OpenAI-compatible servers take no
    ``tool_choice``); a tool's name becomes ``{"type": "function", "function": {"name": …}}``."""
    if not request.tools:
        return {}
    fields: dict[str, Any] = {"tools": [{"type": "function", "function": _described(s)} for s in request.tools]}
    choice = request.tool_choice
    if choice in ("none", "required"):
        fields["tool_choice"] = choice
    elif choice != "auto":
        fields["tool_choice"] = {"type": "function", "function": {"name": choice}}
    return fields


def responses_tools(request: ChatRequest, *, strict: bool | None = None) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` for the Responses API: each tool flat (``type``, ``name``, …), with
    ``strict`` when the provider needs it said (None: left out); nothing when the request offers no tools."""
    if not request.tools:
        return {}
    tools = [{"type": "function", **_described(spec)} for spec in request.tools]
    if strict is not None:
        tools = [{**tool, "strict": strict} for tool in tools]
    fields: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if choice in ("none", "required"):
        fields["tool_choice"] = choice
    elif choice != "auto":
        fields["tool_choice"] = {"type": "function", "name": choice}
    return fields


# ---- the turn that goes back ---------------------------------------------------------------------


def result_text(message: Message) -> str:
    """What the model reads of a tool's result: a failed call says so first."""
    return f"{ERROR_PREFIX}{message.content}" if message.is_error else message.content


def chat_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    """An assistant turn's calls as Chat Completions' ``tool_calls`` (arguments as the JSON string)."""
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_text}}
        for call in calls
    ]


def chat_tool_result(message: Message) -> dict[str, Any]:
    """A ``role: tool`` message answering the call ``tool_call_id`` names."""
    return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": result_text(message)}


def function_call_items(message: Message) -> list[dict[str, Any]]:
    """An assistant turn's calls as Responses ``function_call`` input items (``call_id``, not the item id)."""
    return [
        {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments_text}
        for call in message.tool_calls
    ]


def function_call_output(message: Message) -> dict[str, Any]:
    """A tool's result as a Responses ``function_call_output`` item."""
    return {"type": "function_call_output", "call_id": message.tool_call_id or "", "output": result_text(message)}


__all__ = [
    "ERROR_PREFIX",
    "MODES",
    "chat_calls",
    "chat_tool_result",
    "chat_tools",
    "function_call_items",
    "function_call_output",
    "responses_tools",
    "result_text",
    "tool_choice_problem",
]
