"""Presets and the system prompt in Chromium: the preset library at /settings/presets/ (starter presets in one
click, create, edit, delete), a chat started from a preset (its text goes to the provider as the system
prompt), and the chat page's system prompt form (typed, or "Use preset…").

Screenshots of every step land in test-results/ui/<test>/.
"""

from __future__ import annotations

from typing import Any

import pytest

from qtap_site.chat.models import Chat
from qtap_site.presets.models import Preset
from tests.fakes.openai_dialect import FakeOpenAI
from tests.support.data import ChatSetup, chat_setup
from tests.ui.live import Shots, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TIMEOUT = 15_000  # ms


@pytest.fixture
def setup(alice: Any, fake: FakeOpenAI) -> ChatSetup:
    return chat_setup(alice, fake.base_url, title="Planning")


def test_preset_library_and_a_chat_started_from_a_preset(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    sign_in(page, qtap_server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Presets").click()
    page.wait_for_url(qtap_server.url("/settings/presets/"))
    page.get_by_role("button", name="Add the starter presets").click()
    page.locator(".preset-list li").first.wait_for(timeout=TIMEOUT)
    starters = Preset.objects.filter(user=setup.user).count()
    assert starters >= 3
    shot("starters")

    page.get_by_label("Name").fill("Pirate")
    page.get_by_label("Text").fill("Answer like a pirate.")
    page.get_by_label("Profile").select_option(label=setup.profile.name)
    page.get_by_role("button", name="Save preset").click()
    page.locator(".preset-list").get_by_role("heading", name="Pirate").wait_for(timeout=TIMEOUT)
    pirate = Preset.objects.get(user=setup.user, name="Pirate")
    assert pirate.profile_id == setup.profile.pk

    page.locator(f"#preset-{pirate.pk}").get_by_role("link", name="Edit").click()
    page.get_by_label("Text").fill("Answer like a pirate, in one sentence.")
    page.get_by_role("button", name="Save preset").click()
    page.wait_for_url(qtap_server.url("/settings/presets/"))
    pirate.refresh_from_db()
    assert pirate.text == "Answer like a pirate, in one sentence."
    victim = Preset.objects.filter(user=setup.user).exclude(pk=pirate.pk).first()
    assert victim is not None
    page.locator(f"#preset-{victim.pk}").get_by_role("button", name="Delete").click()
    page.locator(f"#preset-{victim.pk}").wait_for(state="detached", timeout=TIMEOUT)
    assert not Preset.objects.filter(pk=victim.pk).exists()
    shot("edited")

    # A chat started from the preset: its text is the chat's system prompt, sent first to the provider.
    fake.reply(["Arr, ", "matey."])
    page.locator(f"#preset-{pirate.pk}").get_by_role("link", name="Start a chat").click()
    page.wait_for_url("**/chats/new/?preset=*")
    page.locator("#system-prompt summary").get_by_text("pirate").wait_for(timeout=TIMEOUT)
    shot("new-chat-with-preset")
    page.locator("#prompt").fill("Where is the treasure?")
    page.locator("#prompt").press("Enter")
    page.locator("#messages .msg-assistant").last.get_by_text("Arr, matey.").wait_for(timeout=TIMEOUT)
    chat = Chat.objects.filter(user=setup.user).exclude(pk=setup.chat.pk).get()
    assert chat.system_prompt == pirate.text and chat.profile_id == setup.profile.pk
    sent = fake.chat_requests[-1].json["messages"]
    assert sent[0] == {"role": "system", "content": pirate.text}
    shot("replied")


def test_system_prompt_form_on_the_chat_page(
    qtap_server: Any, browser_page: Any, setup: ChatSetup, fake: FakeOpenAI, request: Any
) -> None:
    page, shot = browser_page, Shots(browser_page, request.node.name)
    preset = Preset.objects.create(user=setup.user, name="Terse", text="Answer in five words or fewer.")
    sign_in(page, qtap_server)
    page.goto(qtap_server.url(f"/chats/{setup.chat.pk}/"))
    box = page.locator("#system-prompt")
    box.locator("summary").click()
    box.get_by_label("System prompt").fill("You are a careful planner.")
    shot("typed")
    box.get_by_role("button", name="Save system prompt").click()
    page.locator("#system-prompt summary").get_by_text("careful planner").wait_for(timeout=TIMEOUT)
    setup.chat.refresh_from_db()
    assert setup.chat.system_prompt == "You are a careful planner."
    shot("saved")

    page.locator("#system-prompt summary").click()
    page.locator("#system-prompt").get_by_label("Use preset…").select_option(label="Terse")
    page.locator("#system-prompt").get_by_role("button", name="Save system prompt").click()
    page.locator("#system-prompt summary").get_by_text("five words").wait_for(timeout=TIMEOUT)
    setup.chat.refresh_from_db()
    assert setup.chat.system_prompt == preset.text
    fake.reply(["Noted."])
    page.wait_for_function("() => document.getElementById('conn-status').textContent === 'Connected'")
    page.locator("#prompt").fill("Plan my week")
    page.locator("#prompt").press("Enter")
    page.locator("#messages .msg-assistant").last.get_by_text("Noted.").wait_for(timeout=TIMEOUT)
    assert fake.chat_requests[-1].json["messages"][0] == {"role": "system", "content": preset.text}
    shot("used")
