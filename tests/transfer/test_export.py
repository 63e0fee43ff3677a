"""Exports: one chat as Markdown and as a qtap archive, every chat as one streamed archive; only the
requesting user's chats, never provider state or secrets."""

from __future__ import annotations

import base64
import json

import pytest
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client

from qtap_site.chat.models import Chat, Message
from qtap_site.transfer import exporting
from tests.transfer.conftest import add

pytestmark = pytest.mark.django_db


def test_markdown_export_shows_every_branch_tool_call_and_attachment(client, rich_chat):
    response = client.get(f"/chats/{rich_chat.pk}/export.md")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert 'filename="trip-planning.md"' in response["Content-Disposition"]
    text = response.content.decode()
    assert text.startswith("# Trip planning\n")
    assert "Be brief." in text
    assert "📎 map.png (image/png, 72 bytes)" in text
    # The regenerated reply and the first one are both there, each marked as a branch.
    assert "*Branch 1 of 2*" in text and "*Branch 2 of 2*" in text
    assert text.index("Bergen.") < text.index("Tromsø, for the northern lights.")
    assert "Tool call: get_weather (complete)" in text and '"city": "Tromsø"' in text
    assert "Tool call: get_aurora (error)" in text and "service down" in text
    assert "Check the weather first." in text
    assert "SECRET" not in text


def test_json_export_is_a_qtap_archive_of_the_whole_tree(client, rich_chat, user):
    response = client.get(f"/chats/{rich_chat.pk}/export.json")
    assert response.status_code == 200
    archive = json.loads(response.content)
    assert (archive["format"], archive["version"]) == ("qtap-archive", 1)
    [chat] = archive["chats"]
    assert chat["title"] == "Trip planning" and chat["system_prompt"] == "Be brief."
    assert chat["profile"] == "Work GPT" and "profile_id" not in chat
    messages = {m["id"]: m for m in chat["messages"]}
    assert len(messages) == 5
    question = next(m for m in messages.values() if m["parent"] is None)
    replies = [m for m in messages.values() if m["parent"] == question["id"]]
    assert sorted(m["content"][:6] for m in replies) == ["Bergen", "Let me"]  # siblings stay siblings
    data = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    assert question["attachments"] == [
        {
            "filename": "map.png",
            "mime_type": "image/png",
            "size": 72,
            "sha256": question["attachments"][0]["sha256"],
            "data": base64.b64encode(data).decode(),
        }
    ]
    metadata = json.loads(client.get(f"/chats/{rich_chat.pk}/export.json?attachments=metadata").content)
    [bare] = [m for m in metadata["chats"][0]["messages"] if m["attachments"]]
    assert "data" not in bare["attachments"][0] and bare["attachments"][0]["filename"] == "map.png"
    tool_reply = next(m for m in replies if m["tool_calls"])
    assert [c["name"] for c in tool_reply["tool_calls"]] == ["get_weather", "get_aurora"]
    assert tool_reply["tool_calls"][1]["is_error"] is True
    assert tool_reply["cost"] == "0.00123400" and tool_reply["input_tokens"] == 120
    assert tool_reply["tool_rounds"] == [{"offset": 12}]
    text = response.content.decode()
    assert "provider_state" not in text and "SECRET" not in text


def test_another_users_chat_answers_404(client, other_user):
    theirs = Chat.objects.create(user=other_user, title="Private")
    add(theirs, "user", "their secret words")
    for suffix in ("export.md", "export.json"):
        response = client.get(f"/chats/{theirs.pk}/{suffix}")
        assert response.status_code == 404
        assert b"their secret words" not in response.content


def test_exports_need_a_signed_in_user(rich_chat):
    anonymous = Client()
    for path in (f"/chats/{rich_chat.pk}/export.md", f"/chats/{rich_chat.pk}/export.json", "/export/"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_export_all_is_streamed_in_many_chunks_and_holds_every_chat(client, user, other_user, rich_chat, monkeypatch):
    monkeypatch.setattr(exporting, "CHUNK_BYTES", 200)  # small chunks so a small account shows the streaming
    for n in range(3):
        chat = Chat.objects.create(user=user, title=f"Chat {n}")
        parent = None
        for i in range(10):
            parent = add(chat, "user" if i % 2 == 0 else "assistant", f"chat {n} message {i} " + "x" * 50, parent)
    add(Chat.objects.create(user=other_user, title="Not yours"), "user", "mallory's words")
    response = client.get("/export/")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="qtap-alice-')
    chunks = list(response.streaming_content)
    assert len(chunks) > 20
    archive = json.loads(b"".join(chunks))
    titles = sorted(c["title"] for c in archive["chats"])
    assert titles == ["Chat 0", "Chat 1", "Chat 2", "Trip planning"]
    assert sum(len(c["messages"]) for c in archive["chats"]) == 35
    text = b"".join(chunks).decode()
    assert "mallory" not in text and "Not yours" not in text and "SECRET" not in text


def test_export_of_an_account_with_no_chats_is_an_empty_archive(client):
    response = client.get("/export/")
    archive = json.loads(b"".join(response.streaming_content))
    assert archive["chats"] == [] and archive["format"] == "qtap-archive"


@pytest.mark.django_db(transaction=True)
async def test_export_all_streams_under_asgi_too(user, monkeypatch):
    """Under ASGI the chunks come from an async iterator (Django would read a sync one to its end first)."""
    monkeypatch.setattr(exporting, "CHUNK_BYTES", 100)
    client = AsyncClient()
    await client.aforce_login(user)
    chat = await Chat.objects.acreate(user=user, title="Async")
    for i in range(20):
        await Message.objects.acreate(chat=chat, role="user", content=f"message {i} " + "y" * 40)
    response = await client.get("/export/")
    assert response.status_code == 200 and response.is_async
    chunks = [chunk async for chunk in response.streaming_content]
    assert len(chunks) > 10
    assert len(json.loads(b"".join(chunks))["chats"][0]["messages"]) == 20
