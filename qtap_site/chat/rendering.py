"""The one place a message is stored as HTML: the ``chat/chat.html#message`` partial, drawn here for the
page, for ``message.created`` and for the end of a reply alike. While a reply streams the page script
draws a provisional copy (vendored marked + DOMPurify, to the same allow-list) and swaps in this HTML at
the end.

Model output is untrusted: Markdown is rendered with raw HTML disabled, then sanitised with nh3; every
other value is escaped by the template. Code blocks are highlighted by Pygments; the sanitiser keeps a
class only where it is ours (a lexer's language on ``code``, Pygments' token classes on ``span``). Images
are not allowed: a remote image URL in model output would leak the reader's data to its host.

May import: nothing of the chat app (the template loader draws the partial).
"""

from __future__ import annotations

import html as html_escape
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import nh3
from django.template.loader import get_template
from django.urls import reverse
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_all_lexers, get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"style"},
    "th": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# Classes survive only where they are ours: a code block's language (a Pygments lexer's name) and the
# token classes of Pygments' highlighting; every other class is dropped.
LANGUAGES = {alias for _, aliases, _, _ in get_all_lexers() for alias in aliases}
TOKEN_CLASSES = {name for name in STANDARD_TYPES.values() if name}
ALLOWED_CLASSES = {"code": {f"language-{name}" for name in LANGUAGES}, "span": TOKEN_CLASSES}
_FORMATTER = HtmlFormatter(nowrap=True)
# A code block as the sanitiser leaves it, and the language its class names.
_CODE_BLOCK = re.compile(r'<pre><code(?: class="(?:language-([^"]+))?")?>')


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer | None:
    """Pygments' lexer of a language name, made once (finding and building one costs as much as using it)."""
    try:
        return get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    """A fenced block in a language Pygments knows: its token spans, inside the block markdown-it draws
    (``<pre><code class="language-…">``). An unknown language, or none, stays plain escaped text."""
    lexer = _lexer(lang.strip().lower()[:40])
    if lexer is None:
        return ""  # markdown-it escapes it
    name = lexer.aliases[0] if lexer.aliases else lang.strip().lower()
    return f'<pre><code class="language-{html_escape.escape(name)}">{highlight(code, lexer, _FORMATTER)}</code></pre>\n'


def _code_head(match: re.Match[str]) -> str:
    lang = match.group(1)
    code = f'<pre><code class="language-{lang}">' if lang else "<pre><code>"
    return (
        f'<div class="code-block"><div class="code-head"><span class="code-lang">{lang or "code"}</span></div>' + code
    )


def _with_code_heads(html: str) -> str:
    """Each code block behind a header naming its language (the page script adds its copy button: the
    drawing itself holds no control). Runs on sanitised HTML, where
    every ``<pre>`` is a code block markdown-it drew (raw HTML never passes) and the language class is
    one of ``LANGUAGES``."""
    return _CODE_BLOCK.sub(_code_head, html).replace("</code></pre>", "</code></pre></div>")


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # "commonmark" with html off: raw HTML in the source is escaped as text, never passed through.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "highlight": _highlight})
    md.enable("table")
    md.enable("strikethrough")
    return md


def render_markdown(text: str) -> str:
    """Markdown → sanitised HTML. Code blocks are highlighted (Pygments' token classes), keep their
    language class and get a header with the language; scripts, event handlers and
    ``javascript:`` links are removed."""
    if not text:
        return ""
    html = _markdown().render(text)
    return _with_code_heads(_cleaner().clean(html))


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    # Built once: handing nh3 the allow-lists (a thousand language classes) per call costs more than cleaning.
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


@lru_cache(maxsize=2048)
def markdown_of_history(text: str) -> str:
    """``render_markdown`` memoised per text: a saved reply is parsed once per process, not per view."""
    return render_markdown(text)


MESSAGE_PARTIAL = "chat/chat.html#message"

# A failed reply says what happened in words, and the way out: (what happened, where to fix it) — "keys"
# (the API keys page), "profile" (the connection profiles) or "" (nothing to change: retry, or wait).
PROBLEMS: dict[str, tuple[str, str]] = {
    "authentication": ("The provider did not accept the API key.", "keys"),
    "missing_api_key": ("This chat's connection profile has no usable API key.", "keys"),
    "permission": ("The API key is not allowed to use this model.", "keys"),
    "quota_exceeded": ("The provider account is out of credit or over its quota.", "keys"),
    "rate_limited": ("The provider is limiting requests right now.", ""),
    "model_not_found": ("The provider does not know this model.", "profile"),
    "invalid_request": ("The provider refused the request.", "profile"),
    "context_length": ("The conversation is longer than this model can read.", "profile"),
    "content_filter": ("The provider's content filter stopped the reply.", ""),
    "overloaded": ("The provider is overloaded.", ""),
    "unavailable": ("The provider is unavailable.", ""),
    "timeout": ("The provider took too long to answer.", ""),
    "connection": ("The server could not reach the provider (check the base URL).", "profile"),
    "url_refused": ("The server may not call the profile's base URL.", "profile"),
    "base_url_refused": ("The server may not call the profile's base URL.", "profile"),
    "no_profile": ("This chat has no connection profile.", "profile"),
    "provider_unavailable": ("The profile's provider plugin is missing or turned off.", "profile"),
    "capability_not_supported": ("The profile's model cannot do this.", "profile"),
    "unsupported_attachment": ("The profile's provider cannot take this attachment.", "profile"),
    "budget_exceeded": ("Your usage budget for this period is spent.", ""),
}
FIX_URLS = {"keys": "providers:keys", "profile": "providers:profiles"}


def problem(code: str) -> dict[str, str]:
    """``{words, fix_url, fix}`` for a failed reply's error code."""
    words, fix = PROBLEMS.get(code, ("The reply failed.", ""))
    return {"words": words, "fix": fix, "fix_url": reverse(FIX_URLS[fix]) if fix else ""}


def message_html(message: Mapping[str, Any], *, retryable: bool) -> str:
    """The message's HTML, from its frame shape (``protocol.message_dict``): ``html`` holds its sanitised
    text; ``retryable`` says whether a failed reply offers "Retry". A reply that called tools is drawn
    in parts: each turn's text, then its calls."""
    context = {"m": message, "retryable": retryable, "parts": tool_parts(message)}
    if message.get("status") == "error":
        context["problem"] = problem(str(message.get("error_code") or ""))
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
