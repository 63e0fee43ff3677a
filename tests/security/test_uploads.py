"""Uploads: the bytes decide the type, never the filename or the client's MIME type; oversized files
and decompression bombs are refused; what is stored is served only as what it really is."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from qtap_site.chat.models import Attachment
from tests.security.conftest import Owned, png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00" + b"\x00" * 200
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 100
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` by ``height`` pixels with a tiny compressed body: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def upload(client: Client, chat_id: int, name: str, data: bytes, content_type: str) -> Any:
    return client.post(
        f"/chats/{chat_id}/attachments/", {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    )


@pytest.fixture
def alice(owned: Owned) -> Client:
    client = Client()
    client.force_login(owned.user)
    return client


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("photo.png", EXE, "image/png"),  # a program dressed as an image
        ("report.pdf", ZIP, "application/pdf"),  # an archive dressed as a PDF
        ("picture.jpg", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/jpeg"),  # PNG magic, nothing behind it
        ("blob.bin", bytes(range(256)) * 4, "application/octet-stream"),  # unrecognisable binary
    ],
)
def test_a_file_whose_bytes_are_not_an_accepted_type_is_refused(
    alice: Client, owned: Owned, name: str, data: bytes, content_type: str
) -> None:
    before = Attachment.objects.count()
    response = upload(alice, owned.chat.pk, name, data, content_type)
    assert response.status_code in (400, 415), response.content
    assert response.json()["error"]["message"]
    assert Attachment.objects.count() == before


def test_the_bytes_decide_the_type_not_the_name_or_the_declared_type(alice: Client, owned: Owned) -> None:
    response = upload(alice, owned.chat.pk, "invoice.pdf", png_bytes(colour="white"), "application/pdf")
    assert response.status_code == 201
    assert response.json()["mime_type"] == "image/png"
    served = alice.get(f"/attachments/{response.json()['id']}/")
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    served.close()


def test_html_claiming_to_be_an_image_is_never_served_as_html_or_an_image(alice: Client, owned: Owned) -> None:
    response = upload(alice, owned.chat.pk, "cute-cat.png", HTML, "image/png")
    if response.status_code == 201:
        assert response.json()["mime_type"] == "text/plain"
        served = alice.get(f"/attachments/{response.json()['id']}/")
        assert served["Content-Type"].startswith("text/plain")
        assert served["X-Content-Type-Options"] == "nosniff"
        assert served["Content-Disposition"].startswith("attachment")
        assert "sandbox" in served.get("Content-Security-Policy", "")
        served.close()
    else:
        assert response.status_code in (400, 415)


def test_an_oversized_upload_is_refused(alice: Client, owned: Owned, settings: Any) -> None:
    settings.QTAP_MAX_UPLOAD_BYTES = 10_000
    before = Attachment.objects.count()
    big = png_bytes(size=(400, 400), colour="red") + b"\x00" * 20_000
    response = upload(alice, owned.chat.pk, "big.png", big, "image/png")
    assert response.status_code == 413
    assert "10000" in response.json()["error"]["message"]
    assert Attachment.objects.count() == before


def test_a_decompression_bomb_is_refused(alice: Client, owned: Owned) -> None:
    bomb = png_header_only(60_000, 60_000)  # 3.6 gigapixels declared in a few hundred bytes
    assert len(bomb) < 2_000
    before = Attachment.objects.count()
    response = upload(alice, owned.chat.pk, "bomb.png", bomb, "image/png")
    assert response.status_code == 400
    assert "pixels" in response.json()["error"]["message"] or "bomb" in response.json()["error"]["message"].lower()
    assert Attachment.objects.count() == before


def test_an_upload_to_another_users_chat_is_not_found(owned: Owned, other_user: Any) -> None:
    mallory = Client()
    mallory.force_login(other_user)
    response = upload(mallory, owned.chat.pk, "dot.png", png_bytes(), "image/png")
    assert response.status_code == 404
