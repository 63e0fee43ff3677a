"""Rows a chat test needs: a key, a connection profile pointing at a local fake, and a chat.

Synchronous (Django ORM): call through ``sync_to_async`` from async tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Key-shaped, so the redaction filter and the leak checks of the security suite recognise it.
SECRET = "sk-proj-qtapTESTsecretDoNotLeak0123456789abcdef"


# The chat tests' local servers speak Chat Completions; the OpenAI and Grok plugins default to the
# Responses API, so a profile pointing at those servers asks for Chat Completions, as a gateway's would.
CHAT_COMPLETIONS = {"api": "chat_completions"}


def chat_completions_for(plugin: str) -> dict[str, str]:
    return dict(CHAT_COMPLETIONS) if plugin in ("qtap-plugin-openai", "qtap-plugin-grok") else {}


@dataclass
class ChatSetup:
    user: Any
    key: Any
    profile: Any
    chat: Any
    secret: str


def chat_setup(
    user: Any,
    base_url: str,
    *,
    plugin: str = "qtap-plugin-openai",
    model: str = "gpt-4o-mini",
    secret: str = SECRET,
    title: str = "",
) -> ChatSetup:
    from providers.services import api_key_create, connection_profile_create
    from qtap_site.chat.services import chat_create

    key = api_key_create(user=user, plugin=plugin, label="test key", secret=secret)
    profile = connection_profile_create(
        user=user,
        name="fake",
        plugin=plugin,
        model=model,
        api_key=key,
        base_url=base_url,
        is_default=True,
        parameters=chat_completions_for(plugin),
    )
    chat = chat_create(user=user, profile=profile, title=title)
    return ChatSetup(user=user, key=key, profile=profile, chat=chat, secret=secret)


def message_row(message_id: int) -> Any:
    from qtap_site.chat.models import Message

    return Message.objects.get(pk=message_id)


def chat_messages(chat_id: int) -> list[Any]:
    from qtap_site.chat.models import Message

    return list(Message.objects.filter(chat_id=chat_id).order_by("id"))


async def db(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """Run ORM code from async test code in a fresh thread whose connection is closed afterwards
    (a connection left open in a worker thread would keep PostgreSQL from dropping the test database)."""
    import asyncio

    from django.db import connections

    def call() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(call)
