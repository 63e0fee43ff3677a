"""``manage.py plugins``: list, show, enable, disable; in-process and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from providers.manifest import parse_manifest
from providers.models import PluginState
from providers.plugin_state import plugin_is_enabled
from providers.registry import registry
from tests.host.conftest import BUNDLED_NAMES, TOOL_NAMES, manifest_data

pytestmark = pytest.mark.django_db

SPEC_KEYS = {
    "name", "title", "version", "provider", "display_name", "status", "error", "source", "capabilities",
    "attachment_mime_types", "requires_api_key", "requires_base_url", "base_url_default",
}  # fmt: skip
IMAGE_GENERATORS = {"qtap-plugin-openai", "qtap-plugin-google", "qtap-plugin-grok"}
TAKE_IMAGES = {"qtap-plugin-openai", "qtap-plugin-anthropic", "qtap-plugin-google", "qtap-plugin-grok"}


def run(*args: str) -> str:
    out = StringIO()
    call_command("plugins", *args, stdout=out)
    return out.getvalue()


def assert_bundled_capabilities(items: list[dict]) -> None:
    by_name = {item["name"]: item for item in items}
    assert sorted(by_name) == BUNDLED_NAMES
    assert by_name["qtap-plugin-web-fetch"]["tools"] == ["web_fetch"]
    assert by_name["qtap-plugin-mcp"]["tools"] == []  # its tools are each user's servers'
    for name in TOOL_NAMES:  # tool plugins are listed too: no provider, their tools named
        tool = by_name.pop(name)
        assert set(tool) >= SPEC_KEYS and tool["status"] == "loaded" and tool["source"] == "bundled", name
        assert tool["provider"] is None and isinstance(tool["tools"], list), name
        assert tool["capabilities"]["TOOL_PROVIDER"] is True and tool["capabilities"]["chat"] is False, name
    for name, item in by_name.items():
        assert set(item) >= SPEC_KEYS, name
        assert item["status"] == "loaded" and item["error"] is None and item["source"] == "bundled"
        assert set(item["capabilities"]) == {"chat", "imageGeneration", "embeddings", "webSearch"}
        assert item["capabilities"]["chat"] is True
        assert item["capabilities"]["imageGeneration"] is (name in IMAGE_GENERATORS), name
        if name in TAKE_IMAGES:
            assert {"image/png", "image/jpeg"} <= set(item["attachment_mime_types"]), name
    assert "application/pdf" in by_name["qtap-plugin-anthropic"]["attachment_mime_types"]
    assert by_name["qtap-plugin-openai-compatible"]["requires_base_url"] is True
    assert by_name["qtap-plugin-openai-compatible"]["attachment_mime_types"] == []
    assert by_name["qtap-plugin-ollama"]["requires_api_key"] is False
    assert by_name["qtap-plugin-openai"]["base_url_default"] == "https://api.openai.com/v1"
    assert by_name["qtap-plugin-gab-ai"]["provider"] == "GAB_AI"


def test_list_json_has_the_contract_shape():
    assert_bundled_capabilities(json.loads(run("list", "--json")))


def test_list_table():
    lines = run("list").splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "VERSION", "STATUS", "SOURCE", "CAPABILITIES"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == BUNDLED_NAMES
    assert rows["qtap-plugin-grok"].split()[1:5] == ["GROK", "1.0.0", "loaded", "bundled"]
    assert rows["qtap-plugin-grok"].endswith("chat, imageGeneration")


def test_list_by_capability():
    images = json.loads(run("list", "--json", "--capability", "imageGeneration"))
    assert {i["name"] for i in images} == IMAGE_GENERATORS
    assert json.loads(run("list", "--json", "--capability", "webSearch")) == []
    assert len(json.loads(run("list", "--json", "--capability", "LLM_PROVIDER"))) == 8
    assert {line.split()[0] for line in run("list", "--capability", "IMAGE_PROVIDER").splitlines()[1:]} == (
        IMAGE_GENERATORS
    )


def test_list_rejects_an_unknown_capability():
    with pytest.raises(CommandError, match="invalid choice: 'telepathy'"):
        run("list", "--capability", "telepathy")


def test_show_by_any_name():
    info = json.loads(run("show", "GOOGLE", "--json"))
    assert info["name"] == "qtap-plugin-google"
    assert info["legacy_names"] == ["GOOGLE_IMAGEN"]
    assert info["path"] == str(Path(settings.BASE_DIR, "plugins", "dist", "qtap-plugin-google"))
    assert json.loads(run("show", "GOOGLE_IMAGEN", "--json")) == info
    text = run("show", "qtap-plugin-google")
    assert "display_name           Google Gemini" in text
    assert "capabilities           chat=True, imageGeneration=True, embeddings=False, webSearch=False" in text


def test_disable_then_enable():
    assert run("disable", "OPENAI").strip() == "qtap-plugin-openai disabled."
    assert PluginState.objects.get(name="qtap-plugin-openai").enabled is False
    assert plugin_is_enabled("qtap-plugin-openai") is False
    listed = {i["name"]: i for i in json.loads(run("list", "--json"))}
    assert listed["qtap-plugin-openai"]["status"] == "disabled"
    assert listed["qtap-plugin-openai"]["enabled"] is False
    assert "disabled" in run("list").split("qtap-plugin-openai ")[1].splitlines()[0]
    assert run("enable", "qtap-plugin-openai").strip() == "qtap-plugin-openai enabled."
    assert json.loads(run("show", "openai", "--json"))["status"] == "loaded"


@pytest.mark.parametrize("action", ["show", "enable", "disable"])
def test_unknown_name_is_a_one_line_error_listing_the_plugins(action):
    with pytest.raises(CommandError) as info:
        run(action, "qtap-plugin-nope")
    message = str(info.value)
    assert message.startswith("Unknown plugin 'qtap-plugin-nope'. Available plugins: qtap-plugin-anthropic, ")
    assert all(name in message for name in BUNDLED_NAMES)
    assert "\n" not in message
    assert PluginState.objects.count() == 0


def test_failed_plugins_are_listed_with_their_reason():
    broken = parse_manifest(manifest_data("qtap-plugin-broken", "BROKEN"))
    with registry.temporarily():
        registry.record_failure("qtap-plugin-broken", "qtap-plugin-broken: import failed: boom", source="local",
                                manifest=broken)  # fmt: skip
        registry.record_failure("odd-folder", "odd-folder/manifest.json: malformed JSON", source="local")
        items = {i["name"]: i for i in json.loads(run("list", "--json"))}
        table = run("list")
        shown = json.loads(run("show", "odd-folder", "--json"))
        with pytest.raises(CommandError, match=r"failed to load and cannot be changed: .*import failed: boom"):
            run("enable", "qtap-plugin-broken")
    assert len(items) == len(BUNDLED_NAMES) + 2
    failed = items["qtap-plugin-broken"]
    assert (failed["status"], failed["error"], failed["source"]) == (
        "failed",
        "qtap-plugin-broken: import failed: boom",
        "local",
    )
    assert failed["provider"] == "BROKEN" and set(failed) >= SPEC_KEYS
    assert shown["status"] == "failed" and shown["title"] is None and shown["capabilities"]["chat"] is False
    assert "    error: odd-folder/manifest.json: malformed JSON" in table.splitlines()
    assert "    error: qtap-plugin-broken: import failed: boom" in table.splitlines()


def manage(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@pytest.fixture
def site_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "QTAP_"))}
    env["QTAP_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_subprocess_list_json_shows_the_eight_bundled_plugins(site_env):
    # migrate runs the database checks (W002) before any table exists: they must cope
    manage("migrate", "--no-input", "-v", "0", env=site_env)
    result = manage("plugins", "list", "--json", env=site_env)
    assert_bundled_capabilities(json.loads(result.stdout))

    failed = manage("plugins", "show", "NOPE", env=site_env, check=False)
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines() == [
        "CommandError: Unknown plugin 'NOPE'. Available plugins: " + ", ".join(BUNDLED_NAMES)
    ]


# Before `migrate` (or with no database at all): tests/host/test_commands_unmigrated.py.
