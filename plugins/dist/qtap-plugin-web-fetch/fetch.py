"""Fetching one page: redirects followed here, hop by hop, under the one URL policy, within a size cap
and a time cap.

Requests go through qtap's transport (``providers.transport.AiohttpTransport``, the one under every
provider client), which checks every address it connects to against the outbound-URL policy. The client
never follows redirects, so this module does, at most ``MAX_REDIRECTS`` times, and every URL it is sent
to passes ``options.hop_problem`` first: a redirect to a refused host is refused before anything is sent.

Each fetch has a client of its own, closed when it ends, rather than ``providers.http.get_client``'s
pool: that pool keeps a client per origin for the life of the process, which suits a handful of
provider hosts and not every site a model may read. Requests are built by hand and sent with ``send``:
no cookie jar and no header but the few set here.

A cancelled fetch stops at once: the response and the client are closed in ``finally``, and a response
closed before its end closes its connection.

May import: ``providers.http``, ``providers.transport`` (and this plugin's ``options``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from providers.http import Timeouts
from providers.transport import AiohttpTransport, UrlRefused

from .options import Options, hop_problem

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
HEADERS = {
    "User-Agent": "qtap-web-fetch/1.0",
    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.1",
    "Accept-Encoding": "gzip, deflate",
}


class FetchFailed(Exception):
    """A fetch that did not give a page; the message says why, for the model to read."""


@dataclass(frozen=True)
class Page:
    url: str  # where the page was found, after redirects
    status: int
    reason: str
    content_type: str  # the media type, lower-case, without parameters ("" when the server sent none)
    charset: str | None
    body: bytes
    truncated: bool  # the body went past the size cap and was cut there
    redirects: int


def _client(options: Options) -> httpx.AsyncClient:
    seconds = options.timeout_seconds
    timeouts = Timeouts(connect=min(10.0, seconds), read=seconds, write=seconds, pool=seconds)
    return httpx.AsyncClient(
        timeout=timeouts.as_httpx(),
        follow_redirects=False,
        transport=AiohttpTransport(limits=httpx.Limits(max_connections=4, max_keepalive_connections=4)),
        trust_env=False,  # a proxy from the environment would bypass the transport
    )


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the decoded body (a compressed bomb stops at the cap too)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts)[:limit], True
    return b"".join(parts), False


def _url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text.strip())
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise FetchFailed(f"{text!r} is not a URL web_fetch can read ({exc}).") from None
    if not url.is_absolute_url:
        raise FetchFailed(f"{text!r} is not an absolute http:// or https:// URL.")
    return url.copy_with(fragment=None)


async def _hops(client: httpx.AsyncClient, start: httpx.URL, options: Options) -> Page:
    url = start
    for redirects in range(MAX_REDIRECTS + 1):
        problem = hop_problem(url, options)
        if problem:
            where = f"The redirect to {url} was refused: " if redirects else ""
            raise FetchFailed(f"{where}{problem}")
        request = httpx.Request("GET", url, headers=HEADERS, extensions={"timeout": client.timeout.as_dict()})
        try:
            response = await client.send(request, stream=True)
        except UrlRefused as exc:
            where = f"The redirect to {url} was refused: " if redirects else ""
            raise FetchFailed(f"{where}{exc}") from None
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                try:
                    url = _url(str(url.join(location)))
                except FetchFailed as exc:
                    raise FetchFailed(f"{url} redirected to a URL web_fetch cannot read: {exc}") from None
                continue
            body, truncated = await _read_capped(response, options.max_bytes)
            media = response.headers.get("content-type", "")
            return Page(
                url=str(url),
                status=response.status_code,
                reason=response.reason_phrase,
                content_type=media.split(";", 1)[0].strip().lower(),
                charset=response.charset_encoding,
                body=body,
                truncated=truncated,
                redirects=redirects,
            )
        finally:
            await response.aclose()
    raise FetchFailed(f"{start} redirected more than {MAX_REDIRECTS} times; web_fetch stopped following.")


async def fetch(text: str, options: Options) -> Page:
    """The page at ``text``; raises ``FetchFailed`` in words for anything expected to go wrong."""
    start = _url(text)
    try:
        async with asyncio.timeout(options.timeout_seconds), _client(options) as client:
            return await _hops(client, start, options)
    except (TimeoutError, httpx.TimeoutException):
        raise FetchFailed(f"{start} did not answer within the time limit of {options.timeout_seconds:g} s.") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise FetchFailed(f"{start} could not be fetched: {reason}") from None
