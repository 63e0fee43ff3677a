"""A key the configured encryption keys cannot open gives one code and one wording on every path.

The connection test, the model list, a chat send and an image generation each ask
``providers.calls.resolve_call``; before, the same key was ``decryption`` on one page, ``missing_api_key``
on another and an unguarded ``internal`` on the third. Nothing reaches the provider on any path.
"""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from providers import services
from providers.calls import undecryptable_message
from providers.models import ApiKey
from tests.chat.conftest import TERMINAL, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

CODE = "missing_api_key"


@pytest.fixture
def broken_key(api_key):
    """``api_key`` re-encrypted under a key qtap is not configured with (as after a lost QTAP_ENCRYPTION_KEYS)."""
    foreign = Fernet(Fernet.generate_key()).encrypt(b"sk-test-chat-0123456789").decode()
    ApiKey.objects.filter(pk=api_key.pk).update(encrypted_secret=foreign)
    api_key.refresh_from_db()
    return api_key


async def test_connection_test(profile, broken_key, fake) -> None:
    result = await services.test_connection(profile)
    assert (result.ok, result.code, result.message) == (False, CODE, undecryptable_message(broken_key))
    assert fake.requests == []


async def test_model_list(profile, broken_key, fake) -> None:
    with pytest.raises(ValueError) as refused:
        await services.list_models(plugin=profile.plugin, api_key=broken_key, base_url=profile.base_url)
    assert str(refused.value) == undecryptable_message(broken_key)
    assert fake.requests == []


async def test_send(chat, cookie, broken_key, fake) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "hello"})
    error = (await receive_until(comm, *TERMINAL))[-1]
    assert (error["type"], error["code"], error["message"]) == (
        "generation.error",
        CODE,
        undecryptable_message(broken_key),
    )
    assert fake.requests == []
    await comm.disconnect()


async def test_image(chat, cookie, image_profile, broken_key, fake) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a cat"})
    error = (await receive_until(comm, "image.finished", "image.error"))[-1]
    assert (error["type"], error["code"], error["message"]) == ("image.error", CODE, undecryptable_message(broken_key))
    assert fake.requests == []
    await comm.disconnect()


def test_the_words_say_what_to_do(broken_key) -> None:
    words = undecryptable_message(broken_key)
    assert "cannot be decrypted" in words and "QTAP_ENCRYPTION_KEYS" in words and broken_key.label in words
