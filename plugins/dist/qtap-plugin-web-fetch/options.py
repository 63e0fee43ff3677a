"""The user's web-fetch settings, read defensively, and the checks every URL of a fetch passes.

Settings come from the host (configSchema defaults under the user's saved values) and are clamped here
rather than trusted: a size cap of zero or a time limit longer than the host's per-call timeout would
only turn into a worse error later.

``hop_problem`` is what each URL of a fetch (the first and every redirect) must pass before a request:
http or https, no credentials in it, on the user's allowlist when there is one, and accepted by qtap's
one outbound-URL policy as it stands now (``providers.urlpolicy.refusal_at_use``: metadata names and
literal addresses). The addresses a host name resolves to are checked by the transport as it connects.

May import: ``providers.urlpolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from providers import urlpolicy

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
MIN_MAX_BYTES, MAX_MAX_BYTES = 1024, 20 * 1024 * 1024
DEFAULT_TIMEOUT = 15.0
# Below the manifest's timeoutSeconds (60), so the tool's own words arrive before the host's timeout.
MIN_TIMEOUT, MAX_TIMEOUT = 1.0, 55.0


@dataclass(frozen=True)
class Options:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_seconds: float = DEFAULT_TIMEOUT
    allowlist: tuple[str, ...] = ()


def _number(value: Any, default: float, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if number != number:  # NaN
        return default
    return min(max(number, low), high)


def _host_pattern(entry: Any) -> str | None:
    """An allowlist entry as a lower-case ASCII host (or ``*.`` and one), or None when it names none."""
    if not isinstance(entry, str):
        return None
    text = entry.strip().lower().rstrip(".")
    if "://" in text:  # a URL pasted whole: its host is what was meant
        try:
            text = urlpolicy.normalise_host(httpx.URL(text).host)
        except (httpx.InvalidURL, ValueError):
            return None
    wildcard = text.startswith("*.")
    host = text[2:] if wildcard else text
    try:
        host = host.encode("idna").decode("ascii") if host and not host.isascii() else host
    except UnicodeError:
        return None
    if not host or "/" in host or " " in host:
        return None
    return f"*.{host}" if wildcard else host


def options_from(settings: Mapping[str, Any]) -> Options:
    raw_list = settings.get("allowlist") or ()
    entries = [raw_list] if isinstance(raw_list, str) else list(raw_list) if isinstance(raw_list, list | tuple) else []
    allowlist = tuple(p for p in (_host_pattern(entry) for entry in entries) if p)
    return Options(
        max_bytes=int(_number(settings.get("max_bytes"), DEFAULT_MAX_BYTES, MIN_MAX_BYTES, MAX_MAX_BYTES)),
        timeout_seconds=_number(settings.get("timeout_seconds"), DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT),
        allowlist=allowlist,
    )


def allowed_by(allowlist: tuple[str, ...], host: str) -> bool:
    """Whether ``host`` (lower-case ASCII) is on the list: ``example.com`` is that host only,
    ``*.example.com`` any of its subdomains (not example.com itself)."""
    for pattern in allowlist:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def hop_problem(url: httpx.URL, options: Options) -> str | None:
    """Why ``url`` may not be fetched, in words, or None."""
    if url.scheme not in ("http", "https"):
        return f"{url} is not an http:// or https:// URL; web_fetch reads only those."
    if url.userinfo:
        return "A URL with credentials in it is not fetched."
    host = urlpolicy.normalise_host(url.raw_host.decode("ascii", "replace"))
    if not host:
        return f"{url} has no host name."
    if options.allowlist and not allowed_by(options.allowlist, host):
        return f"{host} is not on your allowlist of hosts for web_fetch ({', '.join(options.allowlist)})."
    try:
        return urlpolicy.refusal_at_use(str(url))
    except Exception as exc:  # a misconfigured policy setting refuses everything, in its own words
        return str(getattr(exc, "messages", [exc])[0])
