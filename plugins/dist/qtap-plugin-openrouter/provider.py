"""OpenRouter: many providers' models behind one OpenAI-dialect API, with per-request cost.

How it differs from the dialect: reasoning is asked for with one ``reasoning`` object whatever the
upstream (``{"effort"}`` or ``{"max_tokens"}``, ``"exclude": true`` to reason without showing it); a
stream carries the reasoning as text (``delta.reasoning``) and as ``delta.reasoning_details`` fragments
that hold what the upstream needs back (Anthropic's signatures, OpenAI's encrypted items, Gemini's
thought signatures). The fragments are merged per type and index, handed back as this turn's state,
and sent back unmodified as ``reasoning_details`` on that assistant message (with its ``tool_calls`` when
the turn called tools: Anthropic and Gemini upstreams refuse the calls without it).

Prompt caching is automatic for most upstreams; Anthropic's models cache only what a request marks, so
with the profile's ``prompt_caching`` on (the default) the system prompt and the last message carry a
``cache_control`` breakpoint (which needs the content as a list of parts).
"""

from __future__ import annotations

import os
import re
from typing import Any

from providers import errors
from providers.contract import ChatRequest, Message
from providers.openai_format import Dialect, OpenAIDialectProvider, TurnState

# qtap's own default address; operators set QTAP_OPENROUTER_REFERER to their site's public URL.
DEFAULT_REFERER = "http://127.0.0.1:8000/"
DEFAULT_TITLE = "qtap"
# The upstreams that cache only at the breakpoints a request marks.
EXPLICIT_CACHING = re.compile(r"^anthropic/")
BREAKPOINT = {"type": "ephemeral"}


def _setting(name: str, default: str) -> str:
    """A Django setting when Django is configured, else the environment, else the default.

    The plugin must work without Django (scripts, benchmarks), so Django is only consulted."""
    try:
        from django.conf import settings

        if settings.configured:
            value = getattr(settings, name, None)
            if value:
                return str(value)
    except ImportError:  # pragma: no cover - Django is always installed alongside qtap
        pass
    return os.environ.get(name) or default


class ReasoningDetails:
    """The ``reasoning_details`` fragments of one reply, merged: consecutive fragments of one item share
    its ``type`` and ``index``; their ``text`` and ``summary`` pieces are joined, and a later non-empty
    value of any other field (``signature``, ``data``, ``id``) replaces an empty one. Values are kept as
    received: OpenRouter refuses an unmerged list, and the upstream a changed signature."""

    JOINED = ("text", "summary")

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, data: dict[str, Any]) -> None:
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            part = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
            fragments = part.get("reasoning_details") if isinstance(part, dict) else None
            for fragment in fragments if isinstance(fragments, list) else ():
                if isinstance(fragment, dict):
                    self._merge(fragment)

    def _merge(self, fragment: dict[str, Any]) -> None:
        key = (fragment.get("type"), fragment.get("index"))
        item = next((i for i in reversed(self.items) if (i.get("type"), i.get("index")) == key), None)
        if item is None or (key[1] is None and item is not self.items[-1]):
            self.items.append(dict(fragment))
            return
        for name, value in fragment.items():
            if name in self.JOINED and isinstance(value, str) and isinstance(item.get(name), str):
                item[name] += value
            elif name not in item or value not in (None, ""):
                item[name] = value

    def value(self) -> dict[str, Any] | None:
        return {"reasoning_details": self.items} if self.items else None


def _details(message: Message) -> list[Any] | None:
    """The merged ``reasoning_details`` this plugin attached to an assistant turn, or None."""
    state = message.provider_state
    details = state.get("reasoning_details") if message.role == "assistant" and isinstance(state, dict) else None
    return details if isinstance(details, list) and details else None


def _mark_breakpoints(messages: list[dict[str, Any]]) -> None:
    """A cache breakpoint on the last system message and on the last message: the stable prefix and
    the whole conversation so far, which the next turn starts with."""
    systems = [m for m in messages if m["role"] == "system"]
    for message in {id(m): m for m in (*systems[-1:], *messages[-1:])}.values():
        content = message["content"]
        if content is None:  # a turn of tool calls alone has no text to mark
            continue
        parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [p for p in parts if p.get("type") == "text" and p.get("text")]
        if texts:  # an empty text part cannot carry a breakpoint
            texts[-1]["cache_control"] = dict(BREAKPOINT)
            message["content"] = parts


class OpenRouterProvider(OpenAIDialectProvider):
    """Sends the attribution headers (``HTTP-Referer``, ``X-Title`` and its newer spelling
    ``X-OpenRouter-Title``), reads ``usage.cost`` into ``Usage.cost``, lists models with prices
    and context length, and checks the key with ``GET /key`` (``/models`` is public, so it
    proves nothing about a key). 402 means the account is out of credits: QuotaExceededError."""

    dialect = Dialect()

    def chat_body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().chat_body(request)
        for message, sent in zip(request.messages, body["messages"], strict=True):
            if (details := _details(message)) is not None:
                sent["reasoning_details"] = details
        if (reasoning := self._reasoning(request)) is not None:
            body["reasoning"] = reasoning
        caching = request.options.get("prompt_caching")  # unset (None): the manifest's default, on
        if self.config.prompt_caching and caching in (None, True) and EXPLICIT_CACHING.search(request.model):
            _mark_breakpoints(body["messages"])
        return body

    def _reasoning(self, request: ChatRequest) -> dict[str, Any] | None:
        """The unified ``reasoning`` object: an effort or a token budget (never both), and ``exclude``
        when the reasoning should not be shown; None leaves the model's default (and a model the
        rules give no reasoning knob gets none)."""
        options = request.reasoning
        rule = self.config.rule_for(request.model)
        if options is None or rule is None or rule.reasoning is None:
            return None
        if options.effort is not None and options.budget_tokens is not None:
            raise errors.InvalidRequestError(
                self.provider,
                f"The model {request.model!r} takes a reasoning effort or a thinking budget through OpenRouter, "
                "not both.",
            )
        knob: dict[str, Any] = {}
        if options.effort is not None:
            knob["effort"] = options.effort
        elif options.budget_tokens is not None:
            knob["max_tokens"] = options.budget_tokens
        if not options.summary:
            knob["exclude"] = True
        return knob or None

    def turn_state(self) -> TurnState:
        return ReasoningDetails()

    def extra_headers(self) -> dict[str, str]:
        title = _setting("QTAP_OPENROUTER_TITLE", DEFAULT_TITLE)
        return {
            "HTTP-Referer": _setting("QTAP_OPENROUTER_REFERER", DEFAULT_REFERER),
            "X-Title": title,
            "X-OpenRouter-Title": title,
        }

    async def validate_key(self) -> None:
        self.require_key()
        info = await self.get_json("key")
        if not isinstance(info, dict) or not isinstance(info.get("data"), dict):
            raise errors.ProtocolError(self.provider, "the key answer had no data object")
