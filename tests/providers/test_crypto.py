"""Secrets at rest: unreadable in the database, undecryptable with a wrong key, absent from logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from providers import crypto, services
from providers.models import ApiKey

SECRET = "sk-proj-RAWSECRETabcdefghijklmnop9876"


@pytest.mark.django_db(transaction=True)
def test_secret_is_not_readable_in_the_database(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="main", secret=SECRET)

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM providers_apikey WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    assert row is not None
    assert not any(SECRET in str(value) for value in row)
    assert not any(SECRET[4:20] in str(value) for value in row)  # not even a fragment

    if connection.vendor == "sqlite":
        # Committed (transactional test): read the database file and its write-ahead log as bytes.
        path = Path(connection.settings_dict["NAME"])
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        assert raw, "the test database file should exist"
        assert key.encrypted_secret.encode() in raw  # the row really is in what was read
        assert SECRET.encode() not in raw


@pytest.mark.django_db
def test_wrong_key_raises_and_never_returns_ciphertext(user, settings):
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="main", secret=SECRET)
    settings.QTAP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError) as info:
        ApiKey.objects.get(pk=key.pk).get_secret()
    assert key.encrypted_secret not in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.django_db
def test_any_configured_key_decrypts_the_first_encrypts(user, settings, encryption_key):
    old = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="old", secret=SECRET)
    new_key = Fernet.generate_key().decode()
    settings.QTAP_ENCRYPTION_KEYS = [new_key, encryption_key]
    assert ApiKey.objects.get(pk=old.pk).get_secret() == SECRET
    fresh = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="new", secret=SECRET + "x")
    assert Fernet(new_key.encode()).decrypt(fresh.encrypted_secret.encode()).decode() == SECRET + "x"


@pytest.mark.django_db
def test_secret_never_logged(user, caplog, keycheck):
    """Creating, updating and testing a key, with everything logged at DEBUG: the secret is in no record."""
    caplog.set_level(logging.DEBUG)
    bad = "kt-BADSECRET-zyxwvutsrqponm"
    key = services.api_key_create(user=user, plugin="qtap-plugin-keycheck", label="k", secret=bad)
    services.api_key_update(api_key=key, secret=bad + "2")
    from asgiref.sync import async_to_sync

    result = async_to_sync(services.test_connection)(key)
    assert not result.ok and "invalid x-api-key" in result.message
    assert keycheck.requests[-1].headers["authorization"] == f"Bearer {bad}2"  # it was really sent
    assert caplog.records, "something should have been logged"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert bad not in logged
    assert bad not in result.message
