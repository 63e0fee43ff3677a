"""rotate_api_keys: re-encrypts with the newest key; a row no key opens is reported by id, the rest still rotate."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from providers import crypto, services
from providers.models import ApiKey

pytestmark = pytest.mark.django_db


def make_keys(user, count: int) -> list[ApiKey]:
    return [
        services.api_key_create(
            user=user, plugin="qtap-plugin-openai", label=f"k{i}", secret=f"sk-secret-number-{i:04d}"
        )
        for i in range(count)
    ]


def test_rotate_with_a_new_key_prepended(user, settings, encryption_key):
    keys = make_keys(user, 3)
    new = Fernet.generate_key().decode()
    settings.QTAP_ENCRYPTION_KEYS = [new, encryption_key]

    out = StringIO()
    call_command("rotate_api_keys", stdout=out)
    assert "Re-encrypted 3 API key(s)" in out.getvalue()

    # The old key can now be dropped: everything opens with the new one alone.
    settings.QTAP_ENCRYPTION_KEYS = [new]
    for i, key in enumerate(keys):
        stored = ApiKey.objects.get(pk=key.pk)
        assert stored.encrypted_secret != key.encrypted_secret
        assert stored.get_secret() == f"sk-secret-number-{i:04d}"
        assert stored.last4 == key.last4


def test_a_secret_no_key_opens_is_named_and_the_others_rotate(user, settings, encryption_key):
    keys = make_keys(user, 2)
    foreign = Fernet(Fernet.generate_key())
    stranger = ApiKey.objects.create(
        user=user,
        plugin="qtap-plugin-openai",
        label="from elsewhere",
        encrypted_secret=foreign.encrypt(b"sk-unopenable-secret").decode(),
        last4="cret",
    )
    new = Fernet.generate_key().decode()
    settings.QTAP_ENCRYPTION_KEYS = [new, encryption_key]

    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("rotate_api_keys", stdout=out)
    message = str(info.value)
    assert "\n" not in message
    assert f"id {stranger.pk}" in message and "could not be decrypted" in message
    assert "Re-encrypted 2 API key(s)" in out.getvalue()

    settings.QTAP_ENCRYPTION_KEYS = [new]
    assert [ApiKey.objects.get(pk=k.pk).get_secret() for k in keys] == [
        "sk-secret-number-0000",
        "sk-secret-number-0001",
    ]
    untouched = ApiKey.objects.get(pk=stranger.pk)
    assert untouched.encrypted_secret == stranger.encrypted_secret
    with pytest.raises(crypto.DecryptionError):
        untouched.get_secret()


def test_invalid_configured_key_is_a_one_line_error(settings):
    settings.QTAP_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(CommandError, match=r"^QTAP_ENCRYPTION_KEYS is invalid: key #1 is not a valid Fernet key"):
        call_command("rotate_api_keys", stdout=StringIO())


def test_nothing_to_rotate(settings):
    out = StringIO()
    call_command("rotate_api_keys", stdout=out)
    assert "Re-encrypted 0 API key(s)" in out.getvalue()
