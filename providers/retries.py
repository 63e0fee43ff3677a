"""Retries before the first byte: ``RetryPolicy`` (which statuses, how long to wait) and
``send_with_retries``, which sends a streamed request and turns every failure into a ProviderError.

May import: ``providers.errors``, ``providers.transport``. Plugins import these names from ``providers.http``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from providers import errors
from providers.errors import parse_retry_after
from providers.transport import UrlRefused

RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    max_retry_after: float = 60.0  # a longer retry-after is capped to this
    backoff_base: float = 0.5
    backoff_max: float = 8.0

    def should_retry(self, status: int, headers: Mapping[str, str]) -> bool:
        override = headers.get("x-should-retry")
        if override in ("true", "false"):
            return override == "true"
        return status in RETRY_STATUSES or status >= 500

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None, *, hint: float | None = None) -> float:
        """retry-after(-ms) from the headers, else ``hint`` (a delay the error body gave, such as
        Gemini's RetryInfo), else exponential backoff with jitter."""
        hinted = parse_retry_after(headers) if headers is not None else None
        if hinted is None:
            hinted = hint
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        backoff = min(self.backoff_base * 2**attempt, self.backoff_max)
        return backoff * (1 - 0.25 * random.random())


ErrorTranslator = Callable[[int, Mapping[str, str], bytes], errors.ProviderError]


async def send_with_retries(
    client: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    *,
    provider: str,
    translate: ErrorTranslator,
    policy: RetryPolicy,
    logger: logging.Logger,
) -> httpx.Response:
    """Send a request, streaming, retrying connect errors and retryable statuses before the first byte.

    Returns the open response (2xx); the caller must close it. Every failure is a ProviderError.
    """
    attempt = 0
    while True:
        request = build()
        try:
            response = await client.send(request, stream=True)
        except UrlRefused as exc:
            raise errors.UrlRefusedError(provider, str(exc)) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error: errors.ProviderError = errors.ProviderConnectionError(
                provider, f"cannot connect to {request.url.host}: {type(exc).__name__}"
            )
            retry_delay = policy.delay(attempt)
        except httpx.TimeoutException:
            error = errors.ProviderTimeoutError(provider, f"{request.url.host} did not answer in time")
            retry_delay = policy.delay(attempt)
        except httpx.TransportError as exc:
            error = errors.ProviderConnectionError(provider, f"connection to {request.url.host} failed: {exc}")
            retry_delay = policy.delay(attempt)
        else:
            if response.status_code < 400:
                return response
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            error = translate(response.status_code, response.headers, body)
            if not policy.should_retry(response.status_code, response.headers):
                raise error
            # A 429 that means "out of quota" will not pass by waiting: the translated error says so.
            if not error.retryable and response.headers.get("x-should-retry") != "true":
                raise error
            retry_delay = policy.delay(attempt, response.headers, hint=error.retry_after)
        if attempt >= policy.max_retries:
            raise error
        attempt += 1
        logger.debug("retry %d/%d in %.2fs after %s", attempt, policy.max_retries, retry_delay, error.code)
        await asyncio.sleep(retry_delay)
