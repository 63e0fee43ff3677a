"""Shared HTTP machinery for provider plugins.

One pooled ``httpx.AsyncClient`` per base URL and timeouts per event loop; retries before the
first byte only; SSE and NDJSON iteration with stream failures translated into ProviderErrors;
tolerant error-body parsing and the status → error mapping; a model-list cache; and
``HTTPProvider``, the base class that keeps the contract's rules in one place (attachment checks,
event order, logging, cancellation closing the upstream response).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from httpx_sse import ServerSentEvent, SSEError

from providers import errors, sse
from providers.contract import (
    Attachment,
    ChatRequest,
    ChatResult,
    Finish,
    ModelInfo,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    Usage,
    collect,
)
from providers.loops import PerLoop
from providers.manifest import Manifest
from providers.redaction import REDACTED, redact
from providers.transport import AiohttpTransport, UrlRefused

__all__ = [
    "HTTPProvider",
    "ModelCache",
    "RetryPolicy",
    "Timeouts",
    "drain",
    "error_for_status",
    "extract_error",
    "get_client",
    "iter_ndjson",
    "iter_sse",
    "key_fingerprint",
    "parse_retry_after",
    "send_with_retries",
]

RETRY_STATUSES = frozenset({408, 409, 429})


# ---- timeouts and pooled clients ------------------------------------------------------------------


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


# ---- errors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamError:
    message: str
    code: str | None = None  # the upstream's own code/type/status string, when it gave one


def extract_error(body: bytes | str | Any) -> UpstreamError:
    """Read an error body of any common shape: {"error": {...}}, {"error": "..."}, {"message": ...}, text."""
    data: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except ValueError:
            text = text.strip()
            return UpstreamError(text[:500] or "no error message")
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            message = inner.get("message") or data.get("message") or json.dumps(inner)[:500]
            code = inner.get("code") or inner.get("status") or inner.get("type")
            # A numeric code only repeats the HTTP status; a string status (Gemini) or type
            # (llama.cpp's "exceed_context_size_error") says more.
            if isinstance(code, int):
                for named in (inner.get("status"), inner.get("type")):
                    if isinstance(named, str) and named:
                        code = named
                        break
            return UpstreamError(str(message), None if code is None else str(code))
        if isinstance(inner, str):
            code = data.get("code")
            return UpstreamError(inner, None if code is None else str(code))
    return UpstreamError(str(data)[:500])


_CONTEXT_HINTS = (
    "context_length",
    "context length",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "exceed_context_size",
    "context window",
)


def error_for_status(
    provider: str,
    status: int,
    upstream: UpstreamError,
    *,
    retry_after: float | None = None,
) -> errors.ProviderError:
    """The default HTTP status → ProviderError mapping; plugins handle their quirks first."""
    message, code = upstream.message, (upstream.code or "").lower()
    lowered = f"{message} {code}".lower()
    kwargs: dict[str, Any] = {"status": status, "retry_after": retry_after}
    if status == 400 and any(hint in lowered for hint in _CONTEXT_HINTS):
        return errors.ContextLengthError(provider, message, **kwargs)
    if status in (400, 413, 422):
        return errors.InvalidRequestError(provider, message, **kwargs)
    if status == 401:
        return errors.AuthenticationError(provider, message, **kwargs)
    if status == 402:
        return errors.QuotaExceededError(provider, message, **kwargs)
    if status == 403:
        return errors.PermissionDeniedError(provider, message, **kwargs)
    if status == 404:
        return errors.ModelNotFoundError(provider, message, **kwargs)
    if status == 408:
        return errors.ProviderTimeoutError(provider, message, **kwargs)
    if status == 429:
        if "insufficient_quota" in lowered:
            return errors.QuotaExceededError(provider, message, **kwargs)
        return errors.RateLimitError(provider, message, **kwargs)
    if status == 529 or (status == 503 and "overload" in lowered):
        return errors.OverloadedError(provider, message, **kwargs)
    if status >= 500 or status == 409:
        return errors.ProviderUnavailableError(provider, message, **kwargs)
    return errors.ProviderError(provider, message, **kwargs)


def _seconds(value: str) -> float | None:
    """A finite number of seconds, or None (``nan``, ``inf`` and text are no delay)."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from retry-after-ms or retry-after (seconds or an HTTP date); None when neither
    header holds one (a garbled value is ignored, never raised)."""
    value = headers.get("retry-after-ms")
    if value:
        milliseconds = _seconds(value)
        if milliseconds is not None:
            return milliseconds / 1000.0
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # "-0000": a time in UTC, as HTTP dates always are
        parsed = parsed.replace(tzinfo=dt.UTC)
    return max(parsed.timestamp() - time.time(), 0.0)


# ---- retries ------------------------------------------------------------------------------------


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


# ---- stream iteration ---------------------------------------------------------------------------


@asynccontextmanager
async def _stream_failures(provider: str, read_timeout: float | None) -> AsyncIterator[None]:
    try:
        yield
    except httpx.ReadTimeout:
        raise errors.ProviderTimeoutError(provider, f"the stream stalled: no data for {read_timeout} s") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise errors.ProtocolError(provider, f"the connection closed mid-stream ({type(exc).__name__})") from None
    except SSEError as exc:
        raise errors.ProtocolError(provider, f"not an event stream: {exc}") from None


async def iter_sse(response: httpx.Response, *, provider: str) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events as the official SDKs parse them (comments skipped, data lines joined)."""
    read_timeout = response.request.extensions.get("timeout", {}).get("read")
    async with _stream_failures(provider, read_timeout):
        # The parsing loop is here rather than in a generator of its own: one async generator
        # fewer between the socket and the relay, per event.
        sse.check_content_type(response)
        parser = sse.SSEParser()
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                yield event
        for event in parser.close():
            yield event


def sse_json(event: ServerSentEvent, *, provider: str) -> Any:
    try:
        return json.loads(event.data)
    except ValueError:
        raise errors.ProtocolError(provider, f"malformed JSON in stream event: {event.data[:200]!r}") from None


async def iter_ndjson(response: httpx.Response, *, provider: str) -> AsyncIterator[Any]:
    """One JSON value per line (Ollama's native stream)."""
    read_timeout = response.request.extensions.get("timeout", {}).get("read")
    async with _stream_failures(provider, read_timeout):
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                raise errors.ProtocolError(provider, f"malformed JSON line in stream: {line[:200]!r}") from None


async def drain(rest: AsyncIterator[Any], limit: float = 1.0) -> None:
    """Read what is left of a finished stream (normally just the end of the body) so the connection
    goes back to the pool instead of being closed: the next request then skips the TCP and TLS
    handshakes. A server that keeps the body open is given ``limit`` seconds, then cut off."""
    try:
        async with asyncio.timeout(limit):
            async for _ in rest:
                pass
    except (TimeoutError, errors.ProviderError):
        pass


# ---- model cache --------------------------------------------------------------------------------


def key_fingerprint(api_key: str | None) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else "-"


@dataclass
class ModelCache:
    """list_models() results per provider + base URL + key fingerprint, with a TTL; a stale copy is
    served when a refresh fails."""

    ttl: float = 600.0
    _entries: dict[tuple[str, str, str], tuple[float, list[ModelInfo]]] = field(default_factory=dict)

    async def get(
        self, key: tuple[str, str, str], fetch: Callable[[], Any], *, logger: logging.Logger | None = None
    ) -> list[ModelInfo]:
        cached = self._entries.get(key)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return list(cached[1])
        try:
            models = await fetch()
        except errors.ProviderError as exc:
            if cached is None:
                raise
            if logger:
                logger.warning("model list refresh failed (%s); serving the cached copy", exc.code)
            return list(cached[1])
        self._entries[key] = (time.monotonic(), list(models))
        return list(models)

    def clear(self) -> None:
        self._entries.clear()


model_cache = ModelCache()


# ---- the provider base class --------------------------------------------------------------------


class HTTPProvider:
    """Base of the bundled providers. Subclasses implement ``_events`` (and ``fetch_models``,
    ``validate_key``); ``stream`` keeps the contract: attachments checked before any request,
    text as it arrives, at most one Usage and exactly one Finish, last; errors logged at WARNING.
    """

    default_read_timeout: ClassVar[float | None] = 120.0

    def __init__(
        self,
        manifest: Manifest,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        assert manifest.provider_config is not None, "an LLM provider needs providerConfig"
        self.manifest = manifest
        self.config = manifest.provider_config
        self.provider = self.config.provider_name
        self._api_key = api_key or None
        resolved = (base_url or self.config.base_url_default or "").rstrip("/")
        if not resolved:
            raise errors.InvalidRequestError(self.provider, f"{self.config.display_name} needs a base URL")
        self.base_url = resolved
        self.timeouts = timeouts or Timeouts(read=self.default_read_timeout)
        self.retry = retry or RetryPolicy()
        self.logger = logging.getLogger(f"qtap.plugins.{manifest.name}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base_url} key={'set' if self._api_key else 'none'}>"

    # -- plumbing for subclasses --------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        return get_client(self.base_url, self.timeouts)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def require_key(self) -> str:
        if not self._api_key:
            raise errors.AuthenticationError(self.provider, f"no {self.config.api_key_label} configured")
        return self._api_key

    def scrubbed(self, error: errors.ProviderError) -> errors.ProviderError:
        """The error with this provider's key (and anything key-shaped) removed from its message: some
        servers quote the key they refused, and the message travels to pages, frames and logs."""
        message = error.message
        if self._api_key:
            message = message.replace(self._api_key, REDACTED)
        message = redact(message)
        if message != error.message:
            error.message = message
            error.args = (message,)
        return error

    def translate_error(self, status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
        return error_for_status(self.provider, status, extract_error(body), retry_after=parse_retry_after(headers))

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """An upstream response, retried before the first byte, closed when the block exits
        (also on cancellation or generator close: that is what stops the provider generating)."""
        merged = {**self.auth_headers(), **(headers or {})}
        client = self.client

        def build() -> httpx.Request:
            return client.build_request(method, self.url(path), json=json_body, params=params, headers=merged)

        def translate(status: int, headers: Mapping[str, str], body: bytes) -> errors.ProviderError:
            return self.scrubbed(self.translate_error(status, headers, body))

        response = await send_with_retries(
            client, build, provider=self.provider, translate=translate, policy=self.retry, logger=self.logger
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> Any:
        async with self.open("GET", path, params=params) as response:
            body = await response.aread()
        try:
            return json.loads(body)
        except ValueError:
            raise errors.ProtocolError(self.provider, "the answer was not JSON") from None

    # -- attachments ---------------------------------------------------------------------------

    def check_attachments(self, request: ChatRequest) -> None:
        support = self.config.attachment_support
        for attachment in request.attachments:
            self.check_attachment(attachment, support.mime_types, support.max_bytes, support.supported)

    @staticmethod
    def check_attachment(
        attachment: Attachment, accepted: tuple[str, ...], max_bytes: int | None, supported: bool
    ) -> None:
        if not supported or attachment.mime_type not in accepted:
            raise errors.UnsupportedAttachmentError(
                attachment.filename, attachment.mime_type, accepted if supported else ()
            )
        if max_bytes is not None and len(attachment.data) > max_bytes:
            raise errors.UnsupportedAttachmentError(
                attachment.filename,
                attachment.mime_type,
                accepted,
                reason=f"it is {len(attachment.data)} bytes, over the {max_bytes}-byte limit",
            )

    # -- the contract -------------------------------------------------------------------------

    def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The provider's own events (an async generator); ``stream`` enforces the contract on them."""
        raise NotImplementedError

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.check_attachments(request)
        started = time.monotonic()
        self.logger.debug(
            "request model=%s host=%s messages=%d attachments=%d temperature=%s max_tokens=%s top_p=%s stop=%d",
            request.model,
            httpx.URL(self.base_url).host,
            len(request.messages),
            len(request.attachments),
            request.temperature,
            request.max_tokens,
            request.top_p,
            len(request.stop),
        )
        usage: Usage | None = None
        first = True
        events = self._events(request)
        try:
            async for event in events:
                if isinstance(event, Usage):
                    usage = event  # keep the last: some providers send running totals
                    continue
                if isinstance(event, Finish):
                    # Let the provider read to the end of its body before we stop it.
                    await drain(events)
                    if usage is not None:
                        yield usage
                    self.logger.debug(
                        "finish reason=%s input_tokens=%s output_tokens=%s duration_ms=%.0f",
                        event.reason,
                        usage.input_tokens if usage else None,
                        usage.output_tokens if usage else None,
                        (time.monotonic() - started) * 1000,
                    )
                    yield event
                    return
                if first and isinstance(event, TextDelta | ReasoningDelta):
                    first = False
                    self.logger.debug("first byte after %.0f ms", (time.monotonic() - started) * 1000)
                yield event
            raise errors.ProtocolError(self.provider, "the stream ended before the provider said it was finished")
        except errors.ProviderError as exc:
            self.scrubbed(exc)
            self.logger.warning("%s error: %s", exc.code, exc.message)
            raise
        finally:
            await events.aclose()

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await collect(self.stream(request), model=request.model)

    async def list_models(self) -> list[ModelInfo]:
        key = (self.manifest.name, self.base_url, key_fingerprint(self._api_key))
        return await model_cache.get(key, self.fetch_models, logger=self.logger)

    async def fetch_models(self) -> list[ModelInfo]:
        raise NotImplementedError

    async def validate_key(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        # The pooled client outlives one provider object; streams close their own responses.
        return None
