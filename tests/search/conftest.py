"""Fixtures of the search tests: two users, and a helper that writes a chat with messages at set times.

The tests run on whichever database the suite runs on: SQLite (FTS5) by default, PostgreSQL full-text
search in the scaled run (DATABASE_URL=postgres://…, as .ci/run sets it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from qtap_site.chat.models import Chat, Message
from qtap_site.chat.services import chat_create

START = timezone.make_aware(dt.datetime(2026, 1, 1, 12, 0))


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="bob's long enough password")


@pytest.fixture
def write_chat() -> Callable[..., tuple[Chat, list[Message]]]:
    """``write_chat(user, title, [(role, text), …], minutes=0)``: message i is created ``minutes + i``
    minutes after START, so tests can tell newest from oldest."""

    def write(user: Any, title: str, messages: list[tuple[str, str]], minutes: int = 0) -> tuple[Chat, list[Message]]:
        chat = chat_create(user=user, title=title)
        made = []
        for offset, (role, text) in enumerate(messages):
            message = Message.objects.create(chat=chat, role=role, content=text)
            Message.objects.filter(pk=message.pk).update(created_at=START + dt.timedelta(minutes=minutes + offset))
            message.refresh_from_db()
            made.append(message)
        Chat.objects.filter(pk=chat.pk).update(updated_at=START + dt.timedelta(minutes=minutes))
        return chat, made

    return write


@pytest.fixture
def alice_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bob_client(bob: Any) -> Client:
    client = Client()
    client.force_login(bob)
    return client
