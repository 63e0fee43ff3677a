"""Presets: the library pages (scoped to their owner, POST + CSRF), the starter presets from data, a chat
started from a preset, and the chat page's system prompt form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from providers.services import api_key_create, connection_profile_create
from qtap_site.chat.models import Chat
from qtap_site.chat.services import chat_create
from qtap_site.presets import services
from qtap_site.presets.models import Preset

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile(user: Any) -> Any:
    key = api_key_create(user=user, plugin="qtap-plugin-openai", label="k", secret="sk-test-not-a-real-key-preset-")
    return connection_profile_create(
        user=user, name="GPT", plugin="qtap-plugin-openai", model="gpt-4o-mini", api_key=key, is_default=True
    )


@pytest.fixture
def alice(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mallory(other_user: Any) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


def test_starter_presets_are_data_and_added_once(user: Any) -> None:
    rows = json.loads(services.STARTERS.read_text())
    assert len(rows) >= 3 and all(row["name"] and row["text"] for row in rows)
    assert services.add_starter_presets(user=user) == len(rows)
    assert services.add_starter_presets(user=user) == 0
    assert sorted(Preset.objects.filter(user=user).values_list("name", flat=True)) == sorted(r["name"] for r in rows)


def test_names_are_unique_per_user_with_words_that_say_so(user: Any, other_user: Any) -> None:
    services.preset_create(user=user, name="Terse", text="Be brief.")
    services.preset_create(user=other_user, name="Terse", text="Be brief.")  # another user's library
    with pytest.raises(ValidationError) as exc:
        services.preset_create(user=user, name=" Terse ", text="Again.")
    assert "already have a preset named 'Terse'" in str(exc.value)


def test_a_preset_cannot_name_another_users_profile(other_user: Any, profile: Any) -> None:
    with pytest.raises(ValidationError):
        services.preset_create(user=other_user, name="Mine", text="x", profile=profile)


def test_list_create_edit_delete(alice: Client, user: Any, profile: Any) -> None:
    assert alice.get("/settings/presets/").status_code == 200
    created = alice.post("/settings/presets/", {"name": "Pirate", "text": "Arr.", "profile": profile.pk})
    assert created.status_code == 302
    preset = Preset.objects.get(user=user, name="Pirate")
    assert preset.profile == profile
    page = alice.get(f"/settings/presets/edit/?id={preset.pk}")
    assert page.status_code == 200 and "Arr." in page.content.decode()
    alice.post("/settings/presets/edit/", {"id": preset.pk, "name": "Pirate", "text": "Arr!", "profile": ""})
    preset.refresh_from_db()
    assert (preset.text, preset.profile) == ("Arr!", None)
    duplicate = alice.post("/settings/presets/", {"name": "Pirate", "text": "again"})
    assert duplicate.status_code == 400 and "already have a preset" in duplicate.content.decode()
    assert alice.post("/settings/presets/delete/", {"id": preset.pk}).status_code == 302
    assert not Preset.objects.filter(pk=preset.pk).exists()


def test_another_users_preset_and_profile_are_out_of_reach(mallory: Client, user: Any, profile: Any) -> None:
    preset = services.preset_create(user=user, name="Secret plan", text="Alice's words.")
    assert mallory.get(f"/settings/presets/edit/?id={preset.pk}").status_code == 404
    assert mallory.post("/settings/presets/edit/", {"id": preset.pk, "name": "x", "text": "y"}).status_code == 404
    assert mallory.post("/settings/presets/delete/", {"id": preset.pk}).status_code == 404
    listing = mallory.get("/settings/presets/").content.decode()
    assert "Secret plan" not in listing and "GPT" not in listing
    refused = mallory.post("/settings/presets/", {"name": "Mine", "text": "x", "profile": profile.pk})
    assert refused.status_code == 400 and not Preset.objects.filter(name="Mine").exists()
    preset.refresh_from_db()
    assert preset.text == "Alice's words."


def test_writes_need_post_and_csrf(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/settings/presets/starters/").status_code == 403
    assert client.get("/settings/presets/starters/").status_code == 405
    assert client.get("/settings/presets/delete/").status_code == 405
    assert not Preset.objects.exists()


def test_a_chat_started_from_a_preset_takes_its_text_and_profile(alice: Client, user: Any, profile: Any) -> None:
    other = connection_profile_create(user=user, name="Other", plugin="qtap-plugin-ollama", model="llama3")
    preset = services.preset_create(user=user, name="Pirate", text="Answer like a pirate.", profile=other)
    page = alice.get(f"/chats/new/?preset={preset.pk}").content.decode()
    assert "Answer like a pirate." in page and f'data-new-url="/chats/new/?preset={preset.pk}"' in page
    made = alice.post(f"/chats/new/?preset={preset.pk}", {}, headers={"Accept": "application/json"})
    assert made.status_code == 201
    chat = Chat.objects.get(pk=made.json()["id"])
    assert (chat.system_prompt, chat.profile) == ("Answer like a pirate.", other)
    plain = alice.post("/chats/new/", {}, headers={"Accept": "application/json"})
    assert Chat.objects.get(pk=plain.json()["id"]).system_prompt == ""


def test_another_users_preset_id_starts_a_plain_chat(mallory: Client, user: Any, other_user: Any) -> None:
    preset = services.preset_create(user=user, name="Secret plan", text="Alice's words.")
    assert "Alice's words." not in mallory.get(f"/chats/new/?preset={preset.pk}").content.decode()
    made = mallory.post(f"/chats/new/?preset={preset.pk}", {}, headers={"Accept": "application/json"})
    assert Chat.objects.get(pk=made.json()["id"]).system_prompt == ""


def test_system_prompt_form(alice: Client, mallory: Client, user: Any, profile: Any) -> None:
    chat = chat_create(user=user, title="Plans")
    assert alice.post(f"/chats/{chat.pk}/system-prompt/", {"system_prompt": "  Be careful.  "}).status_code == 302
    chat.refresh_from_db()
    assert chat.system_prompt == "Be careful."
    assert "Be careful." in alice.get(f"/chats/{chat.pk}/").content.decode()
    preset = services.preset_create(user=user, name="Terse", text="Five words.", profile=profile)
    alice.post(f"/chats/{chat.pk}/system-prompt/", {"system_prompt": "ignored", "preset": preset.pk})
    chat.refresh_from_db()
    assert (chat.system_prompt, chat.profile) == ("Five words.", profile)
    too_long = alice.post(f"/chats/{chat.pk}/system-prompt/", {"system_prompt": "x" * 20_001}, follow=True)
    assert "at most 20000 characters" in too_long.content.decode()
    assert alice.get(f"/chats/{chat.pk}/system-prompt/").status_code == 405
    assert mallory.post(f"/chats/{chat.pk}/system-prompt/", {"system_prompt": "pwned"}).status_code == 404
    chat.refresh_from_db()
    assert chat.system_prompt == "Five words."
