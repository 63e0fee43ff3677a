"""The websocket handshake's Origin must be the site's own origin, scheme, host and port, as Django's
CSRF check compares them, or one listed in QTAP_TRUSTED_ORIGINS; and the Host must be an allowed host.

A page on another port of the same machine (another local web app) or served over the other scheme is
another origin: a browser sends the visitor's session cookie with its socket all the same, so only the
Origin tells the two apart.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests.support.data import ChatSetup

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "127.0.0.1:8000"


async def accepted(
    chat_id: int, cookie: str, *, host: str | None = SITE, origin: str | None = None, scheme: str | None = None
) -> bool:
    """Whether a handshake with these headers gets its socket (and the chat's state on it)."""
    from qtap_site.asgi import application

    headers = [(b"cookie", cookie.encode())]
    if host is not None:
        headers.append((b"host", host.encode()))
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, f"/ws/chats/{chat_id}/", headers=headers)
    if scheme is not None:
        communicator.scope["scheme"] = scheme
    connected, _code = await communicator.connect(timeout=5)
    if not connected:
        return False
    frame = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()
    assert frame["type"] == "chat.state", frame
    return True


async def test_the_sites_own_origin_is_accepted(chat_on_fake: ChatSetup, alice_cookie: str) -> None:
    chat = chat_on_fake.chat.pk
    assert await accepted(chat, alice_cookie, origin=f"http://{SITE}")
    assert await accepted(chat, alice_cookie, host="localhost:8000", origin="http://localhost:8000")
    assert await accepted(chat, alice_cookie, host="127.0.0.1", origin="http://127.0.0.1")  # port 80 implied
    assert await accepted(chat, alice_cookie, host="127.0.0.1:80", origin="http://127.0.0.1")
    assert await accepted(chat, alice_cookie, host="LOCALHOST:8000", origin="http://localhost:8000")


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:9000",  # another port: another web app on the same machine
        "http://127.0.0.1",  # port 80 is another port too
        "http://localhost:9000",
        "https://127.0.0.1:8000",  # the other scheme
        "ws://127.0.0.1:8000",
        "http://localhost:8000",  # another (allowed) host name is another origin
        "http://evil.example:8000",
        "http://127.0.0.1.evil.example:8000",
        "null",
        "",
        "http://127.0.0.1:8000/chats/",
        "http://user@127.0.0.1:8000",
        "http://127.0.0.1:notaport",
    ],
)
async def test_another_origin_is_refused(chat_on_fake: ChatSetup, alice_cookie: str, origin: str) -> None:
    assert not await accepted(chat_on_fake.chat.pk, alice_cookie, origin=origin)


async def test_over_tls_the_origin_is_https(chat_on_fake: ChatSetup, alice_cookie: str, settings: Any) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "chat.example.com"]
    chat = chat_on_fake.chat.pk
    host = "chat.example.com"
    assert await accepted(chat, alice_cookie, host=host, origin="https://chat.example.com", scheme="wss")
    assert await accepted(chat, alice_cookie, host=host + ":443", origin="https://chat.example.com", scheme="wss")
    assert not await accepted(chat, alice_cookie, host=host, origin="http://chat.example.com", scheme="wss")
    assert not await accepted(chat, alice_cookie, host=host, origin="https://chat.example.com", scheme="ws")


async def test_behind_a_proxy_the_proxys_header_says_https(
    chat_on_fake: ChatSetup, alice_cookie: str, settings: Any
) -> None:
    """With SECURE_PROXY_SSL_HEADER set (Django's setting for a TLS proxy), the scheme is Django's."""
    from qtap_site.asgi import application

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [
        (b"cookie", alice_cookie.encode()),
        (b"host", b"localhost"),
        (b"origin", b"https://localhost"),
        (b"x-forwarded-proto", b"https"),
    ]
    communicator = WebsocketCommunicator(application, f"/ws/chats/{chat_on_fake.chat.pk}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    await communicator.disconnect()


async def test_the_host_must_be_allowed(chat_on_fake: ChatSetup, alice_cookie: str) -> None:
    """A page on a rebound DNS name sends its own Host and Origin, which agree: the Host refuses it."""
    chat = chat_on_fake.chat.pk
    assert not await accepted(chat, alice_cookie, host="evil.example:8000", origin="http://evil.example:8000")
    assert not await accepted(chat, alice_cookie, host="127.0.0.1:8000@evil", origin="http://127.0.0.1:8000")
    assert not await accepted(chat, alice_cookie, host=None, origin="http://127.0.0.1")  # no Host at all


async def test_a_trusted_origin_is_accepted(chat_on_fake: ChatSetup, alice_cookie: str, settings: Any) -> None:
    """A TLS proxy in front: the browser's origin is the proxy's, the Host the local server's. The list
    is Django's CSRF_TRUSTED_ORIGINS, which QTAP_TRUSTED_ORIGINS fills (see the last test)."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com", "http://127.0.0.1:3000/"]
    chat = chat_on_fake.chat.pk
    assert await accepted(chat, alice_cookie, origin="https://chat.example.com")
    assert await accepted(chat, alice_cookie, origin="https://CHAT.example.com")
    assert await accepted(chat, alice_cookie, origin="http://127.0.0.1:3000")
    assert not await accepted(chat, alice_cookie, origin="http://chat.example.com")
    assert not await accepted(chat, alice_cookie, origin="https://chat.example.com:8443")
    assert not await accepted(chat, alice_cookie, origin="https://sub.chat.example.com")
    # Trusting an origin does not open other hosts.
    assert not await accepted(chat, alice_cookie, host="evil.example", origin="https://chat.example.com")
    # Django's wildcard form: any subdomain, that scheme only.
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert await accepted(chat, alice_cookie, origin="https://chat.example.com")
    assert not await accepted(chat, alice_cookie, origin="http://chat.example.com")
    assert not await accepted(chat, alice_cookie, origin="https://example.com.evil")


async def test_without_an_origin_header_as_channels_does(
    chat_on_fake: ChatSetup, alice_cookie: str, settings: Any
) -> None:
    """Refused, unless ALLOWED_HOSTS is ``*`` (channels' OriginValidator, kept as it was)."""
    chat = chat_on_fake.chat.pk
    assert not await accepted(chat, alice_cookie, origin=None)
    settings.ALLOWED_HOSTS = ["*"]
    assert await accepted(chat, alice_cookie, origin=None)
    # Any host then passes, but an Origin present must still be the site's own.
    assert not await accepted(chat, alice_cookie, origin="http://evil.example")


def test_one_setting_trusts_an_origin_for_forms_and_sockets() -> None:
    """QTAP_TRUSTED_ORIGINS feeds Django's CSRF_TRUSTED_ORIGINS too (read when the settings load)."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    from tests.support.processes import REPO

    script = "import json, qtap_site.settings as s; print(json.dumps([s.QTAP_TRUSTED_ORIGINS, s.CSRF_TRUSTED_ORIGINS]))"
    env = {
        **os.environ,
        "QTAP_DATA_DIR": str(settings.DATA_DIR),
        "QTAP_TRUSTED_ORIGINS": "https://chat.example.com,https://qtap.example.org",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    trusted, csrf = json.loads(done.stdout.strip().splitlines()[-1])
    assert trusted == ["https://chat.example.com", "https://qtap.example.org"]
    assert set(trusted) <= set(csrf)
