"""``HTTPProvider``, the base class of the bundled providers, and the model-list cache.

The base keeps the contract's rules in one place (attachment checks, event order, logging, errors
scrubbed of the key, cancellation closing the upstream response), as Django keeps
``sessions/backends/base.py`` apart from its backends.

May import: ``providers.attachment_rules``, ``providers.contract``, ``providers.errors``, ``providers.manifest``,
``providers.reasoning``, ``providers.redaction`` and the HTTP machinery (``providers.clients``,
``providers.retries``, ``providers.streams``); never ``providers.http``, which re-exports these names for
plugins written before they moved here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from providers import attachment_rules, errors
from providers.clients import Timeouts, get_client
from providers.contract import (
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
from providers.errors import error_for_status, extract_error, parse_retry_after
from providers.manifest import Manifest
from providers.reasoning import reasoning_problem, tools_problem
from providers.redaction import REDACTED, redact
from providers.retries import RetryPolicy, send_with_retries
from providers.streams import drain

__all__ = ["HTTPProvider", "ModelCache", "key_fingerprint", "model_cache"]


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
        """Refuse a file this provider's model does not take, by the rule the chat page and uploads use."""
        accepted = attachment_rules.accepted_types(self.config, request.model)
        for attachment in request.attachments:
            size, mime_type = len(attachment.data), attachment.mime_type
            if why := attachment_rules.refusal(self.config, request.model, mime_type=mime_type, size=size):
                raise errors.UnsupportedAttachmentError(
                    attachment.filename, mime_type, accepted, reason=why.rstrip(".")
                )

    # -- the contract -------------------------------------------------------------------------

    def _events(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """The provider's own events (an async generator); ``stream`` enforces the contract on them."""
        raise NotImplementedError

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        self.check_attachments(request)
        if problem := reasoning_problem(self.config, request.model, request.reasoning):
            raise errors.InvalidRequestError(self.provider, problem)
        if problem := tools_problem(self.config, request.model, request.tools):
            raise errors.InvalidRequestError(self.provider, problem)
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
