"""Uploads over HTTP and owner-only serving of attachments and generated images."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from qtap_site.chat.models import Attachment, GeneratedImage
from qtap_site.chat.services import chat_create
from tests.chat.conftest import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def my_chat(user):
    return chat_create(user=user)


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, chat_id: int, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(
        f"/chats/{chat_id}/attachments/", {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    )


def test_upload_sniffs_the_type_and_deduplicates(client, my_chat, user):
    data = png_bytes()
    # The client's claimed type is ignored: the bytes say PNG.
    response = upload(client, my_chat.pk, "../../etc/cat.png", data, content_type="text/html")
    assert response.status_code == 201
    body = response.json()
    assert body["mime_type"] == "image/png" and body["size"] == len(data) and body["filename"] == "cat.png"
    assert set(body) == {"id", "filename", "mime_type", "size"}
    again = upload(client, my_chat.pk, "copy.png", data)
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    assert Attachment.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("notes.txt", "plain text, ünïcode\n".encode(), "text/plain"),
        ("README.md", b"# Title\n\n* item\n", "text/markdown"),
        ("paper.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF", "application/pdf"),
    ],
)
def test_allowed_types(client, my_chat, name, data, mime):
    response = upload(client, my_chat.pk, name, data)
    assert response.status_code == 201, response.content
    assert response.json()["mime_type"] == mime


@pytest.mark.parametrize(
    "data",
    [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200,  # a Windows executable
        b"\x00\x01\x02\xff\xfe" * 50,  # binary nobody can name
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 100,  # zip
    ],
)
def test_refused_types_answer_415(client, my_chat, data):
    response = upload(client, my_chat.pk, "file.png", data, content_type="image/png")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_type"
    assert not Attachment.objects.exists()


def test_too_large_answers_413(client, my_chat, settings):
    settings.QTAP_MAX_UPLOAD_BYTES = 1000
    response = upload(client, my_chat.pk, "big.txt", b"a" * 1001)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large" and "1000" in error["message"]
    assert upload(client, my_chat.pk, "ok.txt", b"a" * 1000).status_code == 201
    # Far over the limit: refused from the declared length, before the body is parsed.
    huge = upload(client, my_chat.pk, "huge.txt", b"a" * 200_000)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
    assert Attachment.objects.count() == 1


def test_broken_image_and_decompression_bomb_answer_400(client, my_chat, monkeypatch):
    broken = png_bytes()[:40]
    response = upload(client, my_chat.pk, "broken.png", broken)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_file"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    bomb = upload(client, my_chat.pk, "bomb.png", png_bytes((64, 64)))
    assert bomb.status_code == 400
    assert "pixels" in bomb.json()["error"]["message"] or "decompression" in bomb.json()["error"]["message"].lower()
    assert not Attachment.objects.exists()


def test_foreign_or_missing_chat_is_404_and_anonymous_is_sent_to_login(client, other_user, my_chat):
    theirs = chat_create(user=other_user)
    assert upload(client, theirs.pk, "a.txt", b"hello").status_code == 404
    assert upload(client, 999999, "a.txt", b"hello").status_code == 404
    anonymous = upload(Client(), my_chat.pk, "a.txt", b"hello")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    assert not Attachment.objects.exists()


def test_upload_needs_csrf(user, my_chat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert upload(client, my_chat.pk, "a.txt", b"hello").status_code == 403


def test_missing_field_is_400(client, my_chat):
    response = client.post(f"/chats/{my_chat.pk}/attachments/", {"other": "x"})
    assert response.status_code == 400 and "file" in response.json()["error"]["message"]


def test_attachments_are_served_to_their_owner_only(client, my_chat, other_user):
    image_id = upload(client, my_chat.pk, "cat.png", png_bytes()).json()["id"]
    text_id = upload(client, my_chat.pk, "notes.txt", b"<script>alert(1)</script>").json()["id"]
    response = client.get(f"/attachments/{image_id}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline") and "cat.png" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == png_bytes()
    text = client.get(f"/attachments/{text_id}/")
    assert text["Content-Type"] == "text/plain"
    assert text["Content-Disposition"].startswith("attachment")
    assert "sandbox" in text["Content-Security-Policy"]

    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(f"/attachments/{image_id}/").status_code == 404
    assert stranger.get("/attachments/999999/").status_code == 404


def test_generated_images_are_served_to_the_chat_owner_only(client, my_chat, other_user):
    image = GeneratedImage(chat=my_chat, prompt="cat", plugin="qtap-plugin-openai", model="m", mime_type="image/png")
    image.file.save("cat.png", ContentFile(png_bytes()), save=True)
    response = client.get(f"/images/{image.pk}/")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff" and "Content-Disposition" in response
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(f"/images/{image.pk}/").status_code == 404
