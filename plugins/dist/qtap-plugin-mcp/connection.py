"""One connection to one MCP server: open it, do one piece of work on the session, close it.

Every use opens its own connection (Streamable HTTP, the SDK's ``ClientSession``) and closes it when
the work is done, so nothing of one user's session or headers outlives the call that needed it. Before
anything is sent the server's URL passes the outbound-URL policy as it stands now
(``providers.urlpolicy.refusal_at_use``); the connection's HTTP then goes through qtap's transport
(``bridge``), which checks every address it connects to.

A failure becomes one ``providers.errors`` exception saying in words what happened (unreachable, the
credentials refused, the URL refused, a timeout, an error the server answered), the server's name as
its ``provider`` and never a header value.

Cancellation: the work runs in a task of its own. When the caller is cancelled (a stop), that task is
cancelled — the SDK tells the server (``notifications/cancelled``, then the session's DELETE) — and is
given ``CANCEL_GRACE`` seconds to do so; past that the connection's sockets are dropped, which the
server sees as its client gone. Either way the caller's cancellation goes on at once.

May import: ``providers.errors``, ``providers.urlpolicy`` (and this plugin's ``bridge`` and ``servers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from providers import errors, urlpolicy

from .bridge import PolicyRefused, PolicyTransport, policy_client
from .servers import Server

logger = logging.getLogger("qtap.plugins.mcp")

T = TypeVar("T")
Work = Callable[[ClientSession], Awaitable[T]]

CANCEL_GRACE = 0.15  # seconds a cancelled call's connection may spend saying goodbye


def label(server: Server) -> str:
    return f"the MCP server {server.name}"


def sentence(exc: errors.ProviderError) -> str:
    """``the MCP server X could not be reached: …``: the error as the model and the user read it."""
    status = f" (HTTP {exc.status})" if exc.status and f"HTTP {exc.status}" not in exc.message else ""
    return f"{exc.provider} {exc.message}{status}"


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, as the SDK's task groups raise them."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _scrub(text: str, server: Server) -> str:
    for value in server.headers.values():
        if value:
            text = text.replace(value, "[redacted]")
    return text


def failure(server: Server, exc: BaseException, transport: PolicyTransport) -> errors.ProviderError:
    """The words for what went wrong, from what the transport saw and the SDK raised."""
    who = label(server)
    if transport.refusal is not None:
        return errors.UrlRefusedError(who, f"is at a URL that is refused: {transport.refusal}")
    status = transport.refused_status
    if status in (401, 403):
        kind = errors.AuthenticationError if status == 401 else errors.PermissionDeniedError
        return kind(who, f"refused the credentials sent (HTTP {status}); check its headers in Tools", status=status)
    leaves = list(_leaves(exc))
    own = next((e for e in leaves if isinstance(e, errors.ProviderError)), None)
    if own is not None:
        return own
    if any(isinstance(e, httpx2.TimeoutException | TimeoutError) for e in leaves):
        return errors.ProviderTimeoutError(who, "did not answer in time")
    for leaf in leaves:
        if isinstance(leaf, PolicyRefused):
            return errors.UrlRefusedError(who, f"is at a URL that is refused: {leaf}")
        if isinstance(leaf, httpx2.TransportError | OSError):
            reason = str(leaf) or type(leaf).__name__
            return errors.ProviderConnectionError(who, f"could not be reached: {_scrub(reason, server)}")
    if status is not None:
        return errors.ProviderUnavailableError(who, f"answered with HTTP {status}", status=status)
    mcp_error = next((e for e in leaves if isinstance(e, MCPError)), None)
    if mcp_error is not None:
        return errors.ProtocolError(who, f"answered with an error: {_scrub(mcp_error.error.message, server)}")
    leaf = leaves[0] if leaves else exc
    reason = _scrub(str(leaf) or type(leaf).__name__, server)
    return errors.ProtocolError(who, f"failed: {type(leaf).__name__}: {reason}")


def refusal(server: Server) -> errors.UrlRefusedError | None:
    """The policy's answer to the server's URL now, before any request (None: it may be used)."""
    try:
        problem = urlpolicy.refusal_at_use(server.url)
    except Exception as exc:  # a misconfigured policy setting refuses everything, in its own words
        problem = str(exc)
    if problem is None and urlsplit(server.url).scheme not in ("http", "https"):
        problem = f"{server.url!r} is not an http:// or https:// URL."
    return errors.UrlRefusedError(label(server), f"is at a URL that is refused: {problem}") if problem else None


async def _session_work(server: Server, transport: PolicyTransport, work: Work[T]) -> T:
    async with (
        policy_client(transport, server.headers) as client,
        streamable_http_client(server.url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await work(session)


async def run(server: Server, work: Work[T]) -> T:
    """Connect to ``server``, run ``work`` on the session, disconnect; raises a ``ProviderError``."""
    refused = refusal(server)
    if refused is not None:
        raise refused
    transport = PolicyTransport()
    worker = asyncio.ensure_future(_session_work(server, transport, work))
    worker.add_done_callback(_retrieved)
    try:
        return await asyncio.shield(worker)
    except asyncio.CancelledError:
        worker.cancel()
        await asyncio.wait({worker}, timeout=CANCEL_GRACE)
        raise
    except errors.ProviderError:
        raise
    except Exception as exc:
        logger.info("MCP server %s failed: %s", server.name, type(exc).__name__)
        raise failure(server, exc, transport) from None
    finally:
        # A worker still saying goodbye loses its sockets: the server sees its client gone.
        await transport.aclose()
        worker.cancel()


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A worker abandoned after a cancellation may still fail: its exception is not worth a warning."""
    if not task.cancelled():
        task.exception()
