"""The one policy for every URL qtap fetches: base URLs, image URLs a provider returns, tool fetches.

Cloud-metadata endpoints and link-local addresses are always refused: they hand out credentials to
whoever can make the server fetch them. ``QTAP_BASE_URL_POLICY=public-only`` (multi-tenant deployments)
also refuses loopback and private ranges. The default policy, ``allow-private``, allows them because a
local Ollama or llama.cpp server is a core use.

The policy is applied twice, by the same functions:
- when a URL is saved or tested (``validate_base_url``): the host name is resolved and every address it
  resolves to is checked, so the person gets the reason at once;
- at the moment of use, by the transport under every provider request (``providers.transport``): the
  literal host is checked before the request (``host_problem``) and every address a name resolves to is
  checked as the connection is made (``address_problem``), so a policy change, a DNS change or a URL that
  arrives in a provider's answer is judged when it is fetched, on the addresses really connected to.

Hosts are read the way the resolver reads them: ``2852039166``, ``0xa9fea9fe`` and ``0251.0376.0251.0376``
are 169.254.169.254; ``[::ffff:169.254.169.254]`` is too; a trailing dot changes nothing.
With the default policy a name that does not resolve is accepted on save (a typo is reported by "test
connection", not by the policy); with ``public-only`` it is refused.

May import: nothing of qtap's (Django's settings and ValidationError only): every room may use it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

POLICY_ALLOW_PRIVATE = "allow-private"
POLICY_PUBLIC_ONLY = "public-only"
POLICIES = (POLICY_ALLOW_PRIVATE, POLICY_PUBLIC_ONLY)

# Names of metadata services that resolve only inside their cloud (so a resolved check cannot see them).
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data.ec2.internal"})
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 addresses reached through a NAT64 gateway
# The forms inet_aton reads as an IPv4 address: decimal, octal or hex, in one to four parts.
_NUMERIC_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Iterable[Any]]


def current_policy() -> str:
    """The policy in force now (read at each use, so a changed setting applies at once)."""
    from django.conf import settings

    policy = settings.QTAP_BASE_URL_POLICY
    if policy not in POLICIES:
        raise ValidationError(f"QTAP_BASE_URL_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}.")
    return policy


def normalise_host(host: str) -> str:
    return (host or "").strip().strip("[]").rstrip(".").lower()


def literal_address(host: str) -> Address | None:
    """The address a host names literally (any form the resolver accepts), or None for a name."""
    host = normalise_host(host).split("%", 1)[0]  # an IPv6 zone id names no other address
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_problem(address: Address, policy: str) -> str | None:
    """Why ``address`` may not be fetched under ``policy``, or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
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


def host_problem(host: str, policy: str) -> str | None:
    """Why ``host`` is refused without resolving it (metadata names, literal addresses), or None."""
    name = normalise_host(host)
    if not name:
        return "has no host name"
    if name in METADATA_HOSTS:
        return "is a cloud metadata endpoint and is always refused"
    if policy == POLICY_PUBLIC_ONLY and (name == "localhost" or name.endswith(".localhost")):
        return "is a loopback address, refused by QTAP_BASE_URL_POLICY=public-only"
    address = literal_address(name)
    if address is None:
        return None
    problem = address_problem(address, policy)
    if problem is None:
        return None
    return problem if str(address) == name else f"({address}) {problem}"


def describe_refusal(host: str, problem: str) -> str:
    return f"{normalise_host(host)} {problem}; this URL is refused."


def refusal_at_use(url: str) -> str | None:
    """Why a stored URL may not be used now, without resolving it (the transport checks the addresses
    as it connects), or None. Callers use it to refuse before starting a call, with a clear reason."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return f"{url!r} is not a valid URL."
    problem = host_problem(host, current_policy())
    return describe_refusal(host, problem) if problem else None


def _resolve(host: str, port: int | None, resolver: Resolver) -> list[Address]:
    infos = resolver(host, port, 0, socket.SOCK_STREAM)
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        addresses.append(ipaddress.ip_address(raw))
    return addresses


def validate_base_url(url: str, policy: str | None = None, *, resolver: Resolver = socket.getaddrinfo) -> str:
    """Answer ``url`` stripped of surrounding space, or raise ``ValidationError`` saying why it is refused.

    Resolves a host name and checks every address; used where a person saves or tests a URL.
    """
    policy = current_policy() if policy is None else policy
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
    host = normalise_host(parts.hostname or "")
    if not host:
        raise ValidationError("The base URL has no host name.", code="invalid")
    if parts.username or parts.password:
        raise ValidationError("Put credentials in an API key, not in the base URL.", code="credentials")
    problem = host_problem(host, policy)
    if problem:
        raise ValidationError(f"{host} {problem}; this base URL is refused.", code="forbidden")
    if literal_address(host) is not None:
        return url
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
        problem = address_problem(address, policy)
        if problem:
            raise ValidationError(f"{host} ({address}) {problem}; this base URL is refused.", code="forbidden")
    return url
