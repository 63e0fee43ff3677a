"""Fixtures of the budget tests: the chat tests' local OpenAI-dialect server, profile, chat and
websocket helpers, the scaled suites' scripted server and chat, and a way to write replies (with their
cost and tokens) at a chosen time."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from qtap_site.budgets import guard
from qtap_site.chat.models import Chat, Message
from tests.chat.conftest import api_key, chat, cookie, fake, fresh_channel_state, plugin, profile
from tests.support.fixtures import alice_cookie, chat_on_fake, close_worker_connections, scripted_openai

__all__ = [
    "alice_cookie",
    "api_key",
    "chat",
    "chat_on_fake",
    "close_worker_connections",
    "cookie",
    "fake",
    "fresh_channel_state",
    "plugin",
    "profile",
    "scripted_openai",
]


@pytest.fixture(autouse=True)
def no_cached_budgets(close_worker_connections: None) -> Any:
    """Each test reads the budget rows afresh (the cache is per process and outlives a test's database);
    and the worker thread's connection is closed after it (PostgreSQL could not drop the test database)."""
    guard.forget()
    yield
    guard.forget()


def reply(
    chat: Chat,
    *,
    cost: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    at: datetime | None = None,
    model: str = "gpt-4o-mini",
    plugin: str = "qtap-plugin-openai",
    status: str = Message.Status.COMPLETE,
) -> Message:
    """An assistant reply as a finished generation saves it; ``at`` sets when it was created."""
    message = Message.objects.create(
        chat=chat,
        role=Message.Role.ASSISTANT,
        content="earlier reply",
        status=status,
        plugin=plugin,
        model=model,
        cost=Decimal(cost) if cost is not None else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    if at is not None:
        Message.objects.filter(pk=message.pk).update(created_at=at)
        message.refresh_from_db()
    return message
