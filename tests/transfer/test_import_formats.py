"""Imports of each format: ChatGPT (JSON and zip) and Claude exports keep their branches, a qtap archive
comes back exactly as it was exported, and the answer names what was imported."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from qtap_site.chat.models import Chat, Message, ToolCall
from qtap_site.chat.services import active_branch
from qtap_site.transfer.models import ImportedChat
from tests.transfer.conftest import DATA, post_import, tree, zipped

pytestmark = pytest.mark.django_db

CHATGPT = (DATA / "chatgpt_conversations.json").read_bytes()
CLAUDE = (DATA / "claude_conversations.json").read_bytes()
ARCHIVE = (DATA / "qtap_archive.json").read_bytes()

# The ChatGPT sample's first conversation, as qtap keeps it: the hidden system node and the empty root
# are gone, the code call and its tool output are skipped (the reply after them hangs on the user turn),
# and the regenerated reply and the edited question are siblings as they were.
CAPITALS = [
    ("user", "What is the capital of France?", [
        ("assistant", "Paris.", [
            ("user", "And of Italy?", [("assistant", "Rome.", [])]),
        ]),
        ("assistant", "The capital of France is **Paris**.", [
            ("user", "How big is it, compared with this map?", [("assistant", "Paris covers about 105 km².", [])]),
            ("user", "What is its population? Compute the density too.", [
                ("assistant", "About 2.1 million people, roughly 19,950 per km².", []),
            ]),
        ]),
    ]),
]  # fmt: skip


def test_chatgpt_export_keeps_the_branch_structure(client, user):
    response = post_import(client, "conversations.json", CHATGPT)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["imported"], answer["skipped"]) == (2, 0)
    capitals, haiku = (Chat.objects.get(pk=pk) for pk in answer["chats"])
    assert capitals.user == user and capitals.title == "Capitals and populations"
    assert tree(capitals) == CAPITALS
    # The branch ChatGPT showed last (current_node) is the one the chat page opens on.
    shown = [Message.objects.get(pk=pk).content for pk in active_branch(capitals.pk)]
    assert shown[-1] == "About 2.1 million people, roughly 19,950 per km²."
    assert capitals.created_at == datetime.fromtimestamp(1714557600.0, tz=UTC)
    first = Message.objects.get(chat=capitals, content="Paris.")
    assert (first.model, first.finish_reason) == ("gpt-4o", "stop")
    assert first.created_at == datetime.fromtimestamp(1714557612.0, tz=UTC)
    edited = Message.objects.get(chat=capitals, role="user", content__startswith="How big")
    assert edited.notes == "1 image(s) of the original were not imported."
    assert tree(haiku)[0][2][0][1].startswith("Soft rain on the roof")
    assert ImportedChat.objects.filter(user=user, source="chatgpt").count() == 2


def test_chatgpt_zip_is_read_from_its_conversations_json(client):
    data = zipped({"chat.html": b"<html>" * 100, "conversations.json": CHATGPT, "user.json": b"{}"})
    response = post_import(client, "chatgpt-export.zip", data)
    assert response.status_code == 200, response.content
    assert response.json()["imported"] == 2
    assert tree(Chat.objects.get(title="Capitals and populations")) == CAPITALS


def test_claude_export_keeps_branches_thinking_and_tool_use(client, user):
    response = post_import(client, "conversations.json", CLAUDE)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["imported"], answer["skipped"]) == (2, 0)
    sorting, quick = (Chat.objects.get(pk=pk) for pk in answer["chats"])
    assert sorting.title == "Sorting a list in Python"
    assert tree(sorting) == [
        ("user", "How do I sort a list of dicts by a key?", [
            ("assistant", "Use `sorted(items, key=lambda d: d['age'])`.", []),
            ("assistant", "Let me check the docs first.\n\n`sorted(items, key=operator.itemgetter('age'))` is the "
                          "idiomatic way.", [
                ("user", "Here is my data; sort it by age.", [("assistant", "Sorted: bob (27), ann (31).", [])]),
            ]),
        ]),
    ]  # fmt: skip
    thought = Message.objects.get(chat=sorting, content__startswith="Use `sorted")
    assert thought.reasoning == "They want sorted() with a key function."
    call = ToolCall.objects.get(message__chat=sorting)
    assert (call.name, call.arguments, call.call_id) == ("web_search", {"query": "python sorted key"}, "toolu_01")
    assert call.result == "sorted(iterable, /, *, key=None, reverse=False)" and not call.is_error
    assert Message.objects.get(chat=sorting, content__startswith="Here is").notes == "Files not imported: people.csv"
    # Without parent_message_uuid the messages are one line, in file order.
    assert tree(quick) == [("user", "What's 2+2?", [("assistant", "4.", [])])]


def test_qtap_sample_archive_imports_with_its_metadata(client, user, profile):
    response = post_import(client, "qtap.json", ARCHIVE)
    assert response.status_code == 200, response.content
    weather, empty = (Chat.objects.get(pk=pk) for pk in response.json()["chats"])
    assert weather.profile == profile  # matched by name, within the user's own profiles
    assert (weather.title, weather.system_prompt, empty.title) == ("Weather tool", "Answer briefly.", "")
    reply = Message.objects.get(chat=weather, model="gpt-4.1", status="complete")
    assert str(reply.cost) == "0.00048000" and reply.reasoning_tokens == 12 and reply.ttft_ms == 410
    assert reply.tool_rounds == [{"offset": 9}] and reply.provider_state is None
    assert reply.tool_calls.get().result == '{"temp_c": 3, "sky": "cloudy"}'
    failed = Message.objects.get(chat=weather, status="error")
    assert (failed.error_code, failed.parent_id) == ("rate_limited", reply.parent_id)
    question = Message.objects.get(chat=weather, role="user")
    # The archive holds no bytes and this user has no file with that checksum: the note says what is missing.
    assert question.attachments.count() == 0
    assert "oslo.png (image/png, 1234 bytes)" in question.notes


EXPORTED_FIELDS = (
    "role", "content", "reasoning", "status", "plugin", "model", "input_tokens", "output_tokens",
    "cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "cost", "finish_reason", "error_code",
    "error_message", "ttft_ms", "notes", "created_at",
)  # fmt: skip


def snapshot(chat: Chat) -> dict:
    """Everything an archive carries of a chat, with ids replaced by positions."""
    rows = list(Message.objects.filter(chat=chat).order_by("id").prefetch_related("attachments", "tool_calls"))
    position = {m.pk: i for i, m in enumerate(rows)}
    return {
        "chat": (chat.title, chat.system_prompt, chat.created_at, chat.profile_id),
        "messages": [
            {
                "parent": position.get(m.parent_id),
                **{name: getattr(m, name) for name in EXPORTED_FIELDS},
                "attachments": [(a.pk, a.filename) for a in m.attachments.all()],
                "tool_calls": [
                    (c.round, c.call_id, c.name, c.plugin, c.arguments, c.result, c.is_error, c.status, c.duration_ms)
                    for c in m.tool_calls.all()
                ],
                "tool_rounds": [{"offset": t["offset"]} for t in m.tool_rounds or []],
            }
            for m in rows
        ],
    }


def test_qtap_archive_round_trip_is_lossless(client, user, rich_chat):
    before = snapshot(rich_chat)
    exported = b"".join(client.get("/export/").streaming_content)
    rich_chat.delete()
    response = post_import(client, "qtap-alice.json", exported)
    assert response.status_code == 200, response.content
    [chat_id] = response.json()["chats"]
    again = Chat.objects.get(pk=chat_id)
    assert snapshot(again) == before  # same tree, texts, metadata, attachments (the user still has the bytes)
    assert again.updated_at == max(m["created_at"] for m in before["messages"])
    # A second round trip of the imported chat gives the same archive, ids aside.
    second = json.loads(client.get(f"/chats/{chat_id}/export.json").content)["chats"][0]
    first = json.loads(exported)["chats"][0]
    strip = lambda chat: [{k: v for k, v in m.items() if k not in ("id", "parent")} for m in chat["messages"]]  # noqa: E731
    assert strip(second) == strip(first)


def test_the_html_answer_reports_counts_and_links_the_chats(client):
    response = post_import(client, "conversations.json", CHATGPT, json_answer=False)
    assert response.status_code == 200
    text = response.content.decode()
    assert "ChatGPT export: imported 2 chats (11 messages), skipped 0 already imported." in text
    assert "Capitals and populations" in text and "/chats/" in text
