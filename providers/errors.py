"""Errors every provider raises, the host's own errors, and how an upstream failure becomes one.

A provider translates each upstream failure into one ``ProviderError`` subclass, keeping the
upstream's own message and never the key. ``code`` is stable: the websocket protocol sends it.
``extract_error``, ``error_for_status`` and ``parse_retry_after`` are that translation's shared part
(a tolerant reading of any error body, the default status mapping, the retry-after headers).

May import: the standard library only; plugins, the contract and every other module import it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class QtapProviderError(Exception):
    """Root of everything this package raises."""


class ProviderError(QtapProviderError):
    code = "provider_error"
    default_retryable = False

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.provider}: {self.message}{status}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, retryable={self.retryable!r}, retry_after={self.retry_after!r})"
        )


class AuthenticationError(ProviderError):
    code = "authentication"


class PermissionDeniedError(ProviderError):
    code = "permission"


class QuotaExceededError(ProviderError):
    code = "quota_exceeded"


class RateLimitError(ProviderError):
    code = "rate_limited"
    default_retryable = True


class InvalidRequestError(ProviderError):
    code = "invalid_request"


class ContextLengthError(InvalidRequestError):
    code = "context_length"


class ModelNotFoundError(ProviderError):
    code = "model_not_found"


class ContentFilterError(ProviderError):
    code = "content_filter"


class OverloadedError(ProviderError):
    code = "overloaded"
    default_retryable = True


class ProviderUnavailableError(ProviderError):
    code = "unavailable"
    default_retryable = True


class ProviderTimeoutError(ProviderError):
    code = "timeout"
    default_retryable = True


class ProviderConnectionError(ProviderError):
    code = "connection"
    default_retryable = True


class ProtocolError(ProviderError):
    code = "protocol"


class UrlRefusedError(ProviderError):
    """The outbound-URL policy (providers.urlpolicy) refused the host at the moment of the request."""

    code = "url_refused"


# ---- host errors -------------------------------------------------------------------------------


class UnknownProviderError(QtapProviderError, LookupError):
    code = "provider_unavailable"

    def __init__(self, name: str, available: list[str] | tuple[str, ...] = ()) -> None:
        self.name = name
        self.available = tuple(available)
        listing = ", ".join(self.available) if self.available else "none"
        super().__init__(f"Unknown provider {name!r}. Available providers: {listing}")


class CapabilityNotSupportedError(QtapProviderError):
    code = "capability_not_supported"


class UnsupportedAttachmentError(QtapProviderError, ValueError):
    code = "unsupported_attachment"

    def __init__(self, filename: str, mime_type: str, accepted: list[str] | tuple[str, ...], reason: str = "") -> None:
        self.filename = filename
        self.mime_type = mime_type
        self.accepted = tuple(accepted)
        accepted_text = ", ".join(self.accepted) if self.accepted else "no attachments"
        why = reason or f"type {mime_type} is not accepted"
        super().__init__(f"Attachment {filename!r} cannot be sent: {why}. Accepted: {accepted_text}")


class ManifestError(QtapProviderError, ValueError):
    code = "manifest"


class PluginLoadError(QtapProviderError):
    code = "plugin_load"


class AlreadyRegistered(QtapProviderError):
    code = "already_registered"


# ---- translating an upstream failure -----------------------------------------------------------


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
) -> ProviderError:
    """The default HTTP status → ProviderError mapping; plugins handle their quirks first."""
    message, code = upstream.message, (upstream.code or "").lower()
    lowered = f"{message} {code}".lower()
    kwargs: dict[str, Any] = {"status": status, "retry_after": retry_after}
    if status == 400 and any(hint in lowered for hint in _CONTEXT_HINTS):
        return ContextLengthError(provider, message, **kwargs)
    if status in (400, 413, 422):
        return InvalidRequestError(provider, message, **kwargs)
    if status == 401:
        return AuthenticationError(provider, message, **kwargs)
    if status == 402:
        return QuotaExceededError(provider, message, **kwargs)
    if status == 403:
        return PermissionDeniedError(provider, message, **kwargs)
    if status == 404:
        return ModelNotFoundError(provider, message, **kwargs)
    if status == 408:
        return ProviderTimeoutError(provider, message, **kwargs)
    if status == 429:
        if "insufficient_quota" in lowered:
            return QuotaExceededError(provider, message, **kwargs)
        return RateLimitError(provider, message, **kwargs)
    if status == 529 or (status == 503 and "overload" in lowered):
        return OverloadedError(provider, message, **kwargs)
    if status >= 500 or status == 409:
        return ProviderUnavailableError(provider, message, **kwargs)
    return ProviderError(provider, message, **kwargs)


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
