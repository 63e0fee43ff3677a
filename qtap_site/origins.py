"""The websocket Origin check: a socket may be opened only from the site's own pages.

A browser sends the visitor's session cookie with every websocket handshake, whichever page opens it,
so the Origin header is what tells the site's own chat page from any other page open in the same
browser. Channels' ``AllowedHostsOriginValidator`` compares only the Origin's host with
``ALLOWED_HOSTS``: a page on another port of the same machine (any other local web app at
``http://127.0.0.1:<port>``), or one served over the other scheme, passed it. Here the whole origin
counts, as in Django's CSRF check of a form: scheme, host and port must equal those of the request
itself, or the origin must be trusted as that check trusts it (``CSRF_TRUSTED_ORIGINS``, which
``QTAP_TRUSTED_ORIGINS`` fills: the public origin of a TLS proxy in front of the site, say).

The request's own origin is the one Django's CSRF check computes: the Host header
(``X-Forwarded-Host`` with ``USE_X_FORWARDED_HOST``), which must be in ``ALLOWED_HOSTS``, and the
scheme ``https`` for a ``wss`` socket (or when ``SECURE_PROXY_SSL_HEADER`` says so), ``http`` otherwise.

A handshake without an Origin header (not a browser) is treated as channels' ``OriginValidator``
treats it: refused, unless ``ALLOWED_HOSTS`` contains ``"*"``. A handshake without a Host header is
refused (RFC 6455 requires one, and the site's own origin cannot be known without it). A refused
handshake is closed before it is accepted, which a server answers with HTTP 403.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import SplitResult, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host (lower case), port


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` as a comparable triple, or None for anything else (``null``, a path, a
    user name, a port that is no number)."""
    try:
        parts: SplitResult = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


class _Handshake(HttpRequest):
    """The handshake seen as a Django request, so that its host and scheme are exactly the ones
    Django's CSRF check uses (``get_host()``: ALLOWED_HOSTS, ``USE_X_FORWARDED_HOST``; ``scheme``:
    ``SECURE_PROXY_SSL_HEADER``)."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin1").upper().replace("-", "_")
            text = value.decode("latin1")
            # Repeated headers are joined, as Django's ASGIRequest does: a doubled Origin matches nothing.
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text
        server = scope.get("server")
        if server and server[0] is not None:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1] or "")
        self._secure = scope.get("scheme") in ("wss", "https")

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


def refusal(scope: dict[str, Any]) -> str | None:
    """Why this handshake may not open a socket, or None when it may."""
    request = _Handshake(scope)
    if "HTTP_HOST" not in request.META and "SERVER_NAME" not in request.META:
        return "the handshake has no Host header"
    try:
        own = parse_origin(f"{request.scheme}://{request.get_host()}")
    except DisallowedHost as exc:
        return str(exc)
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return None if "*" in settings.ALLOWED_HOSTS else "the handshake has no Origin header"
    found = parse_origin(origin)
    if found is not None and (found == own or trusted(origin, found)):
        return None
    return f"the Origin {origin[:200]!r} is not this site's ({request.scheme}://{request.get_host()})"


def trusted(origin: str, found: Origin) -> bool:
    """Listed in ``CSRF_TRUSTED_ORIGINS`` (which ``QTAP_TRUSTED_ORIGINS`` fills), matched as Django's
    CSRF check matches it: the whole origin, or any subdomain for an entry ``https://*.example.com``."""
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        if "*" not in entry:
            if parse_origin(entry.rstrip("/")) == found:
                return True
            continue
        pattern = urlsplit(entry)
        if pattern.scheme.lower() == found[0] and is_same_domain(
            urlsplit(origin).netloc.lower(), pattern.netloc[pattern.netloc.index("*") + 1 :]
        ):
            return True
    return False


class SameOriginValidator:
    """ASGI middleware for websocket routes: the application runs only for a handshake from the
    site's own origin (or a trusted one); any other is closed before it is accepted."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator is for websocket connections only")
        reason = refusal(scope)
        if reason is not None:
            logger.info("websocket %s refused: %s", scope.get("path", ""), reason)
            return await WebsocketDenier.as_asgi()(scope, receive, send)
        return await self.application(scope, receive, send)
