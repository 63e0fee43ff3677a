"""The transport under every plugin's ``httpx.AsyncClient``: aiohttp's connection pool and HTTP parser.

Plugins, the retry loop and the error mapping keep speaking httpx (requests, responses, timeouts,
exception types); only the bytes on the wire are handled by aiohttp. The reason is the streamed reply.
Providers send one small chunk of a chunked body per token, and httpx's own transport parses HTTP/1.1
in pure Python (h11), then passes every chunk up through half a dozen async generators: per relayed
token that was the largest cost of the whole relay. aiohttp parses in C and hands over, in one piece,
everything that has arrived since the last read, so the cost is paid per read instead of per token.

Every request passes the outbound-URL policy (``providers.urlpolicy``) here, at the moment of use: its
literal host before anything is sent, and every address a host name resolves to as the connection is
made (``PolicyResolver``), so no plugin, image download or tool fetch can reach a refused address.
A refusal is ``UrlRefused``, which the retry loop turns into a ProviderError that is never retried.

What httpx callers rely on is kept: no redirects are followed, the body is not decompressed here
(httpx decodes it), the connect/read/pool timeouts of each request apply, connections are kept
alive and reused, and closing a response that was not read to the end closes its connection, which
is how a stopped generation tells the provider to stop.

May import: ``providers.urlpolicy`` only.
"""

from __future__ import annotations

import asyncio
import atexit
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import certifi
import httpx
from aiohttp.abc import ResolveResult
from yarl import URL

from providers import urlpolicy


class UrlRefused(httpx.TransportError):
    """The outbound-URL policy refused this request's host or one of the addresses it resolves to."""


class _AddressRefused(OSError):
    """Raised inside aiohttp's connector (which only passes OSErrors on); becomes ``UrlRefused``."""


class PolicyResolver(aiohttp.ThreadedResolver):
    """The system resolver, refusing a name if any address it resolves to is refused by the policy."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        policy = urlpolicy.current_policy()
        for result in results:
            address = urlpolicy.literal_address(result["host"])
            problem = urlpolicy.address_problem(address, policy) if address is not None else None
            if problem:
                raise _AddressRefused(urlpolicy.describe_refusal(host, f"({address}) {problem}"))
        return results


@contextmanager
def _as_httpx_errors(request: httpx.Request, *, reading: bool) -> Iterator[None]:
    """aiohttp's exceptions as the httpx exceptions the retry loop and the stream mapping expect."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:  # before aiohttp's other timeouts: it is one of them
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _AddressRefused):
            raise UrlRefused(str(exc.os_error), request=request) from None
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.ClientOSError as exc:
        error = httpx.ReadError if reading else httpx.ConnectError
        raise error(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__, request=request) from exc
    except TimeoutError as exc:  # waiting for a free connection of the pool
        raise httpx.PoolTimeout("no connection became free in time", request=request) from exc


def _sum(*limits: float | None) -> float | None:
    """None (no limit) if any part has none."""
    return None if any(limit is None for limit in limits) else sum(limit for limit in limits if limit is not None)


def _left_over(content: aiohttp.StreamReader) -> bytes:
    """What the reader still buffers after its error was set (aiohttp 3.14: ``_buffer``, ``_read_nowait``,
    which skip the error check of the public reads)."""
    try:
        return content._read_nowait(-1) if getattr(content, "_buffer", None) else b""
    except Exception:
        return b""


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with _as_httpx_errors(self._request, reading=True):
            try:
                while chunk := await content.readany():
                    yield chunk
            except aiohttp.ClientError:
                # aiohttp raises a dropped connection's error ahead of the bytes that arrived before the
                # drop: a stream read late (a busy loop, a call opened before its send was saved) would
                # lose its last chunks. They are handed over first, then the error.
                if rest := _left_over(content):
                    yield rest
                raise

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # read to the end: the connection goes back to the pool
        else:
            self._response.close()  # cut short: close the connection so the server sees us leave


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (connection pool) per transport, created on first use inside the event loop
    it serves; ``providers.http.get_client`` keeps one client, hence one transport, per loop."""

    _live: weakref.WeakSet[AiohttpTransport] = weakref.WeakSet()

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._live.add(self)

    def abandon(self) -> None:
        """Drop the pool of an event loop that is gone (nothing can be awaited on it any more): its
        connections are closed without a goodbye, and nobody is warned about a session left open."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            connector = session.connector
            session.detach()
            if connector is not None:
                connector._close()  # the synchronous part of ``close()``: no loop is needed

    @classmethod
    def abandon_all(cls) -> None:
        for transport in list(cls._live):
            transport.abandon()

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry or 15,
                ssl=ssl.create_default_context(cafile=certifi.where()),  # the trust store httpx uses
                resolver=PolicyResolver(),
                # Every new connection resolves afresh, so a policy or DNS change applies to it at once.
                use_dns_cache=False,
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        problem = urlpolicy.host_problem(request.url.host, urlpolicy.current_policy())
        if problem:
            raise UrlRefused(urlpolicy.describe_refusal(request.url.host, problem), request=request)
        timeouts = request.extensions.get("timeout", {})
        try:
            body = request.content
        except httpx.RequestNotRead:  # a streamed upload: plugins send bytes, but read it rather than fail
            body = await request.aread()
        with _as_httpx_errors(request, reading=False):
            response = await self._session_now().request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # aiohttp's ``connect`` covers both waiting for a free slot of the pool and the
                    # handshake, which httpx times separately: allow the two together.
                    connect=_sum(timeouts.get("pool"), timeouts.get("connect")),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
            # aiohttp closes its sockets on the next turn of the loop; give it that turn.
            await asyncio.sleep(0)


# At interpreter exit the pools are dropped quietly instead of each warning that it was left open.
atexit.register(AiohttpTransport.abandon_all)
