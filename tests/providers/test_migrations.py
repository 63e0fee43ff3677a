"""The legacy -> plugin migration (providers 0001..0004), tested on real schemas with django-test-migrations:
every legacy value, the OpenRouter rule, unknown values, exact reversal, and idempotence."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

LEGACY = ("providers", "0001_initial")
DATA = ("providers", "0003_legacy_providers_to_plugins")
LATEST = ("providers", "0005_pluginstate")
migration_0003 = importlib.import_module("providers.migrations.0003_legacy_providers_to_plugins")

EXPECTED_PLUGIN = {
    "OPENAI": "qtap-plugin-openai",
    "ANTHROPIC": "qtap-plugin-anthropic",
    "GOOGLE": "qtap-plugin-google",
    "GROK": "qtap-plugin-grok",
    "GAB_AI": "qtap-plugin-gab-ai",
    "OLLAMA": "qtap-plugin-ollama",
    "OPENROUTER": "qtap-plugin-openrouter",
    "OPENAI_COMPATIBLE": "qtap-plugin-openai-compatible",
}
OPENROUTER_URL = "https://openrouter.ai/api/v1"


def seed_legacy(apps) -> dict[str, int]:
    """Rows as the built-in-providers version of qtap stored them. Answers the ids the tests look at."""
    User = apps.get_model("auth", "User")
    ApiKey = apps.get_model("providers", "ApiKey")
    ConnectionProfile = apps.get_model("providers", "ConnectionProfile")
    ImageProfile = apps.get_model("providers", "ImageProfile")
    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")
    ids: dict[str, int] = {}

    def key(user, provider, label):
        row = ApiKey.objects.create(
            user=user,
            provider=provider,
            label=label,
            encrypted_secret=f"cipher-{label}",
            last4=label[-4:].rjust(4, "0"),
        )
        ids[f"key:{label}"] = row.pk
        return row

    def profile(user, provider, name, api_key=None, base_url="", **extra):
        row = ConnectionProfile.objects.create(
            user=user, provider=provider, name=name, model="m", api_key=api_key, base_url=base_url, **extra
        )
        ids[f"profile:{name}"] = row.pk
        return row

    for provider in EXPECTED_PLUGIN:
        profile(alice, provider, provider, key(alice, provider, provider), parameters={"temperature": 0.5})
    # OpenRouter through the generic OpenAI-compatible provider, with a key of its own: both move.
    profile(alice, "OPENAI_COMPATIBLE", "or-own", key(alice, "OPENAI_COMPATIBLE", "or-own"), OPENROUTER_URL)
    # ... on a subdomain, with a key shared with a real local OpenAI-compatible server: the key is copied.
    shared = key(bob, "OPENAI_COMPATIBLE", "shared")
    profile(bob, "OPENAI_COMPATIBLE", "or-shared", shared, "https://EU.OpenRouter.ai/api/v1/", is_default=True)
    profile(bob, "OPENAI_COMPATIBLE", "llama", shared, "http://127.0.0.1:8080/v1")
    # Look-alikes stay OpenAI-compatible.
    profile(bob, "OPENAI_COMPATIBLE", "lookalike", None, "https://openrouter.ai.example.com/v1")
    profile(bob, "OPENAI_COMPATIBLE", "suffix", None, "https://notopenrouter.ai/v1")
    # A value no plugin knows is kept, never dropped.
    profile(bob, "MISTRAL", "mistral", key(bob, "MISTRAL", "mistral"))
    imagen_key = key(alice, "GOOGLE_IMAGEN", "imagen")
    for provider in (*EXPECTED_PLUGIN, "GOOGLE_IMAGEN"):
        row = ImageProfile.objects.create(
            user=alice,
            provider=provider,
            name=f"img-{provider}",
            model="i",
            api_key=imagen_key if provider == "GOOGLE_IMAGEN" else None,
            parameters={"n": 1},
        )
        ids[f"image:{provider}"] = row.pk
    return ids


def snapshot(apps) -> dict[str, list[tuple]]:
    """Every row of the three tables, every column, as plain values."""
    tables = {}
    for name in ("ApiKey", "ConnectionProfile", "ImageProfile"):
        model = apps.get_model("providers", name)
        columns = sorted(f.attname for f in model._meta.concrete_fields)
        tables[name] = [tuple((c, repr(getattr(row, c))) for c in columns) for row in model.objects.order_by("pk")]
    return tables


def test_forwards_maps_every_legacy_value(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    ids = seed_legacy(old_state.apps)

    new_state = migrator.apply_tested_migration(LATEST)
    ApiKey = new_state.apps.get_model("providers", "ApiKey")
    ConnectionProfile = new_state.apps.get_model("providers", "ConnectionProfile")
    ImageProfile = new_state.apps.get_model("providers", "ImageProfile")
    assert "provider" not in {f.name for f in ConnectionProfile._meta.fields}

    for provider, plugin in EXPECTED_PLUGIN.items():
        profile = ConnectionProfile.objects.get(pk=ids[f"profile:{provider}"])
        assert (profile.plugin, profile.migrated_from, profile.parameters) == (plugin, None, {"temperature": 0.5})
        assert ApiKey.objects.get(pk=ids[f"key:{provider}"]).plugin == plugin
        assert ImageProfile.objects.get(pk=ids[f"image:{provider}"]).plugin == plugin
    imagen = ImageProfile.objects.get(pk=ids["image:GOOGLE_IMAGEN"])
    assert (imagen.plugin, imagen.migrated_from) == ("qtap-plugin-google", {"provider": "GOOGLE_IMAGEN"})
    imagen_key = ApiKey.objects.get(pk=ids["key:imagen"])
    assert (imagen_key.plugin, imagen_key.migrated_from) == ("qtap-plugin-google", {"provider": "GOOGLE_IMAGEN"})
    assert imagen.api_key_id == imagen_key.pk

    # OpenRouter behind OPENAI_COMPATIBLE: plugin switched, base URL cleared (and remembered), key moved.
    own = ConnectionProfile.objects.get(pk=ids["profile:or-own"])
    assert (own.plugin, own.base_url) == ("qtap-plugin-openrouter", "")
    assert own.migrated_from == {"provider": "OPENAI_COMPATIBLE", "base_url": OPENROUTER_URL}
    assert own.api_key_id == ids["key:or-own"]
    assert ApiKey.objects.get(pk=ids["key:or-own"]).plugin == "qtap-plugin-openrouter"

    # Shared key: the local profile keeps it; the OpenRouter profile gets a copy of the same secret.
    llama = ConnectionProfile.objects.get(pk=ids["profile:llama"])
    assert (llama.plugin, llama.base_url, llama.api_key_id) == (
        "qtap-plugin-openai-compatible",
        "http://127.0.0.1:8080/v1",
        ids["key:shared"],
    )
    moved = ConnectionProfile.objects.get(pk=ids["profile:or-shared"])
    copy = ApiKey.objects.get(pk=moved.api_key_id)
    assert (moved.plugin, moved.base_url, moved.is_default) == ("qtap-plugin-openrouter", "", True)
    assert moved.migrated_from["api_key"] == ids["key:shared"]
    assert copy.pk != ids["key:shared"] and copy.plugin == "qtap-plugin-openrouter"
    assert (copy.encrypted_secret, copy.user_id) == ("cipher-shared", moved.user_id)
    assert ApiKey.objects.get(pk=ids["key:shared"]).plugin == "qtap-plugin-openai-compatible"

    for name in ("lookalike", "suffix"):
        assert ConnectionProfile.objects.get(pk=ids[f"profile:{name}"]).plugin == "qtap-plugin-openai-compatible"

    mistral = ConnectionProfile.objects.get(pk=ids["profile:mistral"])
    assert (mistral.plugin, mistral.migrated_from) == ("MISTRAL", None)
    assert ApiKey.objects.get(pk=ids["key:mistral"]).plugin == "MISTRAL"


def test_unknown_value_shows_provider_unavailable(migrator):
    """After the migration the live model reports the kept-verbatim profile as unavailable."""
    old_state = migrator.apply_initial_migration(LEGACY)
    ids = seed_legacy(old_state.apps)
    migrator.apply_tested_migration(LATEST)
    migrator.reset()
    from providers.models import ConnectionProfile

    assert ConnectionProfile.objects.get(pk=ids["profile:mistral"]).status == "provider unavailable"
    assert ConnectionProfile.objects.get(pk=ids["profile:or-own"]).status == "ok"


def test_forwards_then_backwards_is_lossless(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    seed_legacy(old_state.apps)
    before = snapshot(old_state.apps)

    migrator.apply_tested_migration(LATEST)
    restored_state = migrator.apply_tested_migration(LEGACY)

    assert snapshot(restored_state.apps) == before


def test_backwards_from_the_data_migration_alone(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    seed_legacy(old_state.apps)
    before = snapshot(old_state.apps)
    migrator.apply_tested_migration(DATA)
    state = migrator.apply_tested_migration(("providers", "0002_plugin_reference"))
    after = {
        table: [tuple(item for item in row if item[0] not in ("plugin", "migrated_from")) for row in rows]
        for table, rows in snapshot(state.apps).items()
    }
    assert after == before
    assert all(dict(row)["plugin"] == "''" for rows in snapshot(state.apps).values() for row in rows)


def test_running_forwards_twice_changes_nothing(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    seed_legacy(old_state.apps)
    state = migrator.apply_tested_migration(DATA)
    once = snapshot(state.apps)
    with connection.schema_editor() as schema_editor:
        migration_0003.forwards(state.apps, schema_editor)
    assert snapshot(state.apps) == once


def test_rows_created_after_the_migration_reverse_to_legacy_names(migrator):
    """Keys and profiles made with plugin names (no migrated_from) get the matching legacy value back."""
    migrator.apply_initial_migration(LEGACY)
    state = migrator.apply_tested_migration(LATEST)
    User = state.apps.get_model("auth", "User")
    ApiKey = state.apps.get_model("providers", "ApiKey")
    ConnectionProfile = state.apps.get_model("providers", "ConnectionProfile")
    user = User.objects.create(username="new")
    key = ApiKey.objects.create(user=user, plugin="qtap-plugin-gab-ai", label="g", encrypted_secret="c")
    ConnectionProfile.objects.create(user=user, plugin="qtap-plugin-gab-ai", name="g", model="m", api_key=key)
    ConnectionProfile.objects.create(user=user, plugin="qtap-plugin-thirdparty", name="t", model="m")

    legacy = migrator.apply_tested_migration(LEGACY)
    Profile = legacy.apps.get_model("providers", "ConnectionProfile")
    assert dict(Profile.objects.values_list("name", "provider")) == {"g": "GAB_AI", "t": "qtap-plugin-thirdparty"}
    assert legacy.apps.get_model("providers", "ApiKey").objects.get().provider == "GAB_AI"


def seed_key_shared_with_an_image_profile(apps) -> dict[str, int]:
    """OpenRouter behind OPENAI_COMPATIBLE, whose key no other connection profile uses, but an image
    profile (OpenAI-compatible image generation) does."""
    User = apps.get_model("auth", "User")
    ApiKey = apps.get_model("providers", "ApiKey")
    ConnectionProfile = apps.get_model("providers", "ConnectionProfile")
    ImageProfile = apps.get_model("providers", "ImageProfile")
    carol = User.objects.create(username="carol")
    key = ApiKey.objects.create(
        user=carol, provider="OPENAI_COMPATIBLE", label="gateway", encrypted_secret="cipher-gateway", last4="eway"
    )
    chat = ConnectionProfile.objects.create(
        user=carol, provider="OPENAI_COMPATIBLE", name="or-chat", model="m", api_key=key, base_url=OPENROUTER_URL
    )
    image = ImageProfile.objects.create(
        user=carol, provider="OPENAI_COMPATIBLE", name="img-gateway", model="i", api_key=key, parameters={}
    )
    return {"key": key.pk, "chat": chat.pk, "image": image.pk}


def test_a_moved_key_an_image_profile_also_uses_is_copied_and_the_original_kept(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    ids = seed_key_shared_with_an_image_profile(old_state.apps)

    state = migrator.apply_tested_migration(LATEST)
    ApiKey = state.apps.get_model("providers", "ApiKey")
    chat = state.apps.get_model("providers", "ConnectionProfile").objects.get(pk=ids["chat"])
    image = state.apps.get_model("providers", "ImageProfile").objects.get(pk=ids["image"])

    # The chat profile moved to OpenRouter, on a copy of the key.
    assert (chat.plugin, chat.base_url) == ("qtap-plugin-openrouter", "")
    assert chat.api_key_id != ids["key"]
    assert chat.migrated_from == {"provider": "OPENAI_COMPATIBLE", "base_url": OPENROUTER_URL, "api_key": ids["key"]}
    copy = ApiKey.objects.get(pk=chat.api_key_id)
    assert (copy.plugin, copy.encrypted_secret, copy.last4, copy.label, copy.user_id) == (
        "qtap-plugin-openrouter",
        "cipher-gateway",
        "eway",
        "gateway",
        chat.user_id,
    )
    assert copy.migrated_from == {"copy_of": ids["key"], "provider": "OPENAI_COMPATIBLE"}

    # The image profile keeps the original, still an OpenAI-compatible key.
    original = ApiKey.objects.get(pk=ids["key"])
    assert image.api_key_id == original.pk
    assert (image.plugin, original.plugin) == ("qtap-plugin-openai-compatible", "qtap-plugin-openai-compatible")
    assert ApiKey.objects.count() == 2


def test_a_key_shared_with_an_image_profile_reverses_exactly(migrator):
    old_state = migrator.apply_initial_migration(LEGACY)
    seed_key_shared_with_an_image_profile(old_state.apps)
    before = snapshot(old_state.apps)
    migrator.apply_tested_migration(LATEST)
    assert snapshot(migrator.apply_tested_migration(LEGACY).apps) == before
