"""Fixtures of the export and import tests: a signed-in client, a chat with branches, tool calls and an
attachment, uploads built in memory, and the tree of a chat as nested (role, content) pairs."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from providers.models import ConnectionProfile
from qtap_site.chat.models import Attachment, Chat, Message, ToolCall
from qtap_site.transfer.models import ImportedChat

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add(chat: Chat, role: str, content: str, parent: Message | None = None, **fields: Any) -> Message:
    return Message.objects.create(chat=chat, parent=parent, role=role, content=content, **fields)


@pytest.fixture
def profile(user) -> ConnectionProfile:
    return ConnectionProfile.objects.create(user=user, name="Work GPT", plugin="qtap-plugin-openai", model="gpt-4.1")


@pytest.fixture
def rich_chat(user, profile) -> Chat:
    """A chat whose first reply was regenerated (two sibling replies), the second of which called a tool,
    and whose first message carries an attachment; the user's secrets-bearing fields are filled in."""
    chat = Chat.objects.create(user=user, title="Trip planning", system_prompt="Be brief.", profile=profile)
    data = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    attachment = Attachment(
        owner=user, sha256=hashlib.sha256(data).hexdigest(), mime_type="image/png", size=len(data), filename="map.png"
    )
    attachment.file.save("map.png", ContentFile(data), save=True)
    question = add(chat, "user", "Where should I go in **Norway**?")
    question.attachments.add(attachment)
    add(chat, "assistant", "Bergen.", question, plugin="qtap-plugin-openai", model="gpt-4.1", finish_reason="stop")
    reply = add(
        chat, "assistant", "Let me look.\n\nTromsø, for the northern lights.", question,
        reasoning="Check the weather first.", plugin="qtap-plugin-openai", model="gpt-4.1", input_tokens=120,
        output_tokens=40, cached_input_tokens=16, reasoning_tokens=8, cost=Decimal("0.00123400"),
        finish_reason="stop", ttft_ms=321, provider_state={"encrypted": "SECRET-STATE"},
        tool_rounds=[{"offset": 12, "provider_state": {"signature": "SECRET-SIGNATURE"}}],
    )  # fmt: skip
    ToolCall.objects.create(
        message=reply, round=0, call_id="call_1", name="get_weather", plugin="qtap-plugin-weather",
        arguments={"city": "Tromsø"}, result='{"sky": "clear"}', status="complete", duration_ms=42,
    )  # fmt: skip
    ToolCall.objects.create(
        message=reply, round=0, call_id="call_2", name="get_aurora", arguments={}, result="service down",
        is_error=True, status="error",
    )  # fmt: skip
    follow = add(chat, "user", "How cold is it?", reply)
    add(chat, "assistant", "Around -10 °C.", follow, status="cancelled", finish_reason="cancelled")
    return chat


def tree(chat: Chat) -> list[Any]:
    """The chat's messages as nested ``(role, content, [children])``, children oldest first."""
    rows = list(Message.objects.filter(chat=chat).order_by("id"))
    children: dict[int | None, list[Message]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)

    def build(parent: int | None) -> list[Any]:
        return [(m.role, m.content, build(m.pk)) for m in children.get(parent, [])]

    return build(None)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in (Chat, Message, ToolCall, Attachment, ImportedChat)}


def upload(name: str, data: bytes, content_type: str = "application/json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def zipped(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def post_import(client: Client, name: str, data: bytes, *, json_answer: bool = True) -> Any:
    headers = {"Accept": "application/json"} if json_answer else {}
    return client.post("/import/", {"file": upload(name, data)}, headers=headers)


def chatgpt_export(count: int, *, key: str, title: str) -> bytes:
    """A ChatGPT ``conversations.json`` of ``count`` conversations: the sample's, each under the id
    ``{key}-{i}`` and the title ``title.format(i=i)``."""
    sample = json.loads((DATA / "chatgpt_conversations.json").read_text())
    conversations = []
    for i in range(count):
        conversation = copy.deepcopy(sample[i % len(sample)])
        conversation["id"] = conversation["conversation_id"] = f"{key}-{i}"
        conversation["title"] = title.format(i=i)
        conversations.append(conversation)
    return json.dumps(conversations).encode()
