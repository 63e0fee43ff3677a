"""One chat as Markdown, for reading: its title and system prompt, then every message of the tree, depth
first. Where a message has several replies (regenerated or edited), each branch is introduced as
"Branch k of n" and indented by one more quote level, so the branches read apart without losing any.

The texts are written as they are (they are Markdown already); reasoning, tool calls and results go in
``<details>`` blocks and fenced code, so a reader of the file sees what the reply did.

May import: ``qtap_site.chat.models``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

from qtap_site.chat.models import Chat, Message, ToolCall

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def chat_markdown(chat: Chat) -> str:
    messages = list(Message.objects.filter(chat=chat).order_by("id").prefetch_related("attachments", "tool_calls"))
    children: defaultdict[int | None, list[Message]] = defaultdict(list)
    for message in messages:
        children[message.parent_id].append(message)
    lines = [f"# {chat.title or 'Untitled chat'}", "", f"Created {chat.created_at:%Y-%m-%d %H:%M} UTC", ""]
    if chat.system_prompt.strip():
        lines += ["**System prompt**", "", *_quoted(chat.system_prompt, 1), ""]
    # Depth first without recursion: a long chat is a deep tree.
    stack: list[tuple[Message, int, str]] = [(m, 0, "") for m in reversed(children[None])]
    while stack:
        message, depth, label = stack.pop()
        lines += _message(message, depth, label)
        replies = children[message.pk]
        forks = len(replies) > 1
        for index, reply in reversed(list(enumerate(replies, 1))):
            stack.append((reply, depth + forks, f"Branch {index} of {len(replies)}" if forks else ""))
    return "\n".join(lines).rstrip() + "\n"


def _quoted(text: str, depth: int) -> list[str]:
    prefix = "> " * depth
    return [(prefix + line).rstrip() for line in text.splitlines()] or [prefix.rstrip()]


def _message(message: Message, depth: int, label: str) -> list[str]:
    head = f"## {ROLE_NAMES.get(message.role, message.role)}"
    facts = [f for f in (message.model, message.created_at.strftime("%Y-%m-%d %H:%M")) if f]
    if message.status != Message.Status.COMPLETE:
        facts.append(message.status)
    body: list[str] = [f"{head} · {' · '.join(facts)}", ""]
    if label:
        body = [f"*{label}*", "", *body]
    for attachment in message.attachments.all():
        body += [f"📎 {attachment.filename} ({attachment.mime_type}, {attachment.size} bytes)", ""]
    if message.reasoning.strip():
        body += ["<details><summary>Reasoning</summary>", "", message.reasoning.strip(), "", "</details>", ""]
    for call in message.tool_calls.all():
        body += _tool_call(call)
    if message.content.strip():
        body += [message.content.strip(), ""]
    if message.error_message:
        body += [f"*Error: {message.error_message}*", ""]
    if not depth:
        return body
    return [*_quoted("\n".join(body), depth), ""]


def _tool_call(call: ToolCall) -> list[str]:
    arguments = json.dumps(call.arguments, ensure_ascii=False, indent=2)
    outcome = "error" if call.is_error else call.status
    summary = f"<details><summary>Tool call: {call.name} ({outcome})</summary>"
    return [summary, "", *_fenced(arguments, "json"), "", *_fenced(call.result, ""), "", "</details>", ""]


def _fenced(text: str, language: str) -> list[str]:
    """``text`` in a code fence longer than any run of backticks inside it, so a result that holds a
    fence of its own cannot end this one."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]
