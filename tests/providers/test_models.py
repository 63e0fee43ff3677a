"""Model rules: plugin validated against the registry, key/profile consistency, base URLs, parameters,
one default per user, status of profiles whose plugin is gone or disabled, secrets never shown."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from providers.models import ApiKey, ConnectionProfile, ImageProfile, PluginState

pytestmark = pytest.mark.django_db

SECRET = "sk-test-abcdefghijklmnop1234"


def make_key(user, plugin="qtap-plugin-openai", secret=SECRET, label="main") -> ApiKey:
    key = ApiKey(user=user, plugin=plugin, label=label)
    key.set_secret(secret)
    key.full_clean()
    key.save()
    return key


def errors_of(obj) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        obj.full_clean()
    return info.value.message_dict


def test_secret_round_trip_and_masking(user):
    key = make_key(user)
    assert key.encrypted_secret != SECRET and SECRET not in key.encrypted_secret
    assert key.last4 == "1234"
    assert ApiKey.objects.get(pk=key.pk).get_secret() == SECRET
    for shown in (str(key), repr(key), key.masked):
        assert SECRET not in shown
        assert "…1234" in shown


def test_short_secret_shows_no_tail(user):
    key = ApiKey(user=user, plugin="qtap-plugin-ollama", label="short")
    key.set_secret("abc123")
    assert key.last4 == ""
    assert key.masked == "…"


def test_key_plugin_is_normalised_and_unknown_plugin_lists_available(user):
    key = make_key(user, plugin="OPENAI")
    assert key.plugin == "qtap-plugin-openai"

    unknown = ApiKey(user=user, plugin="qtap-plugin-nope", label="x")
    unknown.set_secret(SECRET)
    message = errors_of(unknown)["plugin"][0]
    assert "Unknown provider 'qtap-plugin-nope'" in message
    assert "qtap-plugin-anthropic" in message and "qtap-plugin-openai" in message


def test_key_without_secret_is_refused(user):
    key = ApiKey(user=user, plugin="qtap-plugin-openai", label="x")
    assert errors_of(key)["__all__"] == ["Enter the secret of this API key."]


def test_profile_key_of_another_plugin_is_refused(user):
    key = make_key(user, plugin="qtap-plugin-anthropic", secret="sk-ant-abcdefghijkl")
    profile = ConnectionProfile(user=user, name="p", plugin="qtap-plugin-openai", model="gpt-4o", api_key=key)
    (message,) = errors_of(profile)["api_key"]
    assert "qtap-plugin-anthropic" in message and "qtap-plugin-openai" in message


def test_profile_key_of_another_user_is_refused(user, other_user):
    key = make_key(other_user)
    profile = ConnectionProfile(user=user, name="p", plugin="qtap-plugin-openai", model="gpt-4o", api_key=key)
    assert errors_of(profile)["api_key"] == ["This API key belongs to another user."]


def test_profile_plugin_by_provider_name_and_unknown(user):
    profile = ConnectionProfile(user=user, name="p", plugin="ANTHROPIC", model="claude")
    profile.full_clean()
    assert profile.plugin == "qtap-plugin-anthropic"

    unknown = ConnectionProfile(user=user, name="p", plugin="MISTRAL", model="m")
    assert "Unknown provider 'MISTRAL'" in errors_of(unknown)["plugin"][0]


def test_base_url_required_where_the_plugin_says_so(user):
    profile = ConnectionProfile(user=user, name="local", plugin="qtap-plugin-openai-compatible", model="smol")
    (message,) = errors_of(profile)["base_url"]
    assert "needs a base URL" in message

    # Ollama requires one too but ships a default, which is filled in.
    ollama = ConnectionProfile(user=user, name="ollama", plugin="qtap-plugin-ollama", model="llama3")
    ollama.full_clean()
    assert ollama.base_url == "http://localhost:11434"


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("http://169.254.169.254/latest", "cloud metadata"),
        ("http://metadata.google.internal/v1", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://169.254.10.1/", "link-local"),
        ("ftp://example.com/", "http:// or https://"),
    ],
)
def test_refused_base_urls(user, url, fragment):
    profile = ConnectionProfile(user=user, name="p", plugin="qtap-plugin-openai-compatible", model="m", base_url=url)
    (message,) = errors_of(profile)["base_url"]
    assert fragment in message


def test_local_base_url_allowed_by_default(user):
    profile = ConnectionProfile(
        user=user, name="p", plugin="qtap-plugin-openai-compatible", model="m", base_url=" http://127.0.0.1:8080/v1 "
    )
    profile.full_clean()
    assert profile.base_url == "http://127.0.0.1:8080/v1"


@pytest.mark.parametrize(
    "parameters, fragment",
    [
        ({"temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
        ({"temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than 0"),
        ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop: List should have at most 4 items"),
        ({"stop": "END"}, "stop: Input should be a valid list"),
        ({"temprature": 1}, "unknown parameter 'temprature'"),
        ([1, 2], "parameters must be a JSON object"),
    ],
)
def test_bad_chat_parameters(user, parameters, fragment):
    profile = ConnectionProfile(user=user, name="p", plugin="qtap-plugin-openai", model="m", parameters=parameters)
    messages = errors_of(profile)["parameters"]
    assert any(fragment in m for m in messages), messages


def test_good_chat_parameters_are_normalised(user):
    profile = ConnectionProfile(
        user=user,
        name="p",
        plugin="qtap-plugin-openai",
        model="m",
        parameters={"temperature": 0.7, "max_tokens": 512, "top_p": 1, "stop": ["END"]},
    )
    profile.full_clean()
    assert profile.parameters == {"temperature": 0.7, "max_tokens": 512, "top_p": 1.0, "stop": ["END"]}


def test_image_profile_needs_an_image_plugin_and_valid_parameters(user):
    no_images = ImageProfile(user=user, name="i", plugin="qtap-plugin-anthropic", model="claude")
    assert errors_of(no_images)["plugin"] == ["qtap-plugin-anthropic does not generate images."]

    bad = ImageProfile(
        user=user, name="i", plugin="qtap-plugin-openai", model="gpt-image-1", parameters={"n": 11, "size": "huge"}
    )
    messages = errors_of(bad)["parameters"]
    assert any(m.startswith("n:") for m in messages) and any(m.startswith("size:") for m in messages)

    good = ImageProfile(
        user=user,
        name="i",
        plugin="GOOGLE_IMAGEN",
        model="imagen-3",
        parameters={"aspect_ratio": "16:9", "n": 2, "quality": "hd", "style": "vivid"},
    )
    good.full_clean()
    assert good.plugin == "qtap-plugin-google"


def test_one_default_profile_per_user(user, other_user):
    first = ConnectionProfile.objects.create(
        user=user, name="a", plugin="qtap-plugin-openai", model="m", is_default=True
    )
    theirs = ConnectionProfile.objects.create(
        user=other_user, name="t", plugin="qtap-plugin-openai", model="m", is_default=True
    )
    second = ConnectionProfile.objects.create(
        user=user, name="b", plugin="qtap-plugin-openai", model="m", is_default=True
    )
    first.refresh_from_db()
    theirs.refresh_from_db()
    assert (first.is_default, second.is_default, theirs.is_default) == (False, True, True)


def test_status_ok_unavailable_disabled(user):
    profile = ConnectionProfile.objects.create(user=user, name="a", plugin="qtap-plugin-openai", model="m")
    assert profile.status == "ok" and profile.plugin_available

    # A plugin that is gone (e.g. a legacy value kept verbatim) is kept, and shown as unavailable.
    orphan = ConnectionProfile.objects.create(user=user, name="o", plugin="MISTRAL", model="m")
    assert orphan.status == "provider unavailable" and not orphan.plugin_available

    PluginState.objects.create(name="qtap-plugin-openai", enabled=False)
    assert profile.status == "provider disabled"


def test_effective_base_url(user):
    profile = ConnectionProfile(user=user, name="a", plugin="qtap-plugin-openai", model="m")
    assert profile.effective_base_url == "https://api.openai.com/v1"
    profile.base_url = "http://127.0.0.1:9999/v1"
    assert profile.effective_base_url == "http://127.0.0.1:9999/v1"
