"""The HTTP under an MCP connection: the SDK's ``httpx2`` client over qtap's own transport.

The ``mcp`` SDK speaks ``httpx2``; qtap's outbound-URL policy lives in ``providers.transport``'s
``AiohttpTransport``, an ``httpx`` transport that checks the literal host before anything is sent and
every address a name resolves to as the connection is made. ``PolicyTransport`` hands each request of the
SDK's client to that transport, so an MCP connection reaches exactly what a provider call may reach and
there is no second policy to drift. It also keeps what the SDK's errors do not say: the HTTP status a
server refused with and the policy's refusal, so the model and the settings page are told in words.

One ``PolicyTransport`` (one aiohttp pool) serves one connection to one server and is closed with it:
the user's headers are set on that connection's client only, and closing it drops every socket it
opened, which is how a server learns that a cancelled call's client has gone.

May import: ``providers.transport`` (and ``httpx``/``httpx2``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
import httpx2

from providers.transport import AiohttpTransport, UrlRefused

CONNECT_SECONDS = 10.0
# A Streamable HTTP server may hold a response stream open while a tool runs: the read timeout is long,
# and the host's per-call timeout (toolConfig.timeoutSeconds) is what bounds a call.
READ_SECONDS = 300.0


class PolicyRefused(httpx2.ConnectError):
    """qtap's outbound-URL policy refused the host or an address it resolved to."""


def _as_httpx2(exc: httpx.HTTPError, request: httpx2.Request) -> httpx2.HTTPError:
    """The httpx2 exception of the same name (the SDK catches httpx2's types), message kept."""
    if isinstance(exc, UrlRefused):
        return PolicyRefused(str(exc), request=request)
    kind = getattr(httpx2, type(exc).__name__, None)
    if not (isinstance(kind, type) and issubclass(kind, httpx2.TransportError)):
        kind = httpx2.TransportError
    return kind(str(exc) or type(exc).__name__, request=request)


class _Body(httpx2.AsyncByteStream):
    """The inner response's raw bytes (httpx2 decodes them); closing it early closes the connection."""

    def __init__(self, inner: httpx.Response, request: httpx2.Request) -> None:
        self._inner = inner
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner.stream:  # type: ignore[union-attr]
                yield chunk
        except httpx.HTTPError as exc:
            raise _as_httpx2(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


class PolicyTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends through ``providers.transport.AiohttpTransport``."""

    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
        self._inner = AiohttpTransport(limits=limits)
        self.refusal: str | None = None  # the policy's words, when it refused
        self.refused_status: int | None = None  # the first 4xx/5xx an MCP request was answered with

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        inner_request = httpx.Request(
            request.method,
            str(request.url),
            headers=request.headers.raw,
            content=body,
            extensions={"timeout": request.extensions.get("timeout", {})},
        )
        try:
            inner = await self._inner.handle_async_request(inner_request)
        except httpx.HTTPError as exc:
            mapped = _as_httpx2(exc, request)
            if isinstance(mapped, PolicyRefused) and self.refusal is None:
                self.refusal = str(exc)
            raise mapped from exc
        # A DELETE that ends the session may be refused (405) without anything having gone wrong.
        if inner.status_code >= 400 and request.method != "DELETE" and self.refused_status is None:
            self.refused_status = inner.status_code
        return httpx2.Response(
            inner.status_code,
            headers=inner.headers.raw,
            stream=_Body(inner, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": inner.extensions.get("reason_phrase", b"")},
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def policy_client(transport: PolicyTransport, headers: Mapping[str, str]) -> httpx2.AsyncClient:
    """The client one connection uses: the server's own headers, no proxies from the environment
    (they would bypass the transport), no redirects followed by the client (the SDK follows only those
    that stay on the server's origin, so the headers never travel elsewhere)."""
    return httpx2.AsyncClient(
        transport=transport,
        headers=dict(headers),
        timeout=httpx2.Timeout(CONNECT_SECONDS, read=READ_SECONDS),
        follow_redirects=False,
        trust_env=False,
    )
