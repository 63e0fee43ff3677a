"""Saving running generations: checkpoints and final saves in batches, and a failure costs only its row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from qtap_site.chat import saves
from qtap_site.chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def _assistant(chat: Any, status: str, content: str = "") -> Message:
    long_ago = timezone.now() - timedelta(minutes=5)
    return Message.objects.create(
        chat=chat, role=Message.Role.ASSISTANT, status=status, content=content, heartbeat_at=long_ago
    )


def break_batch_and_one_row(monkeypatch: pytest.MonkeyPatch, batch: str, single: str, bad_id: int) -> None:
    """The batched statement always fails; saved alone, every row but ``bad_id`` succeeds."""
    real = getattr(saves, single)

    def broken_batch(items: list[dict[str, Any]]) -> None:
        raise OperationalError("database is locked")

    def one(**item: Any) -> Any:
        if item["message_id"] == bad_id:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**item)

    monkeypatch.setattr(saves, batch, broken_batch)
    monkeypatch.setattr(saves, single, one)


def test_a_batch_saves_the_running_rows_and_leaves_finished_ones_alone(chat: Any) -> None:
    first = _assistant(chat, Message.Status.STREAMING)
    second = _assistant(chat, Message.Status.STREAMING)
    finished = _assistant(chat, Message.Status.COMPLETE, content="final text")
    before = timezone.now()

    saved = saves.checkpoint_messages(
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
    break_batch_and_one_row(monkeypatch, "_checkpoint_batch", "checkpoint_message", bad.pk)
    saved = saves.checkpoint_messages(
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
        assert saves.checkpoint_messages([]) == set()


def test_final_saves_of_a_batch_each_keep_their_own_figures(chat: Any) -> None:
    done = _assistant(chat, Message.Status.STREAMING)
    failed = _assistant(chat, Message.Status.STREAMING)

    html = saves.finish_messages(
        [
            {
                "message_id": done.pk,
                "status": Message.Status.COMPLETE,
                "content": "**bold** <script>alert(1)</script>",
                "reasoning": "thought",
                "seq": 4,
                "finish_reason": "stop",
                "input_tokens": 11,
                "output_tokens": 4,
                "cost": 0.000123,
                "ttft_ms": 42,
            },
            {
                "message_id": failed.pk,
                "status": Message.Status.ERROR,
                "content": "partial",
                "reasoning": "",
                "seq": 2,
                "finish_reason": "error",
                "error_code": "rate_limited",
                "error_message": "x" * 5000,
            },
        ]
    )

    assert isinstance(html[0], str) and "<strong>bold</strong>" in html[0] and "<script" not in html[0]
    done.refresh_from_db()
    failed.refresh_from_db()
    assert (done.status, done.content, done.seq, done.input_tokens, done.output_tokens, done.ttft_ms) == (
        "complete",
        "**bold** <script>alert(1)</script>",
        4,
        11,
        4,
        42,
    )
    assert done.cost is not None and float(done.cost) == pytest.approx(0.000123)
    assert (failed.status, failed.error_code, len(failed.error_message)) == ("error", "rate_limited", 2000)
    assert failed.cost is None and failed.input_tokens is None


def test_when_a_batch_of_final_saves_fails_each_is_saved_alone(chat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _assistant(chat, Message.Status.STREAMING)
    bad = _assistant(chat, Message.Status.STREAMING)
    break_batch_and_one_row(monkeypatch, "_finish_batch", "finish_message", bad.pk)
    results = saves.finish_messages(
        [
            {"message_id": good.pk, "status": "complete", "content": "kept", "reasoning": "", "seq": 1},
            {"message_id": bad.pk, "status": "complete", "content": "lost", "reasoning": "", "seq": 1},
        ]
    )

    assert isinstance(results[0], str) and isinstance(results[1], OperationalError)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.status, good.content) == ("complete", "kept")
    assert (bad.status, bad.content) == ("streaming", "")
