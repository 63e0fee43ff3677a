"""Which tools are on in a chat: its own choice (a POST with CSRF from the chat page), else its profile's;
a name no enabled tool plugin offers is refused in words and changes nothing; only the owner can switch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from providers.registry import registry
from providers.services import connection_profile_create
from qtap_site.chat.models import Chat
from qtap_site.chat.services import chat_create
from tests.chat.tool_support import TOOL_PLUGIN, ToolsPlugin, tool_plugin

pytestmark = pytest.mark.django_db


@pytest.fixture
def tools() -> Iterator[ToolsPlugin]:
    plugin = tool_plugin()
    with registry.temporarily(plugin):
        yield plugin


@pytest.fixture
def tool_chat(user, tools) -> Chat:
    profile = connection_profile_create(
        user=user,
        name="Local",
        plugin="qtap-plugin-ollama",
        model="llama3.1",
        parameters={"tools": ["echo"]},
    )
    return chat_create(user=user, profile=profile)


def signed_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf(client: Client, chat: Chat) -> str:
    client.get(f"/chats/{chat.pk}/")
    return client.cookies["csrftoken"].value


def test_the_page_offers_the_tools_with_the_profile_default_ticked(user, tool_chat):
    page = signed_in(user).get(f"/chats/{tool_chat.pk}/").content.decode()
    assert 'name="tool" value="echo" checked' in page
    assert f'name="tool" value="{TOOL_PLUGIN}">' in page  # a dynamic plugin is offered whole, off here
    assert "As its connection profile sets them." in page


def test_a_post_switches_the_chat_tools_and_use_profile_goes_back(user, tool_chat):
    client = signed_in(user)
    token = csrf(client, tool_chat)
    answer = client.post(f"/chats/{tool_chat.pk}/tools/", {"tool": [TOOL_PLUGIN]}, HTTP_X_CSRFTOKEN=token)
    assert answer.status_code == 302
    tool_chat.refresh_from_db()
    assert tool_chat.tools == [TOOL_PLUGIN]
    client.post(f"/chats/{tool_chat.pk}/tools/", {"use_profile": "1"}, HTTP_X_CSRFTOKEN=token)
    tool_chat.refresh_from_db()
    assert tool_chat.tools is None


def test_an_unknown_tool_is_refused_in_words_and_nothing_changes(user, tool_chat):
    client = signed_in(user)
    token = csrf(client, tool_chat)
    answer = client.post(
        f"/chats/{tool_chat.pk}/tools/", {"tool": ["rm_rf"]}, HTTP_X_CSRFTOKEN=token, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 400
    assert "Unknown tool &#x27;rm_rf&#x27;" in answer.content.decode()
    tool_chat.refresh_from_db()
    assert tool_chat.tools is None


def test_without_csrf_get_or_as_another_user_nothing_changes(user, other_user, tool_chat):
    client = signed_in(user)
    assert client.post(f"/chats/{tool_chat.pk}/tools/", {"tool": ["echo"]}).status_code == 403
    assert client.get(f"/chats/{tool_chat.pk}/tools/").status_code == 405
    other = signed_in(other_user)
    other.get("/")
    token = other.cookies["csrftoken"].value if "csrftoken" in other.cookies else ""
    answer = other.post(f"/chats/{tool_chat.pk}/tools/", {"tool": ["echo"]}, HTTP_X_CSRFTOKEN=token)
    assert answer.status_code in (403, 404)
    tool_chat.refresh_from_db()
    assert tool_chat.tools is None
