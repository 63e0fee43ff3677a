"""What the user typed, made safe for either engine, and a highlighted snippet made safe for the page.

A query is never handed to an engine's own syntax. It is read as terms: each quoted stretch is a phrase,
every other whitespace-separated word is a term of its own, and all terms must match. A term keeps its
raw text (so each engine tokenizes it exactly as it tokenized the documents) but an engine only ever
receives it as a quoted FTS5 string or a ``phraseto_tsquery`` parameter, so ``"``, ``*``, ``-``,
``NEAR(``, ``OR`` and unbalanced quotes are plain characters. A term with no letter or digit is dropped:
a query left with none is "nothing to search for", answered without asking the database.

Snippets come back from the engines with the matched words between two private-use characters; the
message text around them is model output or user input, so it is escaped first and only those
markers become ``<mark>``.

May import: nothing of qtap's (both engines import it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Longer input is cut (and the page says so): a pasted page of text is not a search.
MAX_QUERY_CHARS = 500
MAX_TERMS = 12

# Unicode private-use characters: no tokenizer treats them as part of a word, and text rarely holds them.
MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"

_QUOTED_OR_WORD = re.compile(r'"([^"]*)"?|(\S+)')
_HAS_WORD = re.compile(r"[^\W_]")


@dataclass(frozen=True)
class Term:
    """One thing that must match: a word, or a phrase whose words must be adjacent and in order."""

    text: str
    is_phrase: bool


@dataclass(frozen=True)
class ParsedQuery:
    terms: tuple[Term, ...]
    truncated: bool  # the input was longer than MAX_QUERY_CHARS or held more than MAX_TERMS terms

    def __bool__(self) -> bool:
        return bool(self.terms)

    def fts5(self) -> str:
        """The FTS5 MATCH expression: each term a quoted string (quotes doubled), implicitly ANDed."""
        return " ".join('"' + term.text.replace('"', '""') + '"' for term in self.terms)


def parse(raw: str) -> ParsedQuery:
    """The terms of ``raw``; an unbalanced quote opens a phrase that runs to the end of the input."""
    truncated = len(raw) > MAX_QUERY_CHARS
    if truncated:
        # Cut at a space where there is one, so no word is searched for half of itself.
        head = raw[:MAX_QUERY_CHARS]
        raw = head if raw[MAX_QUERY_CHARS].isspace() or not head.strip() else head.rsplit(None, 1)[0]
    terms: list[Term] = []
    for match in _QUOTED_OR_WORD.finditer(raw):
        phrase, word = match.group(1), match.group(2)
        text = " ".join((phrase if phrase is not None else word).split())
        if not _HAS_WORD.search(text):
            continue  # only punctuation: nothing either engine could match
        term = Term(text=text, is_phrase=phrase is not None and " " in text)
        if term not in terms:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        terms, truncated = terms[:MAX_TERMS], True
    return ParsedQuery(terms=tuple(terms), truncated=truncated)


def snippet_html(marked: str) -> SafeString:
    """``marked`` (text with MARK_OPEN / MARK_CLOSE around matches) as HTML: escaped, matches in <mark>.

    The markers are read as a toggle that never nests, and an open mark is closed at the end, so a stray
    marker character in the text itself can at worst highlight a word, never unbalance the page.
    """
    parts: list[str] = []
    inside = False
    for piece in re.split(f"([{MARK_OPEN}{MARK_CLOSE}])", marked):
        if piece == MARK_OPEN:
            if not inside:
                parts.append("<mark>")
                inside = True
        elif piece == MARK_CLOSE:
            if inside:
                parts.append("</mark>")
                inside = False
        else:
            parts.append(escape(piece))
    if inside:
        parts.append("</mark>")
    return mark_safe("".join(parts))  # noqa: S308 -- every piece of text was escaped just above


@dataclass(frozen=True)
class SearchResult:
    """One hit: a message (``message_id`` set) or a chat whose title matched (``message_id`` None).

    ``when`` is the message's creation time, or for a title the chat's last activity: results are shown
    newest first by it.
    """

    chat_id: int
    message_id: int | None
    title: str
    snippet: SafeString
    when: datetime
    role: str


def newest(results: list[SearchResult], limit: int) -> list[SearchResult]:
    """The newest ``limit`` of ``results`` (a message and a title of the same moment: the message first)."""
    return sorted(results, key=lambda r: (-r.when.timestamp(), -(r.message_id or 0), -r.chat_id))[:limit]
