"""The Tools settings page through Django's test client (CSRF enforced): it renders each enabled tool
plugin, saves through the service, never shows a secret or another user's data, and its Test button lists
a local server's tools (escaped) with the user's headers sent to that server only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from providers.models import ToolSettings
from providers.plugin_state import plugin_set_enabled
from providers.services import api_key_create, connection_profile_create, tool_settings_update
from tests.providers.test_tool_settings import (
    FAKE_HEADER,
    FAKE_TOKEN,
    MCP,
    NOTES,
    FakeMcpServer,
    registered_tool_fakes,
)
from tests.ui.conftest import CsrfClient

pytestmark = pytest.mark.django_db

TOOLS = "/settings/tools/"


@pytest.fixture
def tool_fakes() -> Iterator[None]:
    with registered_tool_fakes():
        yield


@pytest.fixture
def mcp_server() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def alice(user: Any) -> CsrfClient:
    client = CsrfClient()
    client.force_login(user)
    return client


@pytest.fixture
def bob(other_user: Any) -> CsrfClient:
    client = CsrfClient()
    client.force_login(other_user)
    return client


def alice_user(client: CsrfClient) -> Any:
    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def post(client: CsrfClient, path: str, data: dict[str, Any], **extra: Any) -> Any:
    return client.post(path, {**data, "csrfmiddlewaretoken": client.csrf(TOOLS)}, **extra)


def page(client: CsrfClient) -> str:
    response = client.get(TOOLS)
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_lists_each_enabled_tool_plugin_its_tools_and_its_form(tool_fakes: None, alice: CsrfClient) -> None:
    body = page(alice)
    assert "Notes" in body and "Writes a note" in body and "<code>note</code>" in body
    assert 'name="token" type="password"' in body or ('type="password"' in body and 'name="token"' in body)
    assert "MCP servers" in body and "No servers yet." in body
    assert 'href="/settings/tools/"' in body  # linked from the navigation
    plugin_set_enabled(name=NOTES, enabled=False)
    assert "Writes a note" not in page(alice)


def test_saving_goes_through_the_service_with_csrf(tool_fakes: None, alice: CsrfClient, user: Any) -> None:
    data = {"title": "Mine", "token": FAKE_TOKEN, "max_bytes": "2048", "verbose": "on", "allowlist": "a.example\n\n"}
    assert alice.post(f"{TOOLS}{NOTES}/", data).status_code == 403  # no CSRF token
    assert alice.get(f"{TOOLS}{NOTES}/", data).status_code == 405  # a GET changes nothing
    assert not ToolSettings.objects.exists()
    response = post(alice, f"{TOOLS}{NOTES}/", data, follow=True)
    assert response.status_code == 200 and "Notes settings saved." in response.content.decode()
    row = ToolSettings.objects.get(user=user, plugin=NOTES)
    assert row.values == {"title": "Mine", "max_bytes": 2048, "verbose": True, "allowlist": ["a.example"]}
    assert row.secret("token") == FAKE_TOKEN
    body = page(alice)
    assert FAKE_TOKEN not in body and row.encrypted_secrets["token"] not in body
    assert "Stored (set)" in body and 'value="2048"' in body
    # A blank secret keeps the stored one.
    post(alice, f"{TOOLS}{NOTES}/", {**data, "token": ""})
    assert ToolSettings.objects.get(pk=row.pk).secret("token") == FAKE_TOKEN


def test_a_refusal_is_shown_in_words_and_saves_nothing(tool_fakes: None, alice: CsrfClient) -> None:
    response = post(
        alice, f"{TOOLS}{NOTES}/", {"title": "Mine", "endpoint": "http://169.254.169.254/", "token": FAKE_TOKEN}
    )
    body = response.content.decode()
    assert response.status_code == 400 and "cloud metadata endpoint" in body
    assert FAKE_TOKEN not in body and not ToolSettings.objects.exists()


def test_another_users_settings_are_never_shown(
    tool_fakes: None, alice: CsrfClient, bob: CsrfClient, user: Any
) -> None:
    tool_settings_update(user=user, plugin=NOTES, values={"title": "Alice's secret title"})
    tool_settings_update(
        user=user,
        plugin=MCP,
        values={"servers": [{"name": "alice-srv", "url": "http://127.0.0.1:9/", "headers": {"X-Key": FAKE_HEADER}}]},
    )
    body = page(bob)
    assert "Alice's secret title" not in body and "alice-srv" not in body and FAKE_HEADER not in body
    assert post(bob, f"{TOOLS}{MCP}/servers/alice-srv/delete/", {}).status_code == 404
    response = post(bob, f"{TOOLS}{MCP}/servers/alice-srv/test/", {})
    assert "no server named" in response.content.decode()
    assert ToolSettings.objects.get(user=user, plugin=MCP).values["servers"][0]["name"] == "alice-srv"


def test_servers_are_added_edited_and_removed(tool_fakes: None, alice: CsrfClient, user: Any) -> None:
    new = {"name": "github", "url": "http://127.0.0.1:9/mcp", "needs_approval": "on"}
    response = post(
        alice,
        f"{TOOLS}{MCP}/servers/",
        {**new, "new_header_name": "Authorization", "new_header_value": FAKE_HEADER},
        follow=True,
    )
    body = response.content.decode()
    assert "Server github saved." in body and "<code>Authorization</code>: set" in body and FAKE_HEADER not in body
    row = ToolSettings.objects.get(user=user, plugin=MCP)
    assert row.secret("servers/github/Authorization") == FAKE_HEADER
    # Edit: rename, switch approval off, keep the header (blank value).
    post(
        alice,
        f"{TOOLS}{MCP}/servers/",
        {"previous_name": "github", "name": "gh", "url": "http://127.0.0.1:9/mcp", "header_0": ""},
    )
    row.refresh_from_db()
    assert row.values["servers"] == [
        {"name": "gh", "url": "http://127.0.0.1:9/mcp", "headers": ["Authorization"], "needs_approval": False}
    ]
    assert row.secret("servers/gh/Authorization") == FAKE_HEADER
    refused = post(alice, f"{TOOLS}{MCP}/servers/", {"name": "meta", "url": "http://169.254.169.254/"})
    assert refused.status_code == 400 and "cloud metadata endpoint" in refused.content.decode()
    assert alice.get(f"{TOOLS}{MCP}/servers/gh/delete/").status_code == 405
    post(alice, f"{TOOLS}{MCP}/servers/gh/delete/", {})
    row.refresh_from_db()
    assert row.values["servers"] == [] and row.encrypted_secrets == {}


def test_the_test_button_lists_the_servers_tools_escaped_and_sends_headers_only_there(
    tool_fakes: None, alice: CsrfClient, user: Any, mcp_server: FakeMcpServer
) -> None:
    with FakeMcpServer() as other:
        tool_settings_update(
            user=user,
            plugin=MCP,
            values={
                "servers": [
                    {"name": "one", "url": f"{mcp_server.origin}/mcp", "headers": {"Authorization": FAKE_HEADER}},
                    {"name": "two", "url": f"{other.origin}/mcp", "headers": {"X-Other": "fake-other-value"}},
                ]
            },
        )
        assert alice.post(f"{TOOLS}{MCP}/servers/one/test/").status_code == 403  # no CSRF token
        assert alice.get(f"{TOOLS}{MCP}/servers/one/test/").status_code == 405
        assert mcp_server.requests == []
        body = post(alice, f"{TOOLS}{MCP}/servers/one/test/", {}).content.decode()
        assert "Connected to one: 2 tools." in body and "search_issues" in body and "Read a file" in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>" not in body
        assert [r.headers.get("authorization") for r in mcp_server.requests] == [FAKE_HEADER]
        assert other.requests == []  # the other server was never contacted
        assert FAKE_HEADER not in body


def test_the_test_button_says_why_a_server_fails(tool_fakes: None, alice: CsrfClient, user: Any) -> None:
    with FakeMcpServer() as gone:
        url = f"{gone.origin}/mcp"
    tool_settings_update(user=user, plugin=MCP, values={"servers": [{"name": "down", "url": url}]})
    body = post(alice, f"{TOOLS}{MCP}/servers/down/test/", {}).content.decode()
    assert "Failed: Could not list the tools of down:" in body


def test_plugins_list_json_shows_tool_plugins(tool_fakes: None) -> None:
    out = StringIO()
    call_command("plugins", "list", "--json", stdout=out)
    by_name = {item["name"]: item for item in json.loads(out.getvalue())}
    notes = by_name[NOTES]
    assert notes["provider"] is None and notes["display_name"] is None and notes["status"] == "loaded"
    assert notes["tools"] == ["note"] and notes["manifest_capabilities"] == ["TOOL_PROVIDER"]
    assert by_name["qtap-plugin-openai"]["tools"] == []
    shown = StringIO()
    call_command("plugins", "show", NOTES, "--json", stdout=shown)
    assert json.loads(shown.getvalue())["tools"] == ["note"]
    call_command("plugins", "disable", NOTES, stdout=StringIO())
    again = StringIO()
    call_command("plugins", "list", "--json", "--capability", "TOOL_PROVIDER", stdout=again)
    listed = {item["name"]: item["status"] for item in json.loads(again.getvalue())}
    assert listed[NOTES] == "disabled" and "qtap-plugin-openai" not in listed


def test_the_test_button_with_the_bundled_mcp_plugin_and_a_real_mcp_server(alice: CsrfClient, user: Any) -> None:
    from providers.registry import registry
    from tests.support.mcp_server import McpTestServer

    assert registry.find(MCP) is not None, "the bundled MCP plugin did not load"
    with McpTestServer(token="fake-mcp-token-3333") as server:
        servers = [
            {"name": "good", "url": server.url, "headers": {"Authorization": "Bearer fake-mcp-token-3333"}},
            {"name": "wrong", "url": server.url, "headers": {"Authorization": "Bearer fake-wrong-token-4444"}},
        ]
        tool_settings_update(user=user, plugin=MCP, values={"servers": servers})
        body = post(alice, f"{TOOLS}{MCP}/servers/good/test/", {}).content.decode()
        assert "Connected to good" in body and "echo" in body
        assert all(r.get("authorization") == "Bearer fake-mcp-token-3333" for r in server.requests)
        refused = post(alice, f"{TOOLS}{MCP}/servers/wrong/test/", {}).content.decode()
        assert "Failed:" in refused and "fake-wrong-token-4444" not in refused and "fake-mcp-token-3333" not in refused


def test_the_profile_form_draws_tool_checkboxes_only_for_a_model_that_calls_tools(
    tool_fakes: None, alice: CsrfClient
) -> None:
    fields = "/settings/chat-profiles/fields/?plugin=qtap-plugin-ollama&model="
    calls = alice.get(fields + "qwen3:8b").content.decode()
    assert 'type="checkbox" name="tools" value="note"' in calls and 'value="qtap-plugin-mcp"' in calls
    assert "All tools of MCP servers" in calls
    assert 'name="tools"' not in alice.get(fields + "llama3:8b").content.decode()


def test_the_admin_shows_tool_settings_without_their_secrets(tool_fakes: None, admin_client: Any, user: Any) -> None:
    row = tool_settings_update(user=user, plugin=NOTES, values={"title": "Mine", "token": FAKE_TOKEN})
    token = row.encrypted_secrets["token"]
    pages = [
        reverse("admin:providers_toolsettings_changelist"),
        reverse("admin:providers_toolsettings_change", args=[row.pk]),
        reverse("admin:providers_toolsettings_changelist") + "?q=fake",
    ]
    for path in pages:
        body = admin_client.get(path).content.decode()
        assert FAKE_TOKEN not in body and token not in body and token[:20] not in body, path
    assert "token: set" in admin_client.get(pages[1]).content.decode()
    probe = admin_client.get(reverse("admin:providers_toolsettings_changelist") + "?encrypted_secrets__icontains=gAAAA")
    assert probe.status_code == 400  # the ciphertext cannot be probed through the changelist
    assert admin_client.get(reverse("admin:providers_toolsettings_add")).status_code == 403
    enable = admin_client.get(reverse("admin:providers_pluginstate_add")).content.decode()
    assert f'value="{NOTES}"' in enable  # tool plugins are switched on and off there too


def test_the_plugins_page_lists_tool_plugins_and_no_picker_offers_them(tool_fakes: None, alice: CsrfClient) -> None:
    plugins = alice.get("/settings/plugins/").content.decode()
    assert 'id="plugin-qtap-plugin-notes"' in plugins and ">Note</span>" in plugins
    for path in ("/settings/keys/", "/settings/profiles/new/", "/settings/image-profiles/new/"):
        body = alice.get(path).content.decode()
        assert f'value="{NOTES}"' not in body and f'value="{MCP}"' not in body, path
    with pytest.raises(ValidationError, match="is not a provider"):
        api_key_create(user=alice_user(alice), plugin=NOTES, label="x", secret="fake-key-for-notes-0000")
    with pytest.raises(ValidationError, match="is not a chat provider"):
        connection_profile_create(user=alice_user(alice), name="x", plugin=NOTES, model="m")


def test_the_bundled_web_fetch_settings_are_saved_from_the_page(alice: CsrfClient, user: Any) -> None:
    from providers.registry import registry
    from providers.tool_settings import tool_contexts

    web_fetch = "qtap-plugin-web-fetch"
    assert registry.find(web_fetch) is not None, "the bundled web fetch plugin did not load"
    body = page(alice)
    assert "Web fetch" in body and 'name="allowlist"' in body and 'value="2097152"' in body
    data = {"allowlist": "docs.example.org\n*.example.com", "max_bytes": "4096", "timeout_seconds": "10"}
    assert post(alice, f"{TOOLS}{web_fetch}/", data).status_code == 302
    settings = tool_contexts(user.pk)[web_fetch].settings
    assert settings == {"allowlist": ["docs.example.org", "*.example.com"], "max_bytes": 4096, "timeout_seconds": 10}
