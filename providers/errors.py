"""Errors every provider raises, and the host's own errors.

A provider translates each upstream failure into one ``ProviderError`` subclass, keeping the
upstream's own message and never the key. ``code`` is stable: the websocket protocol sends it.
"""

from __future__ import annotations


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
