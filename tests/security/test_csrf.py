"""CSRF on every form: a signed-in user's POST without the token is refused, on every route."""

from __future__ import annotations

import pytest
from django.test import Client

from qtap_site.chat.models import Chat
from tests.security.conftest import Owned, png_bytes
from tests.security.routes import concrete_urls, site_endpoints

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_post_without_a_token_is_refused(owned: Owned) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owned.user)
    chats_before = Chat.objects.count()
    for endpoint in site_endpoints():
        for url in concrete_urls(endpoint, owned.ids(), owned.image_profile.pk):
            response = client.post(url, {"title": "renamed", "name": "x"})
            assert response.status_code == 403, f"POST {url} ({endpoint.name}) without a token: {response.status_code}"
    upload = client.post(f"/chats/{owned.chat.pk}/attachments/", {"file": _file()})
    assert upload.status_code == 403
    assert Chat.objects.count() == chats_before
    assert Chat.objects.get(pk=owned.chat.pk).title == owned.chat.title


def test_a_post_with_the_token_goes_through(owned: Owned) -> None:
    """The control: the refusals above come from the CSRF check, not from the routes."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(owned.user)
    client.get("/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/chats/new/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    upload = client.post(f"/chats/{owned.chat.pk}/attachments/", {"file": _file()}, headers={"X-CSRFToken": token})
    assert upload.status_code == 201


def _file():  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("dot.png", png_bytes(colour="green"), content_type="image/png")
