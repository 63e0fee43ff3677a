"""System checks of the plugin host, run the way Django runs them (run_checks)."""

from __future__ import annotations

import pytest
from django.core.checks import Tags, run_checks
from django.test import override_settings

from providers.models import ConnectionProfile, ImageProfile
from providers.registry import registry


def ids(messages, prefix="providers."):
    return [m.id for m in messages if m.id and m.id.startswith(prefix)]


def test_no_plugin_warnings_when_everything_loads():
    assert ids(run_checks()) == []


def test_w001_one_warning_per_failed_plugin():
    with registry.temporarily():
        registry.record_failure("qtap-plugin-one", "qtap-plugin-one: import failed: RuntimeError: boom")
        registry.record_failure("qtap-plugin-two", "manifest.json: unknown key 'colour'")
        messages = [m for m in run_checks() if m.id == "providers.W001"]
    assert [m.obj for m in messages] == ["qtap-plugin-one", "qtap-plugin-two"]
    assert (
        messages[0].msg == "Plugin qtap-plugin-one failed to load: qtap-plugin-one: import failed: RuntimeError: boom"
    )
    assert "unknown key 'colour'" in messages[1].msg
    assert all("\n" not in m.msg for m in messages)
    assert "manage.py plugins show" in messages[0].hint


@override_settings(QTAP_ENCRYPTION_KEYS=["not-a-fernet-key"])
def test_e001_bad_encryption_keys():
    [message] = [m for m in run_checks(tags=[Tags.security]) if m.id == "providers.E001"]
    assert "QTAP_ENCRYPTION_KEYS is invalid" in message.msg
    assert "Fernet.generate_key()" in message.hint


@pytest.mark.django_db
def test_w002_profiles_referencing_missing_plugins(user):
    ConnectionProfile.objects.create(user=user, name="ok", plugin="qtap-plugin-openai", model="gpt-4o-mini")
    ConnectionProfile.objects.create(user=user, name="gone 1", plugin="qtap-plugin-gone", model="m")
    ConnectionProfile.objects.create(user=user, name="gone 2", plugin="qtap-plugin-gone", model="m")
    ImageProfile.objects.create(user=user, name="legacy", plugin="SOME_OLD_PROVIDER", model="m")
    ImageProfile.objects.create(user=user, name="ok", plugin="qtap-plugin-google", model="imagen-4")

    # A database check: it runs only when databases are asked for.
    assert "providers.W002" not in ids(run_checks())

    messages = [m for m in run_checks(databases=["default"]) if m.id == "providers.W002"]
    assert sorted(m.msg for m in messages) == [
        "1 image profile on database 'default' references plugin 'SOME_OLD_PROVIDER', which is not loaded",
        "2 connection profiles on database 'default' reference plugin 'qtap-plugin-gone', which is not loaded",
    ]
    assert {m.obj for m in messages} == {"qtap-plugin-gone", "SOME_OLD_PROVIDER"}
    assert all("provider unavailable" in m.hint for m in messages)


@pytest.mark.django_db
def test_w002_follows_the_registry(user):
    ConnectionProfile.objects.create(user=user, name="grok", plugin="qtap-plugin-grok", model="grok-4")
    assert ids(run_checks(databases=["default"])) == []
    with registry.temporarily():
        registry.unregister("qtap-plugin-grok")
        [message] = [m for m in run_checks(databases=["default"]) if m.id == "providers.W002"]
    assert "'qtap-plugin-grok'" in message.msg
    assert ids(run_checks(databases=["default"])) == []
