"""Uploads: the type is sniffed from the bytes (never the client's word), images are verified with
Pillow, and identical files of one owner are stored once.

May import: ``models``.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import PurePath
from typing import Any

import filetype
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from qtap_site.chat.models import Attachment

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOCUMENT_TYPES = frozenset({"application/pdf"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
ALLOWED_TYPES = IMAGE_TYPES | DOCUMENT_TYPES | TEXT_TYPES
_MARKDOWN_SUFFIXES = {".md", ".markdown"}


class AttachmentError(Exception):
    """An upload refused; ``status`` is the HTTP status the upload endpoint answers with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AttachmentTooLarge(AttachmentError):
    status = 413


class AttachmentTypeRefused(AttachmentError):
    status = 415


class AttachmentInvalid(AttachmentError):
    status = 400


def max_upload_bytes() -> int:
    return int(settings.QTAP_MAX_UPLOAD_BYTES)


def sniff_mime_type(data: bytes, filename: str) -> str:
    """The MIME type of ``data`` from its magic bytes; text only when it decodes as UTF-8."""
    kind = filetype.guess(data[:8192])
    if kind is not None:
        if kind.mime not in ALLOWED_TYPES:
            raise AttachmentTypeRefused(
                f"Files of type {kind.mime} are not accepted. Accepted: {', '.join(sorted(ALLOWED_TYPES))}."
            )
        return str(kind.mime)
    if _is_text(data):
        suffix = PurePath(filename).suffix.lower()
        return "text/markdown" if suffix in _MARKDOWN_SUFFIXES else "text/plain"
    raise AttachmentTypeRefused(
        f"The type of {filename!r} could not be recognised. Accepted: {', '.join(sorted(ALLOWED_TYPES))}."
    )


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def verify_image(data: bytes) -> None:
    """Refuse images Pillow cannot read and decompression bombs (more pixels than MAX_IMAGE_PIXELS)."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; both are refused here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and image.width * image.height > limit:
                    raise AttachmentInvalid(
                        f"Image is {image.width}x{image.height} pixels, more than the {limit} allowed."
                    )
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AttachmentInvalid(f"Image refused: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise AttachmentInvalid(f"Image could not be read: {exc}") from None


def clean_filename(name: str) -> str:
    base = PurePath(name.replace("\\", "/")).name.strip()
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>')
    return (cleaned or "upload")[:255]


def attachment_create(*, owner: Any, filename: str, data: bytes) -> Attachment:
    """Store ``data`` for ``owner``; the same bytes uploaded twice return the existing row."""
    limit = max_upload_bytes()
    if len(data) > limit:
        raise AttachmentTooLarge(f"File is {len(data)} bytes; the limit is {limit} bytes.")
    if not data:
        raise AttachmentInvalid("File is empty.")
    filename = clean_filename(filename)
    mime_type = sniff_mime_type(data, filename)
    if mime_type in IMAGE_TYPES:
        verify_image(data)
    digest = hashlib.sha256(data).hexdigest()
    existing = Attachment.objects.filter(owner=owner, sha256=digest).first()
    if existing is not None:
        return existing
    attachment = Attachment(owner=owner, sha256=digest, mime_type=mime_type, size=len(data), filename=filename)
    try:
        with transaction.atomic():
            attachment.file.save(digest, ContentFile(data), save=False)
            attachment.save()
    except IntegrityError:
        # The same file uploaded concurrently by the same owner: the other request won.
        return Attachment.objects.get(owner=owner, sha256=digest)
    return attachment
