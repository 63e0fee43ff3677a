"""The outbound-URL policy applies when a URL is used, not only when it is saved.

- A profile saved under ``allow-private`` that points at loopback stops working the moment the operator
  switches to ``public-only``: the send is refused before anything reaches the provider.
- An image URL in a provider's answer is fetched only if the policy allows it, in every spelling of a
  forbidden address; a refused one is an ``image.error`` and nothing is saved or served.
- Below both, the transport refuses a refused literal host before connecting, and a host name whose
  resolved addresses are refused as the connection is made.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from channels.db import database_sync_to_async

from providers import errors
from providers.factory import create_image_provider
from providers.http import Timeouts, close_clients, get_client
from providers.transport import UrlRefused
from qtap_site.chat.models import GeneratedImage, Message
from tests.chat.conftest import PLUGIN_NAME, TERMINAL, open_socket, receive_until, send
from tests.chat.fake_openai import ChatFake

pytestmark = pytest.mark.django_db(transaction=True)

METADATA_SPELLINGS = [
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://169.254.43518/latest/meta-data/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://[64:ff9b::a9fe:a9fe]/",
]


async def test_a_loopback_profile_stops_when_the_policy_becomes_public_only(chat, cookie, fake, settings) -> None:
    settings.QTAP_BASE_URL_POLICY = "public-only"  # after the profile was saved under allow-private
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "hello"})
    frames = await receive_until(comm, *TERMINAL)
    error = frames[-1]
    assert error["type"] == "generation.error" and error["code"] == "base_url_refused"
    assert "loopback" in error["message"] and "public-only" in error["message"]
    assert fake.chat_requests == []  # nothing reached the provider
    # The user's message is kept; the reply is an error row, and the socket still works.
    rows = await database_sync_to_async(lambda: list(Message.objects.filter(chat=chat).order_by("id")))()
    assert rows[0].content == "hello"
    await send(comm, {"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    await comm.disconnect()


async def test_the_same_profile_streams_under_the_default_policy(chat, cookie, fake) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "hello"})
    frames = await receive_until(comm, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished"
    assert len(fake.chat_requests) == 1
    await comm.disconnect()


@pytest.mark.parametrize("url", METADATA_SPELLINGS)
async def test_an_image_url_naming_a_metadata_address_is_not_fetched(chat, cookie, fake, image_profile, url) -> None:
    fake.image_mode, fake.image_url = "url", url
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a cat"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert frames[-1]["type"] == "image.error" and frames[-1]["code"] == "url_refused"
    assert not await GeneratedImage.objects.filter(chat=chat).aexists()
    await comm.disconnect()


async def test_an_image_url_that_is_no_url_is_a_protocol_error(chat, cookie, fake, image_profile) -> None:
    fake.image_mode, fake.image_url = "url", "http://0251.0376.0251.0376/latest/meta-data/"  # octal 169.254.169.254
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a cat"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert frames[-1]["type"] == "image.error" and frames[-1]["code"] == "protocol"
    assert "not a valid URL" in frames[-1]["message"]
    await comm.disconnect()


async def test_under_public_only_an_image_url_on_loopback_is_not_fetched(settings) -> None:
    with ChatFake() as internal:
        settings.QTAP_BASE_URL_POLICY = "public-only"
        provider = create_image_provider(PLUGIN_NAME, api_key="sk-test", base_url="https://api.openai.com/v1")
        try:
            with pytest.raises(errors.ProtocolError) as refused:
                await provider._download(f"{internal.origin}/files/internal-report.png")
        finally:
            await provider.aclose()
            await close_clients()
        assert refused.value.code == "url_refused" and "loopback" in refused.value.message
        assert internal.requests == []


async def test_under_the_default_policy_an_image_url_on_loopback_is_fetched(chat, cookie, fake, image_profile) -> None:
    fake.image_mode = "url"
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a cat"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert frames[-1]["type"] == "image.finished"
    assert any(r.path.startswith("/files/") for r in fake.requests)
    await comm.disconnect()


TIMEOUTS = Timeouts(connect=2, read=2, write=2, pool=2)


@pytest.mark.parametrize("url", METADATA_SPELLINGS)
async def test_the_transport_refuses_a_forbidden_literal_host_before_connecting(url: str) -> None:
    try:
        with pytest.raises(UrlRefused) as refused:
            await get_client(url, TIMEOUTS).get(url)
    finally:
        await close_clients()
    assert "metadata" in str(refused.value) or "link-local" in str(refused.value)


async def test_a_name_is_judged_by_the_addresses_it_resolves_to_when_connecting(settings, monkeypatch) -> None:
    resolved: list[str] = []
    real = socket.getaddrinfo

    def fake_dns(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "models.internal.example":
            resolved.append(host)
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    with ChatFake() as internal:
        port = internal.origin.rsplit(":", 1)[1]
        url = f"http://models.internal.example:{port}/v1/models"
        try:
            # Allowed: the name resolves to loopback, which the default policy allows; the request arrives.
            response = await get_client(url, TIMEOUTS).get(
                url, headers={"Authorization": "Bearer sk-test-chat-0123456789"}
            )
            assert response.status_code == 200 and len(internal.requests) == 1
            await close_clients()
            settings.QTAP_BASE_URL_POLICY = "public-only"
            with pytest.raises(UrlRefused) as refused:
                await get_client(url, TIMEOUTS).get(url)
        finally:
            await close_clients()
        assert "127.0.0.1" in str(refused.value) and "loopback" in str(refused.value)
        assert resolved == ["models.internal.example", "models.internal.example"]
        assert len(internal.requests) == 1
