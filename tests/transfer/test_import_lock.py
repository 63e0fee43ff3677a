"""An import's write transaction is short: while a big file is saved, another user's writes (a chat
created, then renamed, through the chat services, on their own thread and connection) go through within
a short time, where before they waited for the whole save — on SQLite, for the database's one write lock,
up to the busy timeout and then failed. And what an import writes in bulk is found by search at once (the
FTS5 triggers on SQLite, the generated column on PostgreSQL).

Committed rows and real threads: ``transaction=True``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction

from qtap_site.chat import services
from qtap_site.chat.models import Chat, Message
from qtap_site.search import services as search
from qtap_site.transfer import importing
from tests.transfer.conftest import chatgpt_export

pytestmark = pytest.mark.django_db(transaction=True)

CHATS = 4000  # 14 MB, 24,000 messages: the old save held the lock for about 10 s of it here
LONGEST_WAIT_S = 2.5


def export(count: int) -> bytes:
    return chatgpt_export(count, key="lock", title="Lock chat {i}")


class Writer:
    """Another user's requests, one every 50 ms from the moment the import starts saving until it ends."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.saving = threading.Event()
        self.done = threading.Event()
        self.waits: list[float] = []
        self.errors: list[Exception] = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            self.saving.wait(60)
            while not self.done.wait(0.05):
                started = time.monotonic()
                try:
                    with transaction.atomic():
                        chat = services.chat_create(user=self.user, title="while importing")
                    services.chat_rename(chat, "renamed while importing")
                except Exception as exc:  # a timed-out write is what this test is about
                    self.errors.append(exc)
                self.waits.append(time.monotonic() - started)
        finally:
            connection.close()


def test_another_users_writes_go_through_while_a_big_file_is_saved(user: Any, other_user: Any) -> None:
    data = export(CHATS)
    writer = Writer(other_user)

    def report(stage: str, done: int, total: int | None) -> None:
        if stage == "saving":
            writer.saving.set()

    try:
        result = importing.import_file(user=user, upload=SimpleUploadedFile("c.json", data), report=report)
    finally:
        writer.done.set()
        writer.thread.join(30)
    assert result.imported == CHATS
    assert writer.errors == []
    assert max(writer.waits) < LONGEST_WAIT_S, f"another user's write waited {max(writer.waits):.1f} s"
    assert len(writer.waits) >= 3  # the saving lasted long enough to be written against
    assert Chat.objects.filter(user=other_user, title="renamed while importing").count() == len(writer.waits)


def test_imported_messages_and_titles_are_found_by_search(user: Any) -> None:
    result = importing.import_file(user=user, upload=SimpleUploadedFile("c.json", export(4)))
    assert result.imported == 4
    found = search.search(user=user, query="capital France")
    chats = set(Chat.objects.filter(user=user).values_list("pk", flat=True))
    assert found and {r.chat_id for r in found} <= chats
    assert any(r.message_id is not None for r in found)
    hit = Message.objects.get(pk=next(r.message_id for r in found if r.message_id is not None))
    assert "capital of France" in hit.content
    titles = search.search(user=user, query="Lock chat")
    assert {r.chat_id for r in titles if r.role == "title"} == chats
