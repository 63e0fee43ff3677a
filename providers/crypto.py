"""Encryption of stored API keys: MultiFernet over QTAP_ENCRYPTION_KEYS.

The first key encrypts, every key decrypts, so a new key can be prepended and old ciphertext
re-encrypted with ``manage.py rotate_api_keys``. Keys are never derived from SECRET_KEY. With no key
configured, one is generated once into the data directory (mode 0600) and a warning is logged.
Migrations may import this module: its API is kept stable.

May import: nothing of qtap's (Django's settings, read when a key is needed), so migrations can.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

logger = logging.getLogger("qtap.crypto")

GENERATED_KEY_FILENAME = "encryption_key"


class InvalidEncryptionKeys(ValueError):
    pass


class DecryptionError(Exception):
    """Ciphertext that none of the configured keys can open. Never answered with the ciphertext."""


def build_multifernet(keys: Sequence[str]) -> MultiFernet:
    fernets = []
    for index, key in enumerate(k.strip() for k in keys):
        if not key:
            continue
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError) as exc:
            raise InvalidEncryptionKeys(f"key #{index + 1} is not a valid Fernet key ({exc})") from None
    if not fernets:
        raise InvalidEncryptionKeys("no encryption key given")
    return MultiFernet(fernets)


def generated_key(data_dir: Path) -> str:
    path = data_dir / GENERATED_KEY_FILENAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(Fernet.generate_key().decode())
            logger.warning(
                "QTAP_ENCRYPTION_KEYS is not set: generated an encryption key in %s. "
                "Back it up; set QTAP_ENCRYPTION_KEYS for production.",
                path,
            )
    stat = path.stat()
    return _read_key(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_key(path: str, mtime_ns: int, size: int) -> str:
    # Every decryption needs the key: read the file once per version of it, not once per message sent.
    return Path(path).read_text().strip()


def configured_keys() -> list[str]:
    from django.conf import settings

    keys = list(settings.QTAP_ENCRYPTION_KEYS)
    return keys or [generated_key(Path(settings.DATA_DIR))]


@lru_cache(maxsize=8)
def _cached(keys: tuple[str, ...]) -> MultiFernet:
    return build_multifernet(keys)


def multifernet() -> MultiFernet:
    return _cached(tuple(configured_keys()))


def encrypt(plaintext: str) -> str:
    return multifernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return multifernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("a stored secret cannot be decrypted with the configured QTAP_ENCRYPTION_KEYS") from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the newest key (raises DecryptionError when no key opens it)."""
    try:
        return multifernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionError("a stored secret cannot be decrypted with the configured QTAP_ENCRYPTION_KEYS") from None
