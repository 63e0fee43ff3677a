"""Services and selectors: validation with clear messages, warnings that do not refuse, user scoping,
and the connection test against a real local server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from providers import selectors, services
from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState
from tests.providers.conftest import GOOD_KEY, KEYCHECK

pytestmark = pytest.mark.django_db


def test_api_key_create_encrypts_and_keeps_last4(user):
    key = services.api_key_create(user=user, plugin="OPENAI", label=" work ", secret="  sk-abcdefghijklmnop4321\n")
    key.refresh_from_db()
    assert (key.plugin, key.label, key.last4, key.is_active) == ("qtap-plugin-openai", "work", "4321", True)
    assert key.get_secret() == "sk-abcdefghijklmnop4321"


def test_pattern_mismatch_warns_but_saves(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-anthropic", label="x", secret="not-an-anthropic-key")
    assert ApiKey.objects.filter(pk=key.pk).exists()
    (warning,) = key.warnings
    assert "does not look like a key for Anthropic" in warning
    assert "^sk-ant-" in warning

    good = services.api_key_create(user=user, plugin="qtap-plugin-anthropic", label="y", secret="sk-ant-api03-abcdefgh")
    assert good.warnings == []


@pytest.mark.parametrize(
    "secret, fragment",
    [
        ("", "Enter the secret"),
        ("   ", "Enter the secret"),
        ("sk-abc def", "no spaces"),
        ("sk-abc\ndef", "no spaces"),
        ("sk-abcdéf", "ASCII"),
        ("x" * 5000, "at most"),
    ],
)
def test_unusable_secrets_are_refused(user, secret, fragment):
    with pytest.raises(ValidationError) as info:
        services.api_key_create(user=user, plugin="qtap-plugin-openai", label="x", secret=secret)
    assert fragment in info.value.message_dict["secret"][0]
    assert not ApiKey.objects.exists()


def test_api_key_create_unknown_plugin(user):
    with pytest.raises(ValidationError) as info:
        services.api_key_create(user=user, plugin="qtap-plugin-gone", label="x", secret="abcdefgh")
    assert "Unknown provider 'qtap-plugin-gone'" in info.value.message_dict["plugin"][0]


def test_api_key_update_disable_delete(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="a", secret="sk-first-secret-1111")
    old_cipher = key.encrypted_secret

    services.api_key_update(api_key=key, label="b", secret="")  # empty secret keeps the stored one
    key.refresh_from_db()
    assert (key.label, key.encrypted_secret) == ("b", old_cipher)

    services.api_key_update(api_key=key, secret="sk-second-secret-2222")
    key.refresh_from_db()
    assert key.get_secret() == "sk-second-secret-2222" and key.last4 == "2222"

    services.api_key_set_active(api_key=key, is_active=False)
    key.refresh_from_db()
    assert key.is_active is False

    profile = services.connection_profile_create(
        user=user, name="p", plugin="qtap-plugin-openai", model="gpt-4o", api_key=key
    )
    services.api_key_delete(api_key=key)
    profile.refresh_from_db()
    assert profile.api_key is None  # the profile stays, without a key


def test_connection_profile_create_validates_and_normalises(user):
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="a", secret="sk-abcdefghijkl")
    profile = services.connection_profile_create(
        user=user,
        name=" Fast ",
        plugin="OPENAI",
        model=" gpt-4o-mini ",
        api_key=key,
        parameters={"temperature": 0.2},
        is_default=True,
    )
    profile.refresh_from_db()
    assert (profile.name, profile.plugin, profile.model, profile.parameters, profile.is_default) == (
        "Fast",
        "qtap-plugin-openai",
        "gpt-4o-mini",
        {"temperature": 0.2},
        True,
    )

    with pytest.raises(ValidationError) as info:
        services.connection_profile_create(
            user=user, name="bad", plugin="qtap-plugin-anthropic", model="c", api_key=key
        )
    assert "qtap-plugin-openai" in info.value.message_dict["api_key"][0]
    assert ConnectionProfile.objects.count() == 1


def test_profile_update_and_set_default(user):
    a = services.connection_profile_create(user=user, name="a", plugin="qtap-plugin-openai", model="m", is_default=True)
    b = services.connection_profile_create(user=user, name="b", plugin="qtap-plugin-openai", model="m")
    services.profile_make_default(profile=b)
    a.refresh_from_db()
    assert (a.is_default, b.is_default) == (False, True)
    assert selectors.default_profile_for(user) == b

    ConnectionProfile.objects.filter(pk=a.pk).update(migrated_from={"provider": "OPENAI_COMPATIBLE"})
    a.refresh_from_db()
    services.profile_update(profile=a, base_url="http://127.0.0.1:9/v1", parameters={"top_p": 0.5})
    a.refresh_from_db()
    assert (a.base_url, a.parameters, a.migrated_from) == ("http://127.0.0.1:9/v1", {"top_p": 0.5}, None)

    with pytest.raises(ValidationError):
        services.profile_update(profile=a, parameters={"top_p": 3})
    a.refresh_from_db()
    assert a.parameters == {"top_p": 0.5}  # nothing lost on a refused update
    with pytest.raises(TypeError, match="user"):
        services.profile_update(profile=a, user=None)


def test_image_profile_create(user):
    profile = services.image_profile_create(
        user=user, name="pics", plugin="qtap-plugin-openai", model="gpt-image-1", parameters={"size": "1024x1024"}
    )
    assert ImageProfile.objects.get().parameters == {"size": "1024x1024"}
    assert selectors.default_image_profile_for(user) == profile
    with pytest.raises(ValidationError) as info:
        services.image_profile_create(user=user, name="x", plugin="qtap-plugin-ollama", model="llava")
    assert info.value.message_dict["plugin"] == ["qtap-plugin-ollama does not generate images."]


def test_selectors_are_scoped_to_their_user(user, other_user):
    mine = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="mine", secret="sk-mine-12345678")
    theirs = services.api_key_create(
        user=other_user, plugin="qtap-plugin-openai", label="theirs", secret="sk-theirs-1234567"
    )
    my_profile = services.connection_profile_create(user=user, name="p", plugin="qtap-plugin-openai", model="m")
    their_profile = services.connection_profile_create(
        user=other_user, name="p", plugin="qtap-plugin-openai", model="m"
    )
    their_image = services.image_profile_create(user=other_user, name="i", plugin="qtap-plugin-openai", model="m")

    assert list(selectors.api_keys_for(user)) == [mine]
    assert list(selectors.profiles_for(user)) == [my_profile]
    assert selectors.get_api_key_for(user, mine.pk) == mine
    with pytest.raises(ApiKey.DoesNotExist):
        selectors.get_api_key_for(user, theirs.pk)
    with pytest.raises(ConnectionProfile.DoesNotExist):
        selectors.get_profile_for(user, their_profile.pk)
    with pytest.raises(ImageProfile.DoesNotExist):
        selectors.get_image_profile_for(user, their_image.pk)
    assert selectors.default_profile_for(other_user) == their_profile
    assert list(selectors.api_keys_for(user, plugin="qtap-plugin-anthropic")) == []
    services.api_key_set_active(api_key=mine, is_active=False)
    assert list(selectors.api_keys_for(user, active_only=True)) == []


# ---- test_connection over a real loopback server -----------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_connection_ok_and_failure_keep_the_upstream_reason(user, keycheck):
    from asgiref.sync import sync_to_async

    good = await sync_to_async(services.api_key_create)(user=user, plugin=KEYCHECK, label="good", secret=GOOD_KEY)
    bad = await sync_to_async(services.api_key_create)(
        user=user, plugin=KEYCHECK, label="bad", secret="kt-wrong-0000000000"
    )

    ok = await services.test_connection(good)
    assert ok == services.ConnectionTestResult(True, "Connection works.", "ok")
    assert keycheck.requests[-1].path == "/v1/models"

    failed = await services.test_connection(api_key=bad)
    assert failed.ok is False
    assert failed.code == "authentication"
    assert "invalid x-api-key" in failed.message
    assert "kt-wrong" not in failed.message


@pytest.mark.django_db(transaction=True)
async def test_connection_of_a_profile_uses_its_base_url(user, keycheck):
    from asgiref.sync import sync_to_async

    from tests.providers.conftest import KeyCheckServer

    with KeyCheckServer() as other:
        key = await sync_to_async(services.api_key_create)(user=user, plugin=KEYCHECK, label="k", secret=GOOD_KEY)
        profile = await sync_to_async(services.connection_profile_create)(
            user=user, name="p", plugin=KEYCHECK, model="kc-small", api_key=key, base_url=other.base_url
        )
        result = await services.test_connection(profile=profile)
        assert result.ok
        assert len(other.requests) == 1 and keycheck.requests == []

        models = await services.list_models(plugin=KEYCHECK, api_key=key, base_url=other.base_url)
        assert [m.id for m in models] == ["kc-small"]


@pytest.mark.django_db(transaction=True)
async def test_connection_reasons_without_a_call(user, keycheck):
    from asgiref.sync import sync_to_async

    make_profile = sync_to_async(ConnectionProfile.objects.create)
    no_key = await make_profile(user=user, name="n", plugin=KEYCHECK, model="m")
    assert (await services.test_connection(no_key)).code == "missing_api_key"

    orphan = await make_profile(user=user, name="o", plugin="MISTRAL", model="m")
    result = await services.test_connection(orphan)
    assert (result.ok, result.code) == (False, "provider_unavailable")

    metadata = await make_profile(user=user, name="m", plugin=KEYCHECK, model="m", base_url="http://169.254.169.254/")
    result = await services.test_connection(metadata)
    assert result.code == "base_url_refused" and "metadata" in result.message

    key = await sync_to_async(services.api_key_create)(user=user, plugin=KEYCHECK, label="k", secret=GOOD_KEY)
    await sync_to_async(services.api_key_set_active)(api_key=key, is_active=False)
    assert (await services.test_connection(key)).code == "key_disabled"

    await sync_to_async(PluginState.objects.create)(name=KEYCHECK, enabled=False)
    assert (await services.test_connection(no_key)).code == "provider_unavailable"
    assert keycheck.requests == []  # none of these reached the provider


@pytest.mark.django_db(transaction=True)
async def test_connection_to_a_closed_port_says_so(user, keycheck):
    from asgiref.sync import sync_to_async

    key = await sync_to_async(services.api_key_create)(user=user, plugin=KEYCHECK, label="k", secret=GOOD_KEY)
    profile = await sync_to_async(services.connection_profile_create)(
        user=user, name="p", plugin=KEYCHECK, model="m", api_key=key, base_url="http://127.0.0.1:9/v1"
    )
    result = await services.test_connection(profile)
    assert (result.ok, result.code) == (False, "connection")
    assert result.message


@pytest.mark.django_db(transaction=True)
async def test_list_models_refuses_bad_base_urls_and_raises_provider_errors(user, keycheck):
    from asgiref.sync import sync_to_async

    from providers.errors import AuthenticationError, UnknownProviderError

    bad = await sync_to_async(services.api_key_create)(user=user, plugin=KEYCHECK, label="b", secret="kt-nope-00000000")
    with pytest.raises(services.BaseUrlRefused, match="cloud metadata"):
        await services.list_models(plugin=KEYCHECK, api_key=bad, base_url="http://169.254.169.254/v1")
    with pytest.raises(AuthenticationError) as info:
        await services.list_models(plugin=KEYCHECK, api_key=bad)
    assert "invalid x-api-key" in info.value.message
    with pytest.raises(UnknownProviderError):
        await services.list_models(plugin="qtap-plugin-gone")
    with pytest.raises(ValueError, match="needs an API key"):
        await services.list_models(plugin=KEYCHECK)
    assert len(keycheck.requests) == 1


def test_key_stored_under_a_provider_name_still_matches(user):
    """Rows written without clean() (e.g. by another tool) may say OPENAI: it is the same plugin."""
    key = services.api_key_create(user=user, plugin="qtap-plugin-openai", label="a", secret="sk-abcdefghijkl")
    ApiKey.objects.filter(pk=key.pk).update(plugin="OPENAI")
    key.refresh_from_db()
    profile = ConnectionProfile(user=user, name="p", plugin="qtap-plugin-openai", model="m", api_key=key)
    profile.full_clean()
