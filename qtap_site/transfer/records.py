"""What every import format is read into before anything is written: conversations of messages that name
their parent by a key of the file's own, and the one error an import raises (``ImportProblem``).

The readers (``archive``, ``chatgpt``, ``claude``) build these; ``writing`` saves them. Keeping the tree
in keys until the end lets a reader drop nodes (system turns, empty ones) and re-parent their children
before any row exists.

May import: nothing of the app (the first room after ``models``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_datetime

# ``tick(done, total)``: how far a reader or the writer has got, for an import's progress report.
Tick = Callable[[int, int], None]


def no_tick(done: int, total: int) -> None:
    """The ``Tick`` of an import nobody watches."""


class ImportProblem(Exception):
    """A file that cannot be imported: ``error`` is a short code, ``detail`` says what and where."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail


@dataclass
class MessageRecord:
    key: str
    parent: str | None
    role: str
    content: str = ""
    reasoning: str = ""
    status: str = "complete"
    plugin: str = ""
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: Decimal | None = None
    finish_reason: str = ""
    error_code: str = ""
    error_message: str = ""
    ttft_ms: int | None = None
    notes: str = ""
    created_at: datetime | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_rounds: list[dict[str, Any]] | None = None


@dataclass
class ConversationRecord:
    source: str
    external_id: str
    title: str = ""
    system_prompt: str = ""
    created_at: datetime | None = None
    profile_name: str = ""
    messages: list[MessageRecord] = field(default_factory=list)
    # The leaf of the branch the source showed last; it is saved last so it is the chat's newest message,
    # which is the branch the chat page opens on.
    current: str | None = None


def timestamp(value: Any, where: str) -> datetime | None:
    """An ISO 8601 string or a Unix time (ChatGPT's floats) as an aware datetime; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ImportProblem("bad_export", f"{where}: {value!r} is not a time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ImportProblem("bad_export", f"{where}: {value!r} is not a time") from None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ImportProblem("bad_export", f"{where}: {value!r} is not a time")


def nearest_kept(key: str | None, dropped: dict[str, str | None]) -> str | None:
    """``key``, or its nearest ancestor not in ``dropped`` (key → its parent); a cycle cannot loop."""
    seen = 0
    while key is not None and key in dropped and seen <= len(dropped):
        key, seen = dropped[key], seen + 1
    return None if key in dropped else key


def keep_only(messages: list[MessageRecord], dropped: dict[str, str | None]) -> list[MessageRecord]:
    """The kept ``messages`` with their parents that were ``dropped`` (system turns, tool turns, empty
    nodes) skipped: each is re-parented to its nearest kept ancestor, so siblings stay siblings."""
    for message in messages:
        message.parent = nearest_kept(message.parent, dropped)
    return messages


def insertion_order(messages: list[MessageRecord], current: str | None, where: str) -> list[MessageRecord]:
    """Parents before children, depth first, each node's children in file order except that the child on
    the way to ``current`` comes last, so ``current`` (or else the last branch) is saved last.

    A parent key no message has, or a cycle, is an ``ImportProblem`` naming the message."""
    by_key: dict[str, MessageRecord] = {}
    for message in messages:
        if message.key in by_key:
            raise ImportProblem("bad_export", f"{where}: message {message.key!r} appears twice")
        by_key[message.key] = message
    children: defaultdict[str | None, list[MessageRecord]] = defaultdict(list)
    for message in messages:
        if message.parent is not None and message.parent not in by_key:
            raise ImportProblem(
                "bad_export", f"{where}: message {message.key!r} names a parent {message.parent!r} that is not there"
            )
        children[message.parent].append(message)
    on_path: set[str | None] = set()
    node = current if current in by_key else None
    while node is not None and node not in on_path:
        on_path.add(node)
        node = by_key[node].parent
    ordered: list[MessageRecord] = []
    stack = list(reversed(_ranked(children[None], on_path)))
    while stack:
        message = stack.pop()
        ordered.append(message)
        stack.extend(reversed(_ranked(children[message.key], on_path)))
    if len(ordered) != len(messages):
        stray = next(m for m in messages if m.key not in {o.key for o in ordered})
        raise ImportProblem("bad_export", f"{where}: message {stray.key!r} is in a cycle of parent links")
    return ordered


def _ranked(nodes: list[MessageRecord], on_path: set[str | None]) -> list[MessageRecord]:
    return sorted(nodes, key=lambda m: m.key in on_path)  # stable: file order otherwise
