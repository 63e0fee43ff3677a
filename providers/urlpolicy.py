"""Which base URLs a profile may point at.

Cloud-metadata endpoints and link-local addresses are always refused: they hand out credentials to
whoever can make the server fetch them. ``QTAP_BASE_URL_POLICY=public-only`` (multi-tenant deployments)
also refuses loopback and private ranges. The default policy, ``allow-private``, allows them because a
local Ollama or llama.cpp server is a core use.

Hostnames are resolved and every address is checked, so a name pointing at a forbidden address is
refused too. With the default policy a name that does not resolve is accepted (a typo is reported by
"test connection", not by the policy); with ``public-only`` it is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

POLICY_ALLOW_PRIVATE = "allow-private"
POLICY_PUBLIC_ONLY = "public-only"
POLICIES = (POLICY_ALLOW_PRIVATE, POLICY_PUBLIC_ONLY)

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Iterable[Any]]


def _address_problem(address: Address, policy: str) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata endpoint"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_unspecified or address.is_multicast:
        return "is not a usable server address"
    if policy == POLICY_PUBLIC_ONLY:
        if address.is_loopback:
            return "is a loopback address, refused by QTAP_BASE_URL_POLICY=public-only"
        if address.is_private or address.is_reserved or getattr(address, "is_site_local", False):
            return "is a private address, refused by QTAP_BASE_URL_POLICY=public-only"
        if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
            return "is a shared (carrier-grade NAT) address, refused by QTAP_BASE_URL_POLICY=public-only"
    return None


def _resolve(host: str, port: int | None, resolver: Resolver) -> list[Address]:
    infos = resolver(host, port, 0, socket.SOCK_STREAM)
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        addresses.append(ipaddress.ip_address(raw))
    return addresses


def validate_base_url(url: str, policy: str | None = None, *, resolver: Resolver = socket.getaddrinfo) -> str:
    """Answer ``url`` stripped of surrounding space, or raise ``ValidationError`` saying why it is refused."""
    if policy is None:
        from django.conf import settings

        policy = settings.QTAP_BASE_URL_POLICY
    if policy not in POLICIES:
        raise ValidationError(f"QTAP_BASE_URL_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}.")
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"{url!r} is not a valid URL ({exc}).", code="invalid") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The base URL must start with http:// or https://.", code="scheme")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValidationError("The base URL has no host name.", code="invalid")
    if parts.username or parts.password:
        raise ValidationError("Put credentials in an API key, not in the base URL.", code="credentials")
    if host in METADATA_HOSTS:
        raise ValidationError(f"{host} is a cloud metadata endpoint and is always refused.", code="forbidden")

    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = _resolve(host, port, resolver)
        except (OSError, UnicodeError):
            if policy == POLICY_PUBLIC_ONLY:
                raise ValidationError(
                    f"{host} does not resolve; QTAP_BASE_URL_POLICY=public-only needs to check its addresses.",
                    code="unresolvable",
                ) from None
            addresses = []
    for address in addresses:
        problem = _address_problem(address, policy)
        if problem:
            shown = host if str(address) == host else f"{host} ({address})"
            raise ValidationError(f"{shown} {problem}; this base URL is refused.", code="forbidden")
    return url
