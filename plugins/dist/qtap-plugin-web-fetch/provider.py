"""The ``web_fetch`` tool: one URL in, its readable text out, every failure a tool error in words.

What the model reads starts with where the text came from (title, final URL, the redirects), then the
text, then a note when it was cut: at the size cap while reading, or at ``max_chars`` after extraction,
so the model never takes a part for the whole.

May import: ``providers.contract`` (and this plugin's ``fetch``, ``options``, ``readable``).
"""

from __future__ import annotations

from typing import Any

from providers.contract import ToolContext, ToolResult, ToolSpec

from .fetch import FetchFailed, Page, fetch
from .options import options_from
from .readable import NotReadable, readable

TOOL = "web_fetch"
DEFAULT_MAX_CHARS = 20_000
MIN_MAX_CHARS, MAX_MAX_CHARS = 100, 200_000
ERROR_EXCERPT = 500  # characters of an error page's text shown with its status

SPEC = ToolSpec(
    name=TOOL,
    description=(
        "Fetch a web page and answer its readable text: for HTML the title and main text (no menus, "
        "scripts or styles), plain text and JSON as they are. Other file types are refused. Use it to read "
        "a page whose URL you know."
    ),
    parameters={
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "The absolute http:// or https:// URL to fetch."},
            "max_chars": {
                "type": "integer",
                "minimum": MIN_MAX_CHARS,
                "maximum": MAX_MAX_CHARS,
                "description": f"The most characters of text to answer (default {DEFAULT_MAX_CHARS}).",
            },
        },
        "required": ["url"],
        "additionalProperties": False,
    },
)


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):g} MB" if count >= 1024 * 1024 else f"{count / 1024:g} KB"


def _max_chars(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_MAX_CHARS
    return int(min(max(value, MIN_MAX_CHARS), MAX_MAX_CHARS))


def _heading(page: Page, title: str | None, start: str) -> list[str]:
    lines = [f"Title: {title}"] if title else []
    lines.append(f"URL: {page.url}")
    if page.redirects:
        lines.append(f"(Redirected {page.redirects} time{'s' if page.redirects > 1 else ''} from {start}.)")
    return lines


class WebFetchProvider:
    async def list_tools(self, context: ToolContext) -> list[ToolSpec]:
        return [SPEC]

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if name != TOOL:
            return ToolResult(f"web_fetch offers no tool named {name!r}.", is_error=True)
        url = arguments.get("url")
        if not isinstance(url, str) or not url.strip():
            return ToolResult("web_fetch needs a url: the absolute http:// or https:// URL to fetch.", is_error=True)
        options = options_from(context.settings)
        try:
            page = await fetch(url, options)
        except FetchFailed as exc:
            return ToolResult(str(exc), is_error=True)
        if page.status >= 400:
            return ToolResult(await _error_page(page), is_error=True)
        try:
            text = await readable(page.body, page.content_type, page.charset, page.url)
        except NotReadable as exc:
            return ToolResult(str(exc), is_error=True)
        limit = _max_chars(arguments.get("max_chars"))
        body = text.text
        notes = []
        if page.truncated:
            notes.append(
                f"[The page is larger than the size cap of {_size(options.max_bytes)}: only its beginning was "
                "read, so this text is cut.]"
            )
        if len(body) > limit:
            notes.append(f"[Cut at {limit} of {len(body)} characters; ask with a larger max_chars for more.]")
            body = body[:limit]
        parts = ["\n".join(_heading(page, text.title, url.strip())), body or "(The page has no readable text.)"]
        return ToolResult("\n\n".join([*parts, *notes]))


async def _error_page(page: Page) -> str:
    """The status in words, with the start of what the error page said when it is readable."""
    said = ""
    try:
        excerpt = (await readable(page.body, page.content_type, page.charset, page.url)).text[:ERROR_EXCERPT].strip()
        said = f" It said: {excerpt}" if excerpt else ""
    except NotReadable:
        pass
    return f"{page.url} answered HTTP {page.status} {page.reason}.{said}"
