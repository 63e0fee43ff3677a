"""A fetched page as readable text: the title and main text of HTML, plain text and JSON as they are.

HTML goes through trafilatura, which is made for this: it finds the main content of a page and leaves
out navigation, footers, scripts and styles, and reads the title from the page's metadata. A page it
finds no main content in (a bare fragment, a page that is all navigation) falls back to trafilatura's
plain conversion of the whole document, which still drops scripts and styles. Extraction is CPU work
on up to the size cap, so it runs in a worker thread, off the event loop.

Anything else (images, PDFs, archives, binaries) is refused in words: the model is told what it was.

May import: nothing of qtap's (trafilatura only).
"""

from __future__ import annotations

import asyncio
import codecs
from dataclasses import dataclass

import trafilatura

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
JSON_SUFFIX = "+json"


@dataclass(frozen=True)
class Readable:
    title: str | None
    text: str


class NotReadable(Exception):
    """A page of a type web_fetch does not read; the message names it."""


def kind_of(content_type: str, body: bytes) -> str:
    """``html``, ``json`` or ``text``; raises ``NotReadable`` for anything else."""
    if content_type in HTML_TYPES:
        return "html"
    if content_type == "application/json" or content_type.endswith(JSON_SUFFIX):
        return "json"
    if content_type.startswith("text/"):
        return "text"
    if not content_type:  # the server did not say: a look at the start decides
        head = body[:512].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            return "html"
        if b"\x00" not in body[:4096]:
            return "text"
    raise NotReadable(
        f"The page is {content_type or 'binary content'}, which web_fetch does not read "
        "(it reads HTML, plain text and JSON)."
    )


def _encoding(charset: str | None) -> str:
    try:
        return codecs.lookup(charset).name if charset else "utf-8"
    except LookupError:  # a charset Python does not know: UTF-8, with replacements, reads most pages
        return "utf-8"


def decode(body: bytes, charset: str | None) -> str:
    encoding = _encoding(charset)
    if body.startswith(codecs.BOM_UTF8):
        body, encoding = body[len(codecs.BOM_UTF8) :], "utf-8"
    return body.decode(encoding, errors="replace")


def _from_html(body: bytes, url: str) -> Readable:
    document = trafilatura.bare_extraction(
        body, url=url, with_metadata=True, include_comments=False, include_tables=True, include_links=False
    )
    title = getattr(document, "title", None) if document is not None else None
    text = (getattr(document, "text", None) or "") if document is not None else ""
    if not text.strip():
        text = trafilatura.html2txt(body) or ""
    return Readable(title=title.strip() if isinstance(title, str) and title.strip() else None, text=text.strip())


async def readable(body: bytes, content_type: str, charset: str | None, url: str) -> Readable:
    kind = kind_of(content_type, body)
    if kind == "html":
        return await asyncio.to_thread(_from_html, body, url)
    return Readable(title=None, text=decode(body, charset))
