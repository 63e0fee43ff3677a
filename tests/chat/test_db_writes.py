"""The per-token path touches no database: writes per generation are bounded by time, not tokens."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.db.backends import utils as backend_utils

from qtap_site.chat.models import Message
from tests.chat.conftest import TERMINAL, deltas, open_socket, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

_WRITE = re.compile(r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)


class WriteCounter:
    """Counts INSERT/UPDATE/DELETE per table in every thread (the ORM runs in a worker thread)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def table(self, name: str) -> list[str]:
        return [verb for verb, table in self.writes if table == name]


@pytest.fixture
def write_counter(monkeypatch) -> WriteCounter:
    counter = WriteCounter()
    original = backend_utils.CursorWrapper._execute_with_wrappers

    def counting(self, sql, params, many, executor):
        match = _WRITE.match(sql)
        if match:
            with counter.lock:
                counter.writes.append((match.group(1).split()[0].upper(), match.group(2)))
        return original(self, sql, params, many, executor)

    monkeypatch.setattr(backend_utils.CursorWrapper, "_execute_with_wrappers", counting)
    return counter


async def test_writes_are_bounded_and_checkpoints_happen(chat, cookie, fake, settings, write_counter):
    settings.QTAP_CHECKPOINT_INTERVAL = 0.25
    fake.tokens = [f"k{i} " for i in range(300)]
    fake.stream_delay = 0.005
    comm, _ = await open_socket(chat.pk, cookie)
    write_counter.writes.clear()
    started = time.monotonic()
    await send(comm, {"type": "message.send", "content": "Count"})
    frames = await receive_until(comm, "generation.delta")
    message_id = frames[-1]["message_id"]

    # Mid-stream, the database already holds a checkpoint of the text, with its seq.
    checkpoint = None
    while checkpoint is None:
        frames.append(await comm.receive_json_from(timeout=5))
        if frames[-1]["type"] in TERMINAL:
            break
        row = await Message.objects.aget(pk=message_id)
        if row.content and row.status == "streaming":
            checkpoint = row
    frames += [] if frames[-1]["type"] in TERMINAL else await receive_until(comm, *TERMINAL)
    duration = time.monotonic() - started
    assert checkpoint is not None, "no checkpoint was written during a stream of over a second"
    assert fake.full_text.startswith(checkpoint.content) and checkpoint.seq > 0

    assert "".join(f["text"] for f in deltas(frames)) == fake.full_text
    message_writes = write_counter.table("chat_message")
    # two inserts (user + placeholder), about one checkpoint per interval, one final update
    bound = 3 + int(duration / 0.25) + 2
    assert len(message_writes) <= bound, (len(message_writes), duration)
    assert len(message_writes) < len(fake.tokens) / 10
    assert len(write_counter.writes) <= bound + 4, write_counter.writes
    # Coalescing: fewer frames than tokens reached the socket.
    assert len(deltas(frames)) <= len(fake.tokens)
    await comm.disconnect()
