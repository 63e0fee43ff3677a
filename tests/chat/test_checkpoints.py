"""Checkpoints of running generations: many rows in one statement, and a failure costs only its row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from qtap_site.chat import services
from qtap_site.chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def _assistant(chat: Any, status: str, content: str = "") -> Message:
    long_ago = timezone.now() - timedelta(minutes=5)
    return Message.objects.create(
        chat=chat, role=Message.Role.ASSISTANT, status=status, content=content, heartbeat_at=long_ago
    )


def test_a_batch_saves_the_running_rows_and_leaves_finished_ones_alone(chat: Any) -> None:
    first = _assistant(chat, Message.Status.STREAMING)
    second = _assistant(chat, Message.Status.STREAMING)
    finished = _assistant(chat, Message.Status.COMPLETE, content="final text")
    before = timezone.now()

    saved = services.checkpoint_messages(
        [
            {"message_id": first.pk, "content": "one", "reasoning": "", "seq": 3},
            {"message_id": second.pk, "content": "two", "reasoning": "why", "seq": 5},
            {"message_id": finished.pk, "content": "late checkpoint", "reasoning": "", "seq": 9},
        ]
    )

    assert saved == {first.pk, second.pk, finished.pk}
    first.refresh_from_db()
    second.refresh_from_db()
    finished.refresh_from_db()
    assert (first.content, first.seq) == ("one", 3)
    assert (second.content, second.reasoning, second.seq) == ("two", "why", 5)
    assert first.heartbeat_at is not None and first.heartbeat_at >= before - timedelta(seconds=1)
    # A checkpoint arriving after the final save must not overwrite it.
    assert (finished.content, finished.seq, finished.status) == ("final text", 0, Message.Status.COMPLETE)


def test_when_the_batch_fails_each_row_is_tried_alone(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _assistant(chat, Message.Status.STREAMING)
    bad = _assistant(chat, Message.Status.STREAMING)
    real = services.checkpoint_message

    def broken_batch(items: list[dict[str, Any]]) -> None:
        raise OperationalError("database is locked")

    def one(**item: Any) -> None:
        if item["message_id"] == bad.pk:
            raise OperationalError("server closed the connection unexpectedly")
        real(**item)

    monkeypatch.setattr(services, "_checkpoint_batch", broken_batch)
    monkeypatch.setattr(services, "checkpoint_message", one)
    saved = services.checkpoint_messages(
        [
            {"message_id": good.pk, "content": "kept", "reasoning": "", "seq": 2},
            {"message_id": bad.pk, "content": "lost", "reasoning": "", "seq": 2},
        ]
    )

    assert saved == {good.pk}
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.content == "kept" and bad.content == ""


def test_nothing_to_save_runs_no_statement(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert services.checkpoint_messages([]) == set()
