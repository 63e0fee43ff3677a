"""The pooled ``httpx.AsyncClient``: one per origin and timeouts per event loop, reused across requests
so TCP and TLS connections stay warm (``providers.loops.PerLoop`` keeps each loop's pools apart).

May import: ``providers.loops``, ``providers.transport`` (the aiohttp transport under every client). Plugins
import these names from ``providers.http``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from providers.loops import PerLoop
from providers.transport import AiohttpTransport


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    read: float | None = 120.0  # between stream events; None for local providers
    write: float = 30.0
    pool: float = 10.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def _abandon_pools(clients: dict[tuple[str, Timeouts], httpx.AsyncClient]) -> None:
    """The pools of an event loop that was closed without ``close_clients`` (a test's loop, a finished
    ``asyncio.run``): nothing can be awaited on it any more, so they are dropped by hand."""
    for client in clients.values():
        transport = client._transport
        if isinstance(transport, AiohttpTransport):
            transport.abandon()


_clients: PerLoop[dict[tuple[str, Timeouts], httpx.AsyncClient]] = PerLoop(lambda loop: {}, discard=_abandon_pools)


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


def get_client(base_url: str, timeouts: Timeouts) -> httpx.AsyncClient:
    """The pooled client for this origin and timeouts on the running event loop.

    Reusing one client keeps TCP/TLS connections warm between requests. Redirects are never
    followed, so a key never travels to a host it was not configured for.
    """
    per_loop = _clients.get()
    key = (_origin(base_url), timeouts)
    client = per_loop.get(key)
    if client is None or client.is_closed:
        # As many idle connections may be kept as may be open: at a burst of N streams to one
        # provider, a smaller keep-alive pool would open (and close) the difference every time.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30)
        client = httpx.AsyncClient(
            timeout=timeouts.as_httpx(),
            follow_redirects=False,
            transport=AiohttpTransport(limits=limits),
            trust_env=False,
        )
        per_loop[key] = client
    return client


async def close_clients() -> None:
    """Close the pooled clients of the running loop (shutdown, tests)."""
    for client in (_clients.pop() or {}).values():
        await client.aclose()
