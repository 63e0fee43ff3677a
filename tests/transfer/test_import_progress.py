"""An import the page follows: ``POST /import/`` with ``progress=1`` answers 202 at once with a job, the
import runs in a background thread, and ``GET /import/<id>/`` reports its stage (reading, parsing chats
``done`` of ``total``, saving them) until the result — or, for a file that fails midway, that nothing was
imported and what went wrong where. Another user's job answers 404; a second import while one runs is
refused with words.

Real HTTP through the Django test client against a real thread, so these tests need committed rows
(``transaction=True``); the import is held at chosen points by wrapping the job's progress reporter.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test import Client
from django.utils import timezone

from qtap_site.chat.models import Chat
from qtap_site.transfer import jobs, writing
from qtap_site.transfer.models import ImportedChat, ImportJob
from tests.transfer.conftest import chatgpt_export, counts, upload

pytestmark = pytest.mark.django_db(transaction=True)

CHATS = 6


def many_chats(count: int = CHATS) -> bytes:
    """A ChatGPT export of ``count`` conversations (the sample's, under new ids and titles)."""
    return chatgpt_export(count, key="progress", title="Imported chat {i}")


class Holds:
    """Stops the import thread when it reports ``(stage, done)`` until the test lets it go on."""

    def __init__(self, *points: tuple[str, int]) -> None:
        self.reached = {point: threading.Event() for point in points}
        self.release = {point: threading.Event() for point in points}

    def wait(self, point: tuple[str, int]) -> None:
        assert self.reached[point].wait(10), f"the import never reached {point}"

    def go(self, point: tuple[str, int]) -> None:
        self.release[point].set()

    def go_all(self) -> None:
        for event in self.release.values():
            event.set()


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    made: list[Holds] = []
    original = jobs._Reporter.__call__
    monkeypatch.setattr(jobs, "REPORT_EVERY_S", 0.0)  # every tick reaches the row, so a test can read it
    monkeypatch.setattr(writing, "CHATS_PER_WRITE", 1)  # a report after every chat, to hold the import at

    def hold(*points: tuple[str, int]) -> Holds:
        holder = Holds(*points)
        made.append(holder)

        def reporting(self: Any, stage: str, done: int, total: int | None) -> None:
            original(self, stage, done, total)
            if (stage, done) in holder.reached:
                holder.reached[(stage, done)].set()
                holder.release[(stage, done)].wait(10)

        monkeypatch.setattr(jobs._Reporter, "__call__", reporting)
        return holder

    yield hold
    for holder in made:
        holder.go_all()
    for thread in threading.enumerate():
        if thread.name.startswith("import-"):
            thread.join(10)


def start(client: Client, data: bytes, name: str = "conversations.json") -> dict[str, Any]:
    response = client.post(
        "/import/", {"file": upload(name, data), "progress": "1"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 202, response.content
    return response.json()


def poll(client: Client, url: str) -> dict[str, Any]:
    response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 200, response.content
    return response.json()


def until_finished(client: Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = poll(client, url)
        if status["finished"]:
            return status
        time.sleep(0.05)
    raise AssertionError(f"the import did not finish: {status}")


def test_the_page_follows_reading_parsing_and_saving_to_the_result(client: Client, user: Any, holds: Any) -> None:
    hold = holds(("parsing", 2), ("saving", 3))
    answer = start(client, many_chats())
    assert answer["status_url"] == f"/import/{answer['id']}/"
    assert answer["finished"] is False and answer["filename"] == "conversations.json"

    hold.wait(("parsing", 2))
    status = poll(client, answer["status_url"])
    assert (status["status"], status["done"], status["total"], status["finished"]) == ("parsing", 2, CHATS, False)
    assert "imported" not in status and "error" not in status
    hold.go(("parsing", 2))

    hold.wait(("saving", 3))
    status = poll(client, answer["status_url"])
    assert (status["status"], status["done"], status["total"]) == ("saving", 3, CHATS)
    assert Chat.objects.filter(user=user).count() == 0  # the transaction is still open: nothing shows yet
    if connection.vendor == "postgresql":
        # Another process reads the row: the job's own connection wrote it while the import's is open.
        row = ImportJob.objects.get(pk=answer["id"])
        assert (row.status, row.done, row.total) == ("saving", 3, CHATS)
    hold.go(("saving", 3))

    result = until_finished(client, answer["status_url"])
    assert result["status"] == "done" and result["imported"] == CHATS and result["skipped"] == 0
    assert result["source"] == "ChatGPT export"
    assert sorted(result["chats"]) == sorted(Chat.objects.filter(user=user).values_list("pk", flat=True))
    assert [link["title"] for link in result["links"]] == [f"Imported chat {i}" for i in range(CHATS)]
    assert result["links"][0]["url"] == f"/chats/{result['links'][0]['id']}/"


def test_the_same_file_again_through_the_page_skips_every_chat(client: Client, holds: Any) -> None:
    first = until_finished(client, start(client, many_chats(3))["status_url"])
    second = until_finished(client, start(client, many_chats(3))["status_url"])
    assert first["imported"] == 3
    assert (second["imported"], second["skipped"], second["chats"]) == (0, 3, [])


def test_a_file_that_fails_while_saving_leaves_nothing_and_says_where(
    client: Client, user: Any, holds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = writing._write_step
    saved = []

    def failing(user: Any, step: Any, have: Any) -> int:
        if len(saved) == 3:
            raise DatabaseError("disk I/O error")
        written = original(user, step, have)
        saved.append(written[0][0])
        return written

    monkeypatch.setattr(writing, "_write_step", failing)
    before = counts()
    status = until_finished(client, start(client, many_chats())["status_url"])
    assert len(saved) == 3  # three chats were written before the failure…
    assert counts() == before  # …and rolled back with it
    assert status["status"] == "failed" and status["error"] == "save_failed"
    assert status["detail"] == (
        f"conversation 4 of {CHATS} ('Imported chat 3', id progress-3) could not be saved"
        " (DatabaseError: disk I/O error)"
    )
    assert "imported" not in status
    assert not ImportedChat.objects.filter(user=user).exists()


def test_a_bad_conversation_midway_fails_the_job_naming_it(client: Client, holds: Any) -> None:
    conversations = json.loads(many_chats())
    del conversations[4]["mapping"]
    status = until_finished(client, start(client, json.dumps(conversations).encode())["status_url"])
    assert (status["status"], status["error"]) == ("failed", "bad_export")
    assert status["detail"] == "conversations.json: item 4: no 'mapping' (not a ChatGPT conversation)"
    assert Chat.objects.count() == 0


def test_an_unexpected_error_is_reported_with_where_it_happened(
    client: Client, holds: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = writing._write_step
    calls = []

    def broken(user: Any, step: Any, have: Any) -> int:
        calls.append(step)
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return original(user, step, have)

    monkeypatch.setattr(writing, "_write_step", broken)
    status = until_finished(client, start(client, many_chats())["status_url"])
    assert status["error"] == "internal"
    assert (
        status["detail"]
        == f"conversations.json: failed while saving chat 2 of {CHATS}; nothing was imported (RuntimeError)"
    )
    assert Chat.objects.count() == 0


def test_another_user_cannot_see_the_job(client: Client, other_user: Any, holds: Any) -> None:
    hold = holds(("saving", 1))
    answer = start(client, many_chats())
    hold.wait(("saving", 1))
    mallory = Client()
    mallory.force_login(other_user)
    assert mallory.get(answer["status_url"], headers={"Accept": "application/json"}).status_code == 404
    assert Client().get(answer["status_url"]).status_code == 302  # to the sign-in page
    assert client.post(answer["status_url"]).status_code == 405
    hold.go_all()
    assert until_finished(client, answer["status_url"])["imported"] == CHATS


def test_a_second_import_while_one_runs_is_refused_with_words(client: Client, holds: Any) -> None:
    hold = holds(("saving", 1))
    answer = start(client, many_chats(), name="first.json")
    hold.wait(("saving", 1))
    for extra in ({"progress": "1"}, {}):
        response = client.post(
            "/import/", {"file": upload("second.json", many_chats(2)), **extra}, headers={"Accept": "application/json"}
        )
        assert response.status_code == 409
        assert response.json()["error"] == "busy"
        assert "your import of first.json (started " in response.json()["detail"]
        assert "is still running" in response.json()["detail"]
    page = client.post("/import/", {"file": upload("second.json", many_chats(2))})
    assert page.status_code == 409 and b"is still running" in page.content
    hold.go_all()
    until_finished(client, answer["status_url"])
    assert client.post("/import/", {"file": upload("second.json", many_chats(2))}).status_code == 200


def test_a_job_whose_process_died_is_marked_failed_and_frees_the_user(client: Client, user: Any) -> None:
    dead = ImportJob.objects.create(user=user, filename="old.json", status="saving", done=3, total=9)
    ImportJob.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=10))
    left_behind = jobs.uploads_dir() / f"{dead.pk}.upload"
    left_behind.parent.mkdir(parents=True, exist_ok=True)
    left_behind.write_bytes(b"[]")
    status = poll(client, f"/import/{dead.pk}/")
    assert not left_behind.exists()
    assert (status["status"], status["error"], status["finished"]) == ("failed", "interrupted", True)
    assert "nothing of it was saved" in status["detail"]
    response = client.post(
        "/import/", {"file": upload("c.json", many_chats(2))}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200 and response.json()["imported"] == 2


def test_the_stored_upload_is_removed_once_imported(client: Client, holds: Any) -> None:
    until_finished(client, start(client, many_chats(2))["status_url"])
    for thread in threading.enumerate():
        if thread.name.startswith("import-"):
            thread.join(10)
    assert list(jobs.uploads_dir().glob("*.upload")) == []


def test_the_synchronous_json_answer_is_unchanged(client: Client) -> None:
    response = client.post(
        "/import/", {"file": upload("c.json", many_chats(2))}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"imported", "skipped", "chats"} and response.json()["imported"] == 2
