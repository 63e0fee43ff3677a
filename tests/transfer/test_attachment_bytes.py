"""Attachments travel with their bytes: an archive carries each file once (base64, on the first message that
names it), and importing it into an account that lacks the file stores it through the upload's own checks,
so the round trip to another user is lossless. Bad bytes refuse the file, naming where, and leave no file
behind; ``?attachments=metadata`` leaves the bytes out."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from PIL import Image

from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Attachment, Chat, Message
from tests.transfer.conftest import add, counts, post_import

pytestmark = pytest.mark.django_db


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 4), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def photo_chat(user: Any) -> Chat:
    chat = Chat.objects.create(user=user, title="Photos")
    photo = attachment_create(owner=user, filename="harbour.png", data=png())
    first = add(chat, "user", "What is in this picture?")
    first.attachments.add(photo)
    reply = add(chat, "assistant", "A harbour.", first, model="gpt-4.1", input_tokens=900, output_tokens=4)
    again = add(chat, "user", "And this one, the same file?", reply)
    again.attachments.add(photo)
    return chat


def files_on_disk() -> list[Path]:
    return sorted(p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())


def bob_client(other_user: Any) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


def test_an_image_attachment_round_trips_to_another_account(client: Client, photo_chat: Chat, other_user: Any) -> None:
    archive = b"".join(client.get("/export/").streaming_content)
    [chat] = json.loads(archive)["chats"]
    with_bytes = [a for m in chat["messages"] for a in m["attachments"] if "data" in a]
    assert len(with_bytes) == 1  # the second mention of the same file names it only
    assert base64.b64decode(with_bytes[0]["data"]) == png()

    response = post_import(bob_client(other_user), "qtap.json", archive)
    assert response.status_code == 200, response.content
    [chat_id] = response.json()["chats"]
    messages = list(Message.objects.filter(chat_id=chat_id).order_by("id").prefetch_related("attachments"))
    linked = [m.attachments.get() for m in messages if m.role == "user"]
    assert linked[0] == linked[1] and linked[0].owner == other_user
    stored = linked[0]
    assert (stored.filename, stored.mime_type, stored.size) == ("harbour.png", "image/png", len(png()))
    assert stored.sha256 == hashlib.sha256(png()).hexdigest()
    with stored.file.open("rb") as handle:
        assert handle.read() == png()
    assert all("not imported" not in m.notes for m in messages)
    assert (messages[1].input_tokens, messages[1].output_tokens, messages[1].model) == (900, 4, "gpt-4.1")
    assert [m.parent_id for m in messages] == [None, messages[0].pk, messages[1].pk]
    # Served to its new owner like any upload.
    assert bob_client(other_user).get(f"/attachments/{stored.pk}/").status_code == 200


def test_metadata_only_export_names_the_file_and_the_import_notes_it(
    client: Client, photo_chat: Chat, other_user: Any
) -> None:
    archive = b"".join(client.get("/export/?attachments=metadata").streaming_content)
    assert b'"data"' not in archive
    response = post_import(bob_client(other_user), "qtap.json", archive)
    [chat_id] = response.json()["chats"]
    first = Message.objects.filter(chat_id=chat_id).order_by("id").first()
    assert first is not None and first.attachments.count() == 0
    assert "harbour.png (image/png" in first.notes
    assert not Attachment.objects.filter(owner=other_user).exists()


def test_bytes_that_do_not_match_their_checksum_are_refused_naming_where(
    client: Client, photo_chat: Chat, other_user: Any
) -> None:
    archive = json.loads(b"".join(client.get("/export/").streaming_content))
    entry = next(a for m in archive["chats"][0]["messages"] for a in m["attachments"] if "data" in a)
    entry["data"] = base64.b64encode(png("blue")).decode()
    before, disk = counts(), files_on_disk()
    response = post_import(bob_client(other_user), "qtap.json", json.dumps(archive).encode())
    assert response.status_code == 400
    assert response.json()["detail"].startswith("qtap.json: chats[0]: messages[0]: attachments[0]: data: the bytes")
    assert counts() == before and files_on_disk() == disk


def test_a_file_refused_after_another_was_stored_leaves_no_file_behind(
    client: Client, photo_chat: Chat, other_user: Any
) -> None:
    archive = json.loads(b"".join(client.get("/export/").streaming_content))
    second = copy.deepcopy(archive["chats"][0])
    second["id"] = 999
    junk = b"\x00\x01\x02 not a file anyone may upload \xff" * 4
    junk_entry = {
        "filename": "blob.bin",
        "mime_type": "application/octet-stream",
        "size": len(junk),
        "sha256": hashlib.sha256(junk).hexdigest(),
        "data": base64.b64encode(junk).decode(),
    }
    second["messages"][0]["attachments"] = [junk_entry]
    archive["chats"].append(second)
    before, disk = counts(), files_on_disk()
    response = post_import(bob_client(other_user), "qtap.json", json.dumps(archive).encode())
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["error"] == "bad_attachment" and "'blob.bin'" in answer["detail"]
    assert counts() == before
    assert files_on_disk() == disk  # harbour.png was stored for bob, then removed with the rollback


def test_the_export_holds_one_file_at_a_time_not_the_archive(client: Client, user: Any) -> None:
    """Each file's bytes are read as its message is written and dropped with it: the heap's peak stays a
    few times one file, not the sum of them (it held every file of a batch of rows before)."""
    import os
    import tracemalloc

    from qtap_site.transfer.exporting import archive_chunks

    chat = Chat.objects.create(user=user, title="Noise")
    for i in range(16):
        out = io.BytesIO()
        Image.frombytes("RGB", (150, 150), os.urandom(150 * 150 * 3)).save(out, format="PNG")
        add(chat, "user", f"file {i}").attachments.add(
            attachment_create(owner=user, filename=f"n{i}.png", data=out.getvalue())
        )
    one = Attachment.objects.filter(owner=user).first().size  # type: ignore[union-attr]
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in archive_chunks(user=user))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total > 16 * one
    assert peak < 10 * one < total / 1.5
