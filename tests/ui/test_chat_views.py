"""The chat list and chat page through Django's test client: scoping, CSRF, htmx partials, safe rendering."""

from __future__ import annotations

import base64
import datetime as dt
import re
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Chat, GeneratedImage, Message
from qtap_site.chat.services import chat_create

pytestmark = pytest.mark.django_db

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
XSS = (
    "Hello **bold**\n\n<script>alert('s')</script>\n\n<img src=x onerror=alert('i')>\n\n"
    "[click](javascript:alert('j'))\n\n```python\nprint('<b>hi</b>')\n```"
)


@pytest.mark.parametrize("path", ["/", "/chats/1/", "/settings/keys/", "/settings/profiles/", "/settings/plugins/"])
def test_pages_require_sign_in(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_sign_in_enforces_csrf_and_signs_in(user: Any) -> None:
    from tests.ui.conftest import CSRF_INPUT, CsrfClient

    client = CsrfClient()
    assert client.post("/login/", {"username": "alice", "password": "correct horse battery"}).status_code == 403
    token = CSRF_INPUT.search(client.get("/login/").content.decode()).group(1)
    bad = client.post("/login/", {"username": "alice", "password": "wrong", "csrfmiddlewaretoken": token})
    assert bad.status_code == 200 and "didn't match" in bad.content.decode()
    good = client.post(
        "/login/", {"username": "alice", "password": "correct horse battery", "csrfmiddlewaretoken": token}
    )
    assert good.status_code == 302 and good["Location"] == "/"
    assert client.get("/").status_code == 200


def test_sign_out_needs_post_with_csrf(alice_client: Any) -> None:
    assert alice_client.post("/logout/").status_code == 403
    assert alice_client.post_form("/logout/").status_code == 302
    assert alice_client.get("/").status_code == 302


def test_chat_list_is_newest_first_and_only_mine(alice_client: Any, user: Any, other_user: Any) -> None:
    old = chat_create(user=user, title="Older chat")
    new = chat_create(user=user, title="Newer chat")
    Chat.objects.filter(pk=old.pk).update(updated_at=timezone.now() - dt.timedelta(days=1))
    chat_create(user=other_user, title="Mallory secret chat")
    page = alice_client.get("/").content.decode()
    assert page.index("Newer chat") < page.index("Older chat")
    assert "Mallory secret chat" not in page
    partial = alice_client.get("/", headers={"HX-Request": "true"}).content.decode()
    assert f'id="chat-item-{new.pk}"' in partial and "<html" not in partial


def test_first_run_leads_to_keys_profiles_and_local_model(alice_client: Any, user: Any) -> None:
    page = alice_client.get("/").content.decode()
    assert "/settings/keys/" in page and "/settings/profiles/new/" in page and "make local-model" not in page
    user.is_staff = True  # only staff can run commands on the server (issue #14)
    user.save()
    assert "make local-model" in alice_client.get("/").content.decode()


def test_new_chat_uses_the_default_profile(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    assert alice_client.post("/chats/new/").status_code == 403  # no CSRF token
    response = alice_client.post_form("/chats/new/")
    chat = Chat.objects.latest("id")
    assert response["Location"] == f"/chats/{chat.pk}/"
    assert chat.profile_id == alice_rows["profile"].pk


def test_chat_page_renders_history_sanitised(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    chat = alice_rows["chat"]
    question = Message.objects.create(chat=chat, role="user", content="<b>not bold</b> **raw**")
    Message.objects.create(
        chat=chat,
        parent=question,
        role="assistant",
        content=XSS,
        reasoning="thinking <i>hard</i>",
        model="gpt-4o-mini",
        input_tokens=12,
        output_tokens=34,
        cost="0.000123",
        ttft_ms=87,
    )
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "<strong>bold</strong>" in page
    assert "<script>alert" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;alert" in page  # shown as text, inert
    assert '<code class="language-python">' in page
    assert "&lt;b&gt;not bold&lt;/b&gt; **raw**" in page  # the user's own text is shown as typed
    assert '<details class="reasoning"><summary>Reasoning</summary>' in page
    assert "thinking &lt;i&gt;hard&lt;/i&gt;" in page
    for meta in ("gpt-4o-mini", "12 in / 34 out", "$0.000123", "first token 87 ms"):
        assert meta in page
    assert f'data-ws-path="/ws/chats/{chat.pk}/"' in page
    assert f'data-upload-url="/chats/{chat.pk}/attachments/"' in page
    assert "qtap/chat.js" in page and "htmx" in page and "unpkg" not in page and "cdn" not in page.lower()


def test_chat_page_shows_only_the_newest_regenerated_reply(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    chat = alice_rows["chat"]
    question = Message.objects.create(chat=chat, role="user", content="Q")
    Message.objects.create(chat=chat, parent=question, role="assistant", content="first answer")
    Message.objects.create(chat=chat, parent=question, role="assistant", content="second answer")
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "second answer" in page and "first answer" not in page


def test_error_messages_show_reason_and_retry_when_retryable(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    chat = alice_rows["chat"]
    q = Message.objects.create(chat=chat, role="user", content="Q")
    failed = Message.objects.create(
        chat=chat, parent=q, role="assistant", status="error", error_code="rate_limited", error_message="Slow down"
    )
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "rate_limited" in page and "Slow down" in page
    assert f'data-action="regenerate" data-message-id="{failed.pk}">Retry</button>' in page


def test_attachment_warning_data_comes_from_the_manifest(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    page = alice_client.get(f"/chats/{alice_rows['chat'].pk}/").content.decode()
    assert '<script id="profile-info" type="application/json">' in page
    assert '"image/png"' in page and '"provider": "OpenAI"' in page


def test_generated_images_and_attachments_appear_with_owner_only_links(
    alice_client: Any, mallory_client: Any, alice_rows: dict[str, Any], user: Any
) -> None:
    chat = alice_rows["chat"]
    attachment = attachment_create(owner=user, filename="dot.png", data=PNG_1X1)
    message = Message.objects.create(chat=chat, role="user", content="see picture")
    message.attachments.add(attachment)
    image = GeneratedImage(chat=chat, prompt="a red dot", plugin="qtap-plugin-openai", model="gpt-image-1")
    image.file.save("dot.png", ContentFile(PNG_1X1), save=True)
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert f'href="/attachments/{attachment.pk}/"' in page
    assert f'src="/images/{image.pk}/"' in page and "download" in page
    assert alice_client.get(f"/images/{image.pk}/").status_code == 200
    assert mallory_client.get(f"/images/{image.pk}/").status_code == 404
    assert mallory_client.get(f"/attachments/{attachment.pk}/").status_code == 404


def test_another_users_chat_is_404_everywhere(mallory_client: Any, alice_rows: dict[str, Any]) -> None:
    chat = alice_rows["chat"]
    assert mallory_client.get(f"/chats/{chat.pk}/").status_code == 404
    assert mallory_client.htmx_post(f"/chats/{chat.pk}/rename/", {"title": "pwned"}).status_code == 404
    assert mallory_client.htmx_post(f"/chats/{chat.pk}/delete/").status_code == 404
    upload = mallory_client.post(
        f"/chats/{chat.pk}/attachments/",
        {"file": ContentFile(PNG_1X1, name="x.png")},
        headers={"X-CSRFToken": mallory_client.csrf()},
    )
    assert upload.status_code == 404
    chat.refresh_from_db()
    assert chat.title == "Alice's plans"


def test_rename_with_htmx_returns_the_list_item(alice_client: Any, alice_rows: dict[str, Any]) -> None:
    chat = alice_rows["chat"]
    assert alice_client.post(f"/chats/{chat.pk}/rename/", {"title": "x"}).status_code == 403
    response = alice_client.htmx_post(f"/chats/{chat.pk}/rename/", {"title": "  Trip to Lisbon "})
    body = response.content.decode()
    assert response.status_code == 200 and f'id="chat-item-{chat.pk}"' in body and "Trip to Lisbon" in body
    assert "<html" not in body
    chat.refresh_from_db()
    assert chat.title == "Trip to Lisbon"
    plain = alice_client.post_form(f"/chats/{chat.pk}/rename/", {"title": "Plain form"})
    assert plain.status_code == 302


def test_delete_removes_the_chat(alice_client: Any, alice_rows: dict[str, Any], user: Any) -> None:
    chat = alice_rows["chat"]
    other = chat_create(user=user, title="keep me")
    assert alice_client.post(f"/chats/{chat.pk}/delete/").status_code == 403
    response = alice_client.htmx_post(f"/chats/{chat.pk}/delete/", current="/")
    assert response.status_code == 200 and response.content == b""
    assert not Chat.objects.filter(pk=chat.pk).exists()
    on_page = alice_client.htmx_post(f"/chats/{other.pk}/delete/", current=f"/chats/{other.pk}/")
    assert on_page["HX-Redirect"] == "/"


def test_long_chats_show_the_newest_page_and_load_earlier_ones(
    alice_client: Any, mallory_client: Any, alice_rows: dict[str, Any]
) -> None:
    chat = alice_rows["chat"]
    parent = None
    for i in range(250):
        parent = Message.objects.create(
            chat=chat, parent=parent, role="user" if i % 2 == 0 else "assistant", content=f"message number {i}."
        )
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert "message number 249." in page and "message number 150." in page and "message number 149." not in page
    seen = page.count('" id="msg-')
    cursor = re.search(r"history/\?before=(\d+)", page)
    while cursor:
        url = f"/chats/{chat.pk}/history/?before={cursor.group(1)}"
        assert mallory_client.get(url, headers={"HX-Request": "true"}).status_code == 404
        more = alice_client.get(url, headers={"HX-Request": "true"}).content.decode()
        assert "<html" not in more
        seen += more.count('" id="msg-')
        cursor = re.search(r"history/\?before=(\d+)", more)
    assert seen == 250 and "message number 0." in more
    assert alice_client.get(f"/chats/{chat.pk}/history/").status_code == 400


def test_the_chat_page_costs_the_same_queries_with_one_profile_or_twenty(
    alice_client: Any, alice_rows: dict[str, Any], user: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from providers.services import connection_profile_create

    page = f"/chats/{alice_rows['chat'].pk}/"
    alice_client.get(page)  # sessions, templates and the like warmed up
    with CaptureQueriesContext(connection) as one:
        assert alice_client.get(page).status_code == 200
    for n in range(19):
        plugin = ("qtap-plugin-ollama", "qtap-plugin-openai-compatible")[n % 2]
        connection_profile_create(
            user=user, name=f"Local {n}", plugin=plugin, model="m", base_url="http://127.0.0.1:9/v1"
        )
    with CaptureQueriesContext(connection) as twenty:
        response = alice_client.get(page)
    assert response.content.decode().count("<option value=") >= 20
    assert len(twenty.captured_queries) == len(one.captured_queries), [q["sql"] for q in twenty.captured_queries]
