"""A user's tool settings: validated against the plugin's configSchema (and, for MCP, its servers), secrets
encrypted one by one and write-only, read back as each enabled tool plugin's ToolContext, per user."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError

from providers.contract import ProviderPlugin, ToolContext, ToolProvider, ToolResult, ToolSpec
from providers.manifest import parse_manifest
from providers.models import PluginState, ToolSettings
from providers.plugin_state import plugin_set_enabled
from providers.registry import registry
from providers.services import tool_settings_update
from providers.tool_settings import tool_contexts, tool_plugins
from tests.fakes.server import FakeProvider, Receive, RecordedRequest, Send, respond

pytestmark = pytest.mark.django_db

NOTES = "qtap-plugin-notes"
MCP = "qtap-plugin-mcp"
FAKE_TOKEN = "fake-notes-token-0000"
FAKE_HEADER = "Bearer fake-mcp-header-1111"


class NotesTools:
    async def list_tools(self, context: ToolContext) -> list[ToolSpec]:
        return [ToolSpec("note", "Write a note")]

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult("noted")


class FakeMcpTools:
    """Lists the tools of each server in its context: POST {"method": "tools/list"} with the server's headers."""

    async def list_tools(self, context: ToolContext) -> list[ToolSpec]:
        specs = []
        async with httpx.AsyncClient(timeout=5) as client:
            for server in context.settings["servers"]:
                answer = await client.post(server["url"], json={"method": "tools/list"}, headers=server["headers"])
                answer.raise_for_status()
                specs += [ToolSpec(t["name"], t["description"]) for t in answer.json()["tools"]]
        return specs

    async def call(self, name: str, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult("not used here", is_error=True)


class FakeToolPlugin(ProviderPlugin):
    def __init__(self, provider: ToolProvider) -> None:
        self.provider = provider

    def create_tool_provider(self) -> ToolProvider:
        return self.provider


def notes_plugin(*, enabled_by_default: bool = True) -> FakeToolPlugin:
    plugin = FakeToolPlugin(NotesTools())
    plugin.manifest = parse_manifest(
        {
            "name": NOTES,
            "title": "Notes",
            "version": "1.0.0",
            "capabilities": ["TOOL_PROVIDER"],
            "enabledByDefault": enabled_by_default,
            "toolConfig": {
                "tools": [{"name": "note", "displayName": "Note", "description": "Writes a note"}],
                "configSchema": [
                    {"key": "title", "label": "Title", "type": "text", "required": True},
                    {"key": "token", "label": "Token", "type": "secret"},
                    {"key": "max_bytes", "label": "Max bytes", "type": "number", "default": 1000},
                    {"key": "verbose", "label": "Verbose", "type": "boolean", "default": False},
                    {"key": "endpoint", "label": "Endpoint", "type": "url"},
                    {"key": "allowlist", "label": "Allowlist", "type": "list", "default": ["example.org"]},
                ],
            },
        }
    )
    return plugin


def mcp_plugin() -> FakeToolPlugin:
    plugin = FakeToolPlugin(FakeMcpTools())
    plugin.manifest = parse_manifest(
        {
            "name": MCP,
            "title": "MCP servers",
            "version": "1.0.0",
            "capabilities": ["TOOL_PROVIDER"],
            "toolConfig": {"dynamicTools": True, "needsApproval": True},
        }
    )
    return plugin


class FakeMcpServer(FakeProvider):
    """Answers any POST with its tools (one description carries markup a page must escape)."""

    async def handle(self, request: RecordedRequest, send: Send, receive: Receive) -> None:
        tools = [
            {"name": "search_issues", "description": "Search the issues <script>alert(1)</script>"},
            {"name": "read_file", "description": "Read a file"},
        ]
        await respond(send, 200, {"tools": tools})


@contextmanager
def registered_tool_fakes() -> Iterator[None]:
    """The notes plugin and a fake MCP plugin registered (the bundled MCP plugin set aside meanwhile)."""
    with registry.temporarily() as reg:
        if reg.find(MCP) is not None:
            reg.unregister(MCP)
        reg.register(notes_plugin(), source="local")
        reg.register(mcp_plugin(), source="local")
        yield


@pytest.fixture
def tool_fakes() -> Iterator[None]:
    with registered_tool_fakes():
        yield


@pytest.fixture
def mcp_server() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server  # type: ignore[misc]


def save_notes(user: Any, **values: Any) -> ToolSettings:
    return tool_settings_update(user=user, plugin=NOTES, values={"title": "Mine", **values})


def messages_of(excinfo: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(excinfo.value.messages)


# ---- the configSchema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"max_bytes": "lots"}, "Max bytes must be a number"),
        ({"max_bytes": True}, "Max bytes must be a number"),
        ({"verbose": "yes"}, "Verbose must be true or false"),
        ({"allowlist": "example.org"}, "Allowlist must be a list of text items"),
        ({"title": 12}, "Title must be text"),
        ({"title": ""}, "Title is required"),
        ({"colour": "red"}, "Unknown setting 'colour' for qtap-plugin-notes"),
        ({"endpoint": "http://169.254.169.254/latest"}, "Endpoint: 169.254.169.254 is a cloud metadata endpoint"),
        ({"endpoint": "ftp://example.org/"}, "must start with http:// or https://"),
    ],
)
def test_values_are_checked_against_the_schema(tool_fakes: None, user: Any, values: dict, words: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        save_notes(user, **values)
    assert words in messages_of(excinfo)
    assert not ToolSettings.objects.exists()


def test_a_required_value_must_be_given_on_the_first_save(tool_fakes: None, user: Any) -> None:
    with pytest.raises(ValidationError, match="Title is required"):
        tool_settings_update(user=user, plugin=NOTES, values={"max_bytes": 5})


def test_only_a_tool_plugin_takes_tool_settings(tool_fakes: None, user: Any) -> None:
    for name in ("qtap-plugin-openai", "qtap-plugin-nothing"):
        with pytest.raises(ValidationError, match="is not a tool plugin"):
            tool_settings_update(user=user, plugin=name, values={})


def test_values_are_saved_normalised_and_a_left_out_key_keeps_its_value(tool_fakes: None, user: Any) -> None:
    row = save_notes(
        user, max_bytes=2048, verbose=True, allowlist=[" a.example ", ""], endpoint=" http://127.0.0.1:9/ "
    )
    assert row.values == {
        "title": "Mine",
        "max_bytes": 2048,
        "verbose": True,
        "allowlist": ["a.example"],
        "endpoint": "http://127.0.0.1:9/",
    }
    again = tool_settings_update(user=user, plugin=NOTES, values={"verbose": False, "endpoint": None})
    assert again.pk == row.pk and again.values == {
        "title": "Mine",
        "max_bytes": 2048,
        "verbose": False,
        "allowlist": ["a.example"],
    }


def test_a_secret_is_encrypted_write_only_and_kept_when_blank(tool_fakes: None, user: Any) -> None:
    row = save_notes(user, token=FAKE_TOKEN)
    stored = ToolSettings.objects.get(pk=row.pk)
    assert FAKE_TOKEN not in str(stored.values) and FAKE_TOKEN not in str(stored.encrypted_secrets)
    assert stored.secret("token") == FAKE_TOKEN and "token" not in stored.values
    token = stored.encrypted_secrets["token"]
    for blank in ("", None):
        save_notes(user, token=blank)
        assert ToolSettings.objects.get(pk=row.pk).encrypted_secrets["token"] == token  # not even re-encrypted
    save_notes(user)  # left out
    assert ToolSettings.objects.get(pk=row.pk).secret("token") == FAKE_TOKEN
    save_notes(user, token="fake-notes-token-2222")
    assert ToolSettings.objects.get(pk=row.pk).secret("token") == "fake-notes-token-2222"


# ---- MCP servers ---------------------------------------------------------------------------------


def save_servers(user: Any, *servers: dict[str, Any]) -> ToolSettings:
    return tool_settings_update(user=user, plugin=MCP, values={"servers": list(servers)})


@pytest.mark.parametrize(
    ("server", "words"),
    [
        ({"name": "has space", "url": "http://127.0.0.1:9/"}, "a name is 1 to 24 letters"),
        ({"name": "x" * 25, "url": "http://127.0.0.1:9/"}, "a name is 1 to 24 letters"),
        ({"name": "", "url": "http://127.0.0.1:9/"}, "a name is 1 to 24 letters"),
        ({"name": "meta", "url": "http://169.254.169.254/mcp"}, "Server 'meta': 169.254.169.254 is a cloud metadata"),
        ({"name": "nourl"}, "Server 'nourl' needs a URL"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "headers": {"Bad Name": "x"}}, "is not a header you can set"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "headers": {"Host": "evil"}}, "is not a header you can set"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "headers": {"X-Token": "a\r\nb"}}, "without line breaks"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "headers": {"X-Token": ""}}, "has no value"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "needs_approval": "no"}, "needs_approval must be true or false"),
        ({"name": "h", "url": "http://127.0.0.1:9/", "token": "x"}, "unknown key 'token'"),
    ],
)
def test_servers_are_checked(tool_fakes: None, user: Any, server: dict, words: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        save_servers(user, server)
    assert words in messages_of(excinfo)


def test_server_names_are_unique_per_user(tool_fakes: None, user: Any, other_user: Any) -> None:
    with pytest.raises(ValidationError, match="already a server named 'Github'"):
        save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/"}, {"name": "Github", "url": "http://x/"})
    save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/"})
    save_servers(other_user, {"name": "github", "url": "http://127.0.0.1:8/"})  # another user's own name


def test_server_headers_are_secrets_kept_when_blank_and_across_a_rename(tool_fakes: None, user: Any) -> None:
    row = save_servers(
        user, {"name": "github", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": FAKE_HEADER}}
    )
    assert row.values == {
        "servers": [
            {"name": "github", "url": "http://127.0.0.1:9/mcp", "headers": ["Authorization"], "needs_approval": True}
        ]
    }
    assert FAKE_HEADER not in str(ToolSettings.objects.get(pk=row.pk).encrypted_secrets)
    save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": ""}})
    assert ToolSettings.objects.get(pk=row.pk).secret("servers/github/Authorization") == FAKE_HEADER
    save_servers(
        user,
        {"name": "gh", "previous_name": "github", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": ""}},
    )
    renamed = ToolSettings.objects.get(pk=row.pk)
    assert set(renamed.encrypted_secrets) == {"servers/gh/Authorization"}
    assert renamed.secret("servers/gh/Authorization") == FAKE_HEADER
    save_servers(user, {"name": "gh", "url": "http://127.0.0.1:9/mcp", "needs_approval": False})  # header removed
    assert ToolSettings.objects.get(pk=row.pk).encrypted_secrets == {}


# ---- what the tool loop is handed ------------------------------------------------------------------


def test_tool_contexts_merge_defaults_decrypt_secrets_and_stay_per_user(
    tool_fakes: None, user: Any, other_user: Any
) -> None:
    save_notes(user, token=FAKE_TOKEN, verbose=True)
    save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": FAKE_HEADER}})
    alice = tool_contexts(user.pk)
    assert alice[NOTES] == ToolContext(
        user_id=user.pk,
        settings={
            "title": "Mine",
            "token": FAKE_TOKEN,
            "max_bytes": 1000,
            "verbose": True,
            "allowlist": ["example.org"],
        },
    )
    assert alice[MCP].settings["servers"] == [
        {
            "name": "github",
            "url": "http://127.0.0.1:9/mcp",
            "headers": {"Authorization": FAKE_HEADER},
            "needs_approval": True,
        }
    ]
    bob = tool_contexts(other_user.pk)
    assert bob[NOTES].settings == {"max_bytes": 1000, "verbose": False, "allowlist": ["example.org"]}
    assert bob[MCP].settings == {"servers": []} and bob[MCP].user_id == other_user.pk
    assert FAKE_TOKEN not in str(bob) and FAKE_HEADER not in str(bob)


def test_a_disabled_tool_plugin_is_absent(tool_fakes: None, user: Any) -> None:
    assert {NOTES, MCP} <= set(tool_contexts(user.pk))
    plugin_set_enabled(name=NOTES, enabled=False)
    assert NOTES not in tool_contexts(user.pk) and NOTES not in [p.manifest.name for p in tool_plugins()]
    assert MCP in tool_contexts(user.pk)
    assert all(p.manifest.is_tool_provider for p in tool_plugins())  # never a chat provider


def test_a_plugin_off_by_default_is_absent_until_enabled(user: Any) -> None:
    with registry.temporarily(notes_plugin(enabled_by_default=False)):
        assert NOTES not in tool_contexts(user.pk)
        PluginState.objects.create(name=NOTES, enabled=True)
        assert NOTES in tool_contexts(user.pk)


def test_a_secret_no_key_opens_is_left_out_with_a_warning(
    tool_fakes: None, user: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    save_notes(user, token=FAKE_TOKEN)
    save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/", "headers": {"Authorization": FAKE_HEADER}})
    stored = ToolSettings.objects.get(user=user, plugin=NOTES).encrypted_secrets["token"]
    settings.QTAP_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is gone
    with caplog.at_level(logging.WARNING, logger="qtap.providers"):
        contexts = tool_contexts(user.pk)
    assert "token" not in contexts[NOTES].settings and contexts[NOTES].settings["title"] == "Mine"
    assert contexts[MCP].settings["servers"][0]["headers"] == {}
    assert "cannot be decrypted" in caplog.text and stored not in caplog.text and stored not in str(contexts)


def test_tool_contexts_cost_two_queries(tool_fakes: None, user: Any, django_assert_num_queries: Any) -> None:
    save_notes(user, token=FAKE_TOKEN)
    with django_assert_num_queries(2):
        tool_contexts(user.pk)


def test_rotate_api_keys_re_encrypts_tool_secrets_too(
    tool_fakes: None, user: Any, settings: Any, encryption_key: str
) -> None:
    from io import StringIO

    from django.core.management import call_command

    row = save_notes(user, token=FAKE_TOKEN)
    save_servers(user, {"name": "github", "url": "http://127.0.0.1:9/", "headers": {"Authorization": FAKE_HEADER}})
    newest = Fernet.generate_key().decode()
    settings.QTAP_ENCRYPTION_KEYS = [newest, encryption_key]
    out = StringIO()
    call_command("rotate_api_keys", stdout=out)
    assert "Re-encrypted the secrets of 2 tool settings row(s)." in out.getvalue()
    settings.QTAP_ENCRYPTION_KEYS = [newest]  # the old key dropped
    assert ToolSettings.objects.get(pk=row.pk).secret("token") == FAKE_TOKEN
    assert tool_contexts(user.pk)[MCP].settings["servers"][0]["headers"] == {"Authorization": FAKE_HEADER}
