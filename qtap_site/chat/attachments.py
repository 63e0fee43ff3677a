"""Uploads: the type is sniffed from the bytes (never the client's word), images are verified with
Pillow, identical files of one owner are stored once, and a file the chat's profile cannot take is
refused before it is stored (``providers.attachment_rules``, the rule the page and the send path use).

May import: ``models``; of the providers app, ``attachment_rules``, ``manifest`` and ``models``.
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

from providers import attachment_rules
from providers.manifest import ProviderConfig
from providers.models import ConnectionProfile
from qtap_site.chat.models import Attachment

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOCUMENT_TYPES = frozenset({"application/pdf"})
TEXT_TYPES = frozenset({"text/plain", "text/markdown"})
ALLOWED_TYPES = IMAGE_TYPES | DOCUMENT_TYPES | TEXT_TYPES
_MARKDOWN_SUFFIXES = {".md", ".markdown"}


class AttachmentError(Exception):
    """An upload refused; ``status`` is the HTTP status the upload endpoint answers with."""

    status = 400
    code = "invalid_file"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AttachmentTooLarge(AttachmentError):
    status = 413
    code = "too_large"


class AttachmentTypeRefused(AttachmentError):
    status = 415
    code = "unsupported_type"


class AttachmentInvalid(AttachmentError):
    status = 400


class AttachmentNotTaken(AttachmentError):
    """A file qtap stores, but not one the profile's provider or model takes."""

    status = 400
    code = "unsupported_attachment"


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


def _config(profile: ConnectionProfile | None) -> ProviderConfig | None:
    plugin = profile.plugin_object if profile is not None else None
    return plugin.manifest.provider_config if plugin is not None else None


def refusal(profile: ConnectionProfile | None, *, mime_type: str, size: int) -> str:
    """Why ``profile``'s provider and model do not take such a file ("" when they do). A profile whose
    plugin is not loaded refuses nothing here: its send fails as ``provider_unavailable`` instead."""
    config = _config(profile)
    if profile is None or config is None:
        return ""
    return attachment_rules.refusal(config, profile.model, mime_type=mime_type, size=size)


def page_rules(profiles: list[ConnectionProfile]) -> dict[str, dict[str, Any]]:
    """What the chat page knows of each profile (by id) to refuse a file before uploading it: the words
    ``refusal`` answers for each type qtap stores, at any size (``refused``) and over the limit
    (``too_large``), so the page shows the server's own sentence and only compares a type and a size."""
    upload_limit = max_upload_bytes()
    too_big = f"larger than {attachment_rules.size_words(upload_limit)}, the most this server accepts."
    rules: dict[str, dict[str, Any]] = {}
    for profile in profiles:
        config = _config(profile)
        accepted = attachment_rules.accepted_types(config, profile.model) if config is not None else ()
        limit = config.attachment_support.max_bytes if config is not None else None
        limit = min(limit, upload_limit) if limit is not None else upload_limit
        rules[str(profile.pk)] = {
            "provider": config.display_name if config is not None else profile.plugin,
            "status": profile.status,
            "attachments": bool(accepted),
            "mime_types": list(accepted),
            "max_bytes": limit,
            "types": {
                mime: {
                    "refused": refusal(profile, mime_type=mime, size=0),
                    "too_large": refusal(profile, mime_type=mime, size=limit + 1)
                    or f"{attachment_rules.noun(mime)[0]} {too_big}",
                }
                for mime in sorted(ALLOWED_TYPES)
            },
            "other": f"qtap does not take this type of file. Accepted: {', '.join(sorted(ALLOWED_TYPES))}.",
        }
    return rules


def attachment_create(
    *, owner: Any, filename: str, data: bytes, profile: ConnectionProfile | None = None
) -> Attachment:
    """Store ``data`` for ``owner``; the same bytes uploaded twice return the existing row. With a
    ``profile``, a file its provider or model does not take is refused (``AttachmentNotTaken``)."""
    limit = max_upload_bytes()
    if len(data) > limit:
        raise AttachmentTooLarge(f"File is {len(data)} bytes; the limit is {limit} bytes.")
    if not data:
        raise AttachmentInvalid("File is empty.")
    filename = clean_filename(filename)
    mime_type = sniff_mime_type(data, filename)
    if why := refusal(profile, mime_type=mime_type, size=len(data)):
        raise AttachmentNotTaken(f"{filename}: {why}")
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
