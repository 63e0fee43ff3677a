"""What each bad input gets: the same file twice imports nothing new; a truncated file, a file of the
wrong kind, a JSON of the wrong shape, an oversized file and zip bombs answer 400 with an ``error`` and a
``detail`` that names what and where, and leave every table as it was; CSRF is required and GET never
imports."""

from __future__ import annotations

import json
import zipfile

import pytest
from django.test import Client

from qtap_site.chat.models import Chat
from tests.transfer.conftest import DATA, counts, post_import, upload, zipped

pytestmark = pytest.mark.django_db

CHATGPT = (DATA / "chatgpt_conversations.json").read_bytes()
CLAUDE = (DATA / "claude_conversations.json").read_bytes()


def refused(client: Client, name: str, data: bytes) -> dict:
    """Post a file that must be refused; the answer's JSON, once nothing was written."""
    before = counts()
    response = post_import(client, name, data)
    assert response.status_code == 400, response.content
    assert counts() == before
    answer = response.json()
    assert set(answer) == {"error", "detail"}
    return answer


@pytest.mark.parametrize("sample", ["chatgpt_conversations.json", "claude_conversations.json", "qtap_archive.json"])
def test_the_same_file_twice_imports_nothing_new(client, sample):
    data = (DATA / sample).read_bytes()
    first = post_import(client, "conversations.json", data).json()
    assert first["imported"] == 2 and first["skipped"] == 0
    before = counts()
    second = post_import(client, "conversations.json", data).json()
    assert second == {"imported": 0, "skipped": 2, "chats": []}
    assert counts() == before


def test_a_chat_deleted_after_its_import_can_be_imported_again(client):
    first = post_import(client, "conversations.json", CHATGPT).json()
    Chat.objects.get(pk=first["chats"][0]).delete()
    again = post_import(client, "conversations.json", CHATGPT).json()
    assert (again["imported"], again["skipped"]) == (1, 1)


def test_another_user_importing_the_same_file_gets_their_own_chats(client, other_user):
    post_import(client, "conversations.json", CHATGPT)
    theirs = Client()
    theirs.force_login(other_user)
    answer = post_import(theirs, "conversations.json", CHATGPT).json()
    assert answer["imported"] == 2
    assert Chat.objects.filter(user=other_user).count() == 2


def test_a_truncated_file_is_refused_and_nothing_imported(client):
    answer = refused(client, "conversations.json", CHATGPT[: len(CHATGPT) * 2 // 3])
    assert answer["error"] == "bad_json"
    assert answer["detail"].startswith("conversations.json: not valid JSON: ")
    assert "ends too early" in answer["detail"]


def test_a_truncated_zip_is_refused(client):
    data = zipped({"conversations.json": CHATGPT})
    answer = refused(client, "export.zip", data[: len(data) // 2])
    assert answer["error"] == "bad_zip" and answer["detail"].startswith("export.zip: ")


def test_a_png_is_refused(client):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
    answer = refused(client, "holiday.png", png)
    assert answer == {
        "error": "not_json",
        "detail": "holiday.png: neither a JSON file nor a zip (it starts with b'\\x89PNG\\r\\n\\x1a\\n')",
    }


@pytest.mark.parametrize(
    ("data", "error", "detail"),
    [
        ({"hello": "world"}, "unknown_format", 'not a qtap archive (no "format": "qtap-archive")'),
        ({"format": "zip"}, "unknown_format", "format 'zip' is not 'qtap-archive'"),
        ([{"title": "x"}], "unknown_format", "item 0 is neither a ChatGPT conversation"),
        ({"format": "qtap-archive", "version": 2, "chats": []}, "unsupported_version", "version 2"),
        (
            {"format": "qtap-archive", "version": 1, "chats": {}},
            "bad_export",
            "chats: expected a list, found an object",
        ),
    ],
)
def test_json_of_the_wrong_shape_is_refused(client, data, error, detail):
    answer = refused(client, "wrong.json", json.dumps(data).encode())
    assert answer["error"] == error and detail in answer["detail"]


def test_a_bad_conversation_late_in_the_file_refuses_the_whole_file(client):
    conversations = json.loads(CHATGPT)
    conversations.append(json.loads(json.dumps(conversations[1])))
    conversations.append(json.loads(json.dumps(conversations[1])))
    conversations[3]["id"] = conversations[3]["conversation_id"] = "other"
    del conversations[3]["mapping"]["a21"]["message"]
    answer = refused(client, "conversations.json", json.dumps(conversations).encode())
    assert answer == {"error": "bad_export", "detail": "conversations.json: item 3: mapping node 'a21' has no message"}


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda c: c[0]["mapping"]["ccc1-user"].update(parent="nowhere"), "names a parent 'nowhere' that is not there"),
        (lambda c: c[0]["mapping"]["aaa1-user"]["message"].update(create_time="soon"), "create_time: 'soon' is not a"),
        (lambda c: c[0]["mapping"]["aaa1-user"]["message"]["content"].update(parts=[7]), "parts[0]: expected text"),
    ],
)
def test_chatgpt_errors_name_the_conversation_and_node(client, change, detail):
    conversations = json.loads(CHATGPT)
    change(conversations)
    answer = refused(client, "conversations.json", json.dumps(conversations).encode())
    assert answer["detail"].startswith("conversations.json: item 0: ") and detail in answer["detail"]


def test_claude_errors_name_the_conversation_and_message(client):
    conversations = json.loads(CLAUDE)
    conversations[1]["chat_messages"][1]["sender"] = "robot"
    answer = refused(client, "conversations.json", json.dumps(conversations).encode())
    assert answer["detail"] == (
        "conversations.json: item 1: chat_messages[1]: sender: 'robot' is neither 'human' nor 'assistant'"
    )


def test_a_zip_bomb_is_refused_before_it_is_inflated(client):
    # 64 MiB of spaces deflate to about 64 KiB: a ratio of ~1000, far past the cap of 200.
    bomb = zipped({"conversations.json": b"[" + b" " * (64 * 1024 * 1024) + b"]"})
    assert len(bomb) < 200_000
    answer = refused(client, "export.zip", bomb)
    assert answer["error"] == "zip_refused"
    assert answer["detail"] == "export.zip: conversations.json: inflates more than 200 times (a zip bomb?)"


def test_a_zip_whose_member_lies_about_its_size_is_stopped_while_inflating(client):
    honest = zipped({"conversations.json": b"[" + b" " * 2_000_000 + b"]"}, compression=zipfile.ZIP_DEFLATED)
    # Rewrite the declared size (local header and central directory) to 1000 bytes: the ratio check on
    # the declaration passes, and the bytes actually inflated are what stop it.
    size = (2_000_002).to_bytes(4, "little")
    lying = honest.replace(size, (1000).to_bytes(4, "little"))
    assert lying.count((1000).to_bytes(4, "little")) >= 2
    answer = refused(client, "export.zip", lying)
    assert answer["error"] in {"zip_refused", "bad_zip"}
    assert answer["detail"].startswith("export.zip: conversations.json: ")


def test_a_zip_with_too_many_members_is_refused(client, settings):
    settings.QTAP_IMPORT_MAX_ZIP_MEMBERS = 5
    data = zipped({"conversations.json": CHATGPT, **{f"file-{i}.png": b"x" for i in range(5)}})
    answer = refused(client, "export.zip", data)
    assert answer == {"error": "zip_refused", "detail": "export.zip: 6 members; at most 5 are accepted"}


def test_a_zip_whose_members_inflate_past_the_total_cap_is_refused(client, settings):
    settings.QTAP_IMPORT_MAX_ZIP_TOTAL_BYTES = 50_000
    data = zipped({"conversations.json": CHATGPT, "dalle/big.webp": b"z" * 60_000})
    answer = refused(client, "export.zip", data)
    assert answer["error"] == "zip_refused" and "at most 50000 are accepted" in answer["detail"]


def test_a_zip_without_conversations_json_is_refused(client):
    answer = refused(client, "photos.zip", zipped({"a.png": b"x", "conversations.txt": CHATGPT}))
    assert answer["detail"] == "photos.zip: the zip holds no conversations.json (ChatGPT and Claude exports do)"


def test_an_upload_over_the_size_limit_is_refused(client, settings):
    settings.QTAP_IMPORT_MAX_BYTES = 1000
    answer = refused(client, "conversations.json", CHATGPT)
    assert answer == {
        "error": "too_large",
        "detail": f"conversations.json: {len(CHATGPT)} bytes; the limit is 1000 bytes",
    }


def test_a_post_without_a_file_is_refused(client):
    response = client.post("/import/", {}, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "no_file", "detail": "the form has no file in its 'file' field"}


def test_a_refusal_as_html_says_nothing_was_imported(client):
    before = counts()
    response = post_import(client, "conversations.json", b"[{", json_answer=False)
    assert response.status_code == 400
    assert "Nothing was imported." in response.content.decode() and "not valid JSON" in response.content.decode()
    assert counts() == before


def test_import_needs_the_csrf_token(user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    before = counts()
    response = strict.post("/import/", {"file": upload("conversations.json", CHATGPT)})
    assert response.status_code == 403
    assert counts() == before
    # With the token from the import page the same post goes through.
    page = strict.get("/transfer/")
    token = page.cookies["csrftoken"].value
    response = strict.post("/import/", {"file": upload("conversations.json", CHATGPT), "csrfmiddlewaretoken": token})
    assert response.status_code == 200


def test_get_import_shows_the_form_and_imports_nothing(client):
    before = counts()
    response = client.get("/import/", {"file": "conversations.json"})
    assert response.status_code == 200
    assert 'name="file"' in response.content.decode()
    assert counts() == before


def test_the_transfer_page_links_both_ways_and_the_nav_links_it(client, rich_chat):
    page = client.get("/transfer/").content.decode()
    assert 'href="/export/"' in page and 'action="/import/"' in page and 'enctype="multipart/form-data"' in page
    assert '<a href="/transfer/">Import / export</a>' in page
    chat_page = client.get(f"/chats/{rich_chat.pk}/").content.decode()
    assert f'href="/chats/{rich_chat.pk}/export.md"' in chat_page
    assert f'href="/chats/{rich_chat.pk}/export.json"' in chat_page
