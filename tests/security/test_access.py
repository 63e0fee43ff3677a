"""Every route and the websocket, tried as anonymous and as another user: a login redirect, 403, 404,
405 or close code 4403 — never alice's data, and nothing of hers changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from providers.models import ApiKey, ConnectionProfile, ImageProfile
from qtap_site.chat.models import Attachment, Chat, GeneratedImage, Message
from tests.security.conftest import MARKERS, Owned
from tests.security.routes import admin_urls, concrete_urls, site_endpoints
from tests.support.data import SECRET
from tests.support.wsclient import InProcessTab

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC = {"login", "logout"}  # the only pages an anonymous visitor may see
LOGIN_PAGES = ("/login/", "/admin/login/")


def body(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
        response.close()
        return content
    return bytes(response.content)


def assert_no_private_data(response: Any, where: str) -> None:
    content = body(response)
    for label, marker in MARKERS.items():
        assert marker.encode() not in content, f"{where} shows alice's {label}"
    assert SECRET.encode() not in content, f"{where} shows alice's API key"


def all_site_urls(owned: Owned) -> list[tuple[str, str, bool]]:
    """(URL name, URL, whether it names one of alice's objects) for every route."""
    urls = []
    for endpoint in site_endpoints():
        for url in concrete_urls(endpoint, owned.ids(), owned.image_profile.pk):
            urls.append((endpoint.name, url, endpoint.names_objects))
    return urls


def test_the_walk_finds_the_routes_that_matter(owned: Owned) -> None:
    names = {name for name, _, _ in all_site_urls(owned)}
    for expected in ("chat:detail", "chat_api:attachment_upload", "chat_api:attachment_file", "providers:keys"):
        assert expected in names


def test_the_markers_are_visible_to_their_owner(owned: Owned) -> None:
    """The control: the leak checks below would see alice's data if it were shown."""
    client = Client()
    client.force_login(owned.user)
    page = body(client.get(f"/chats/{owned.chat.pk}/"))
    assert MARKERS["chat"].encode() in page and MARKERS["message"].encode() in page
    assert MARKERS["key"].encode() in body(client.get("/settings/keys/"))
    assert client.get(f"/attachments/{owned.attachment.pk}/").status_code == 200


def test_anonymous_visitors_get_the_login_page_and_nothing_else(owned: Owned) -> None:
    client = Client()
    for name, url, _ in all_site_urls(owned):
        if name in PUBLIC:
            continue
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            where = f"anonymous {method.upper()} {url} ({name})"
            assert response.status_code in (302, 403, 404, 405), f"{where} answered {response.status_code}"
            if response.status_code == 302 and not response["Location"].startswith(LOGIN_PAGES):
                # A plain redirect (/settings/ → /settings/keys/) must lead to the login page in turn.
                response = client.get(response["Location"])
                where += f" → {response.request['PATH_INFO']}"
            if response.status_code == 302:
                assert response["Location"].startswith(LOGIN_PAGES), where
            assert_no_private_data(response, where)
    assert_nothing_changed(owned)


def test_another_user_never_reaches_alices_objects(owned: Owned, other_user: Any) -> None:
    client = Client()
    client.force_login(other_user)
    for name, url, names_objects in all_site_urls(owned):
        if name == "logout":
            continue  # it would end mallory's session and turn the rest into the anonymous test
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            where = f"mallory {method.upper()} {url} ({name})"
            if names_objects:
                assert response.status_code in (403, 404, 405), f"{where} answered {response.status_code}"
            assert response.status_code < 500, f"{where} failed with {response.status_code}"
            assert_no_private_data(response, where)
    assert_nothing_changed(owned)


def test_the_admin_is_closed_to_anonymous_visitors_and_to_users_who_are_not_staff(
    owned: Owned, other_user: Any
) -> None:
    object_ids = {
        ApiKey: owned.key.pk,
        ConnectionProfile: owned.profile.pk,
        ImageProfile: owned.image_profile.pk,
        Chat: owned.chat.pk,
        Message: owned.message.pk,
        Attachment: owned.attachment.pk,
        GeneratedImage: owned.image.pk,
    }
    anonymous, mallory = Client(), Client()
    mallory.force_login(other_user)
    for client, who in ((anonymous, "anonymous"), (mallory, "mallory")):
        for url in admin_urls(object_ids):
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                where = f"{who} {method.upper()} {url}"
                assert response.status_code in (302, 403, 404), f"{where} answered {response.status_code}"
                if response.status_code == 302:
                    assert response["Location"].startswith("/admin/login/"), where
                assert_no_private_data(response, where)
    assert_nothing_changed(owned)


def assert_nothing_changed(owned: Owned) -> None:
    chat = Chat.objects.get(pk=owned.chat.pk)
    assert chat.title == MARKERS["chat"]
    key = ApiKey.objects.get(pk=owned.key.pk)
    assert key.is_active and key.label == MARKERS["key"] and key.get_secret() == SECRET
    profile = ConnectionProfile.objects.get(pk=owned.profile.pk)
    assert profile.is_default and profile.name == MARKERS["profile"]
    assert ImageProfile.objects.get(pk=owned.image_profile.pk).is_default
    assert Message.objects.filter(pk=owned.message.pk, content=MARKERS["message"]).exists()
    assert Attachment.objects.filter(pk=owned.attachment.pk).exists()
    assert GeneratedImage.objects.filter(pk=owned.image.pk).exists()
    from providers.plugin_state import plugin_is_enabled

    assert plugin_is_enabled("qtap-plugin-openai")


# ---- the websocket ---------------------------------------------------------------------------------


async def closed_code(chat_id: int, cookie: str | None, origin: str = "http://127.0.0.1") -> int | None:
    """Open the chat socket and answer the close code it gets instead of data (None if refused before accept)."""
    try:
        tab = await InProcessTab.open(chat_id, cookie=cookie, origin=origin)
    except ConnectionRefusedError as exc:
        text = str(exc)
        return int(text.rsplit(" ", 1)[-1]) if text[-1].isdigit() else None
    output = await tab.communicator.receive_output(5)
    assert output["type"] == "websocket.close", f"the socket sent data: {output}"
    return output.get("code")


async def test_the_websocket_refuses_anonymous_visitors_and_other_users(owned: Owned, other_user: Any) -> None:
    from asgiref.sync import sync_to_async

    from tests.support.wsclient import session_cookie

    mallory_cookie = await sync_to_async(session_cookie)(other_user)
    assert await closed_code(owned.chat.pk, None) == 4403
    assert await closed_code(owned.chat.pk, mallory_cookie) == 4403
    assert await closed_code(owned.chat.pk, "sessionid=forged-session-key") == 4403
    assert await closed_code(owned.chat.pk + 1000, mallory_cookie) == 4404


async def test_the_websocket_refuses_a_foreign_origin(owned: Owned, alice_cookie: str) -> None:
    tab = await InProcessTab.open(owned.chat.pk, cookie=alice_cookie)  # the control: her own origin works
    assert (await tab.recv())["type"] == "chat.state"
    await tab.close()
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "null"):
        code = await closed_code(owned.chat.pk, alice_cookie, origin=origin)
        assert code in (None, 1000, 403, 4403), f"Origin {origin} was not refused ({code})"
