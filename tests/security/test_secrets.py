"""API keys never leave the server: not in pages, JSON, websocket frames, log lines or error pages,
even when the provider's own error message repeats the key back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.security.conftest import Owned
from tests.security.routes import concrete_urls, site_endpoints
from tests.support.data import SECRET, chat_setup, db
from tests.support.logs import handlers_writing_to_buffer
from tests.support.scripted_openai import Script, ScriptedOpenAI
from tests.support.wsclient import InProcessTab

pytestmark = pytest.mark.django_db(transaction=True)

# A key with no recognisable shape (an OpenAI-compatible gateway's password): only the exact value can
# be scrubbed, the shape-based log filter cannot know it.
PLAIN_SECRET = "correct-horse-gateway-passphrase-4242"


def body(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
        response.close()
        return content
    return bytes(response.content)


@pytest.fixture
def emitted_logs() -> Iterator[io.StringIO]:
    """Everything the configured log handlers write, at DEBUG for every logger, in one buffer."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and h.filters]
    assert handlers, "the LOGGING setting configures a console handler with the redaction filter"
    with handlers_writing_to_buffer(handlers, ("httpx", "httpcore", "django", "qtap", "daphne", "channels")) as buffer:
        yield buffer


def test_no_page_or_json_answer_contains_the_key(owned: Owned) -> None:
    client = Client()
    client.force_login(owned.user)
    checked = 0
    for endpoint in site_endpoints():
        for url in concrete_urls(endpoint, owned.ids(), owned.image_profile.pk):
            response = client.get(url)
            assert SECRET.encode() not in body(response), f"GET {url} shows the key"
            checked += 1
    assert checked > 20


async def _chat_with_failures(tab: InProcessTab, fake: ScriptedOpenAI, secret: str) -> None:
    """A reply, then the provider refusing the key while quoting it, then a server error quoting it."""
    fake.script = Script(tokens=5)
    await tab.send({"type": "message.send", "content": "hello"})
    ok = await tab.follow(timeout=20)
    assert ok.terminal is not None and ok.terminal["type"] == "generation.finished"
    fake.fail_next(401, {"error": {"message": f"Incorrect API key provided: {secret}.", "type": "invalid_request"}})
    await tab.send({"type": "message.send", "content": "again"})
    refused = await tab.follow(timeout=20)
    assert refused.terminal is not None and refused.terminal["code"] == "authentication"
    fake.fail_next(500, {"error": {"message": f"proxy failed; upstream said Authorization: Bearer {secret}"}}, times=3)
    fake.fail_next(400, {"error": {"message": f"bad request for key={secret}"}})
    await tab.send({"type": "message.send", "content": "once more"})
    failed = await tab.follow(timeout=20)
    assert failed.terminal is not None and failed.terminal["type"] == "generation.error"


def _chat_page(user: Any, chat_id: int) -> bytes:
    client = Client()
    client.force_login(user)
    return body(client.get(f"/chats/{chat_id}/"))


@pytest.fixture
async def key_shaped_chat(
    owned: Owned, alice_cookie: str, scripted_openai: ScriptedOpenAI
) -> tuple[InProcessTab, Owned, ScriptedOpenAI]:
    tab = await InProcessTab.open(owned.chat.pk, cookie=alice_cookie)
    await tab.expect("chat.state")
    return tab, owned, scripted_openai


async def test_a_key_shaped_secret_never_reaches_the_logs(
    key_shaped_chat: tuple[InProcessTab, Owned, ScriptedOpenAI], emitted_logs: io.StringIO
) -> None:
    tab, _owned, fake = key_shaped_chat
    await _chat_with_failures(tab, fake, SECRET)
    # The key did go upstream, where it belongs.
    assert fake.chat_requests()[0].headers["authorization"] == f"Bearer {SECRET}"
    output = emitted_logs.getvalue()
    assert "qtap.plugins.qtap-plugin-openai" in output, "the DEBUG logs of the plugin were captured"
    assert "Incorrect API key provided" in output, "the provider's error was logged"
    assert SECRET not in output, "a log line carries the key"
    await tab.close()


async def test_a_key_shaped_secret_never_reaches_frames_or_pages(
    key_shaped_chat: tuple[InProcessTab, Owned, ScriptedOpenAI],
) -> None:
    tab, owned, fake = key_shaped_chat
    await _chat_with_failures(tab, fake, SECRET)
    assert SECRET not in json.dumps(tab.received), "a websocket frame carries the key"
    assert SECRET.encode() not in await db(_chat_page, owned.user, owned.chat.pk), "the chat page shows the key"
    await tab.close()


async def test_a_secret_without_a_key_shape_never_reaches_frames_logs_or_pages(
    user: Any, alice_cookie: str, scripted_openai: ScriptedOpenAI, emitted_logs: io.StringIO
) -> None:
    setup = await db(
        chat_setup, user, scripted_openai.base_url, plugin="qtap-plugin-openai-compatible", secret=PLAIN_SECRET
    )
    tab = await InProcessTab.open(setup.chat.pk, cookie=alice_cookie)
    await tab.expect("chat.state")
    await _chat_with_failures(tab, scripted_openai, PLAIN_SECRET)
    assert scripted_openai.chat_requests()[0].headers["authorization"] == f"Bearer {PLAIN_SECRET}"
    assert PLAIN_SECRET not in emitted_logs.getvalue(), "a log line carries the key"
    assert PLAIN_SECRET not in json.dumps(tab.received), "a websocket frame carries the key"
    assert PLAIN_SECRET.encode() not in await db(_chat_page, user, setup.chat.pk), "the chat page shows the key"
    await tab.close()


def test_a_server_error_page_shows_no_key(
    owned: Owned, monkeypatch: pytest.MonkeyPatch, settings: Any, emitted_logs: io.StringIO
) -> None:
    settings.DEBUG = False  # QTAP_DEBUG off, as deployed
    from qtap_site.chat import views

    def explode(chat: Any) -> Any:
        key = owned.key.get_secret()  # a secret in a local variable and in the exception
        raise RuntimeError(f"timeline failed while holding {key}")

    monkeypatch.setattr(views, "timeline", explode)
    client = Client(raise_request_exception=False)
    client.force_login(owned.user)
    response = client.get(f"/chats/{owned.chat.pk}/")
    assert response.status_code == 500
    assert SECRET.encode() not in body(response)
    output = emitted_logs.getvalue()
    assert "timeline failed while holding" in output, "the error was logged"
    assert SECRET not in output
