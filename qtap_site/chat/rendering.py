"""The one place a message becomes HTML: the ``chat/chat.html#message`` partial, drawn here for the page,
for ``message.created`` and for the end of a reply alike (the page script only appends streamed text,
as text nodes, and swaps in this HTML).

Model output is untrusted: Markdown is rendered with raw HTML disabled, then sanitised with nh3; every
other value is escaped by the template. Images are not allowed: a remote image URL in model output would
leak the reader's data to its host.

May import: nothing of the chat app (the template loader draws the partial).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import nh3
from django.template.loader import get_template
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "td": {"style"},
    "th": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "commonmark" with html off: raw HTML in the source is escaped as text, never passed through.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.enable("strikethrough")
    return md


def render_markdown(text: str) -> str:
    """Markdown → sanitised HTML. Code blocks keep their language class; scripts, event handlers
    and ``javascript:`` links are removed."""
    if not text:
        return ""
    html = _markdown().render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


@lru_cache(maxsize=2048)
def markdown_of_history(text: str) -> str:
    """``render_markdown`` memoised per text: a saved reply is parsed once per process, not per view."""
    return render_markdown(text)


MESSAGE_PARTIAL = "chat/chat.html#message"


def message_html(message: Mapping[str, Any], *, retryable: bool) -> str:
    """The message's HTML, from its frame shape (``protocol.message_dict``): ``html`` holds its sanitised
    text; ``retryable`` says whether a failed reply offers "Retry". A reply that called tools is drawn
    in parts: each turn's text, then its calls."""
    context = {"m": message, "retryable": retryable, "parts": tool_parts(message)}
    return str(get_template(MESSAGE_PARTIAL).render(context))


def tool_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{html, calls}]``: the reply's text cut where its turns that called tools ended, each piece
    followed by those calls (their arguments as indented JSON, for reading). Empty without calls."""
    calls = message.get("tool_calls") or []
    if not calls:
        return []
    content = message.get("content") or ""
    parts: list[dict[str, Any]] = []
    start = 0
    for offset in sorted({min(max(int(c.get("offset", 0)), 0), len(content)) for c in calls}):
        shown = [{**c, "arguments_json": _pretty(c.get("arguments"))} for c in calls if c.get("offset") == offset]
        parts.append({"html": markdown_of_history(content[start:offset]), "calls": shown})
        start = max(start, offset)
    parts.append({"html": markdown_of_history(content[start:]), "calls": []})
    return parts


def _pretty(value: Any) -> str:
    return json.dumps(value if value is not None else {}, indent=2, ensure_ascii=False)
