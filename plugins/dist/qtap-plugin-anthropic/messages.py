"""The Messages API's ``messages``, ``tools`` and cache breakpoints, built from qtap's turns.

An assistant turn goes back as the API requires (R3.4): its signed ``thinking`` / ``redacted_thinking`` blocks
first, unchanged and in order (they are the turn's provider state), then its text, then one ``tool_use`` block
per call. The results that follow it are ``role: tool`` messages in qtap and one user turn of ``tool_result``
blocks here, before any text of that turn. Kept apart from the stream so each module stays about one thing.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from providers import errors
from providers.contract import ChatRequest, Message
from providers.tool_mapping import tool_choice

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # the API refuses more cache_control blocks than this
# The smallest prefix any model caches is 1,024 tokens; at about four characters a token, a system prompt
# shorter than this cannot be cached on its own (it is cached with the conversation's breakpoint anyway).
SYSTEM_CACHE_MIN_CHARS = 4 * 1024
# The blocks of a reply that are its provider state, handed back unchanged next turn.
STATE_BLOCKS = ("thinking", "redacted_thinking")
# The blocks that must open a turn of each role, before anything a merged message adds.
LEADING_BLOCKS = {"assistant": STATE_BLOCKS, "user": ("tool_result",)}
# A tool the history called but the request no longer offers: declared with this schema so the API takes the
# history (it refuses tool_use / tool_result blocks in a request that defines no tools).
ANY_OBJECT: dict[str, Any] = {"type": "object"}
# tool_use ids must match ^[a-zA-Z0-9_-]+$: ids another provider gave (``functions.get_weather:0``) are
# rewritten the same way on the call and on its result, so they still pair.
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_-]")


def wire_id(call_id: str | None) -> str:
    """A call id as the API takes it (the same id in, the same id out: a call and its result still pair)."""
    return _NOT_IN_ID.sub("_", call_id or "") or "toolu_unnamed"


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    """Attachments first (Anthropic recommends images before the question), then the text."""
    blocks: list[dict[str, Any]] = []
    for attachment in message.attachments:
        source = {
            "type": "base64",
            "media_type": attachment.mime_type,
            "data": base64.b64encode(attachment.data).decode("ascii"),
        }
        kind = "document" if attachment.mime_type == "application/pdf" else "image"
        blocks.append({"type": kind, "source": source})
    if message.content.strip():  # the API refuses empty text blocks
        blocks.append({"type": "text", "text": message.content})
    return blocks


def state_blocks(state: Any) -> list[dict[str, Any]]:
    """The thinking blocks this plugin attached to an assistant turn, as they were received; anything that is
    not that shape (a state from an older version, say) is left out rather than sent to fail a signature."""
    if not isinstance(state, list):
        return []
    blocks = [block for block in state if isinstance(block, dict) and block.get("type") in STATE_BLOCKS]
    return blocks if len(blocks) == len(state) else []


def tool_use_blocks(message: Message) -> list[dict[str, Any]]:
    """The turn's calls as the API sent them: ``input`` is the object its ``partial_json`` formed (a call whose
    arguments were not JSON goes back with none: the API takes only an object, and the result says why)."""
    return [
        {"type": "tool_use", "id": wire_id(call.id), "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    ]


def tool_result_block(message: Message) -> dict[str, Any]:
    """A ``tool`` message as a ``tool_result`` block: ``is_error`` only when the call failed, as the recorded
    client sends it; no content key for an empty result (an empty string is no text)."""
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": wire_id(message.tool_call_id)}
    if message.content:
        block["content"] = message.content
    if message.is_error:
        block["is_error"] = True
    return block


def _turn(message: Message) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(role, the blocks that must lead its turn, the rest) for one message."""
    if message.role == "tool":
        return "user", [tool_result_block(message)], []
    rest = _content_blocks(message)
    if message.role != "assistant":
        return message.role, [], rest
    rest += tool_use_blocks(message)
    return "assistant", (state_blocks(message.provider_state) if rest else []), rest


def build_messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages in the API's shape, consecutive turns of one role merged into one turn. What must lead a turn
    (an assistant turn's thinking blocks, a user turn's tool results) goes first in it, unchanged and in
    order (merged turns: all of it first, in order, then the rest)."""
    turns: list[dict[str, Any]] = []
    for message in conversation:
        role, lead, rest = _turn(message)
        if not lead and not rest:
            continue
        if turns and turns[-1]["role"] == role:
            content = turns[-1]["content"]
            kinds = LEADING_BLOCKS.get(role, ())
            first_other = next((i for i, b in enumerate(content) if b["type"] not in kinds), len(content))
            content[first_other:first_other] = lead  # after the leading blocks already there
            content.extend(rest)
        else:
            turns.append({"role": role, "content": [*lead, *rest]})
    # A final assistant turn is a prefill; the API refuses one that ends in whitespace.
    if turns and turns[-1]["role"] == "assistant":
        last = turns[-1]["content"][-1]
        if last["type"] == "text":
            last["text"] = last["text"].rstrip()
    return turns


def tool_fields(request: ChatRequest, provider: str) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` (none at all when the request offers no tools and its history called
    none; ``auto``, the API's default, is left out). A tool the history called that is no longer offered is
    declared with an open schema, under ``tool_choice: none`` when nothing else is offered."""
    tools = [
        {"name": tool.name, "description": tool.description, "input_schema": {"type": "object", **tool.parameters}}
        for tool in request.tools
    ]
    offered = {tool.name for tool in request.tools}
    for message in request.conversation:
        for call in message.tool_calls:
            if call.name not in offered:
                offered.add(call.name)
                tools.append({"name": call.name, "description": "", "input_schema": dict(ANY_OBJECT)})
    if not tools:
        return {}
    choice = tool_choice(request, provider)
    fields: dict[str, Any] = {"tools": tools}
    if not request.tools or choice.kind == "none":
        fields["tool_choice"] = {"type": "none"}
    elif choice.kind == "required":
        fields["tool_choice"] = {"type": "any"}
    elif choice.kind == "tool":
        fields["tool_choice"] = {"type": "tool", "name": choice.name}
    return fields


def refuse_forced_tools_while_thinking(body: dict[str, Any], provider: str, model: str) -> None:
    """The API refuses a ``tool_choice`` that forces a call while the model thinks (R3.1): said before any
    request, in words."""
    if "thinking" in body and (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise errors.InvalidRequestError(
            provider, f"The model {model!r} takes no forced tool call (tool_choice required or a tool) while it thinks."
        )


def place_breakpoints(body: dict[str, Any]) -> None:
    """``cache_control`` on a system prompt long enough to cache and on the last block before the newest user
    turn (text or a ``tool_use`` block; thinking blocks take none): the next request then reads the whole
    earlier conversation from the cache, the tool definitions before it included."""
    breakpoints = 0
    system = body.get("system")
    if isinstance(system, str) and len(system) >= SYSTEM_CACHE_MIN_CHARS:
        body["system"] = [{"type": "text", "text": system, "cache_control": dict(EPHEMERAL)}]
        breakpoints += 1
    turns = body["messages"]
    newest_user = max((i for i, turn in enumerate(turns) if turn["role"] == "user"), default=0)
    if newest_user > 0 and breakpoints < MAX_BREAKPOINTS:
        last = turns[newest_user - 1]["content"][-1]
        if last.get("type") not in STATE_BLOCKS:  # thinking blocks take no cache_control
            turns[newest_user - 1]["content"][-1] = {**last, "cache_control": dict(EPHEMERAL)}
