"""A file the chat's profile does not take is refused up front, by one rule (providers.attachment_rules):
the upload answers 400 in words and stores nothing, a send with it answers an ``error`` frame and saves
nothing (no reply that only fails), the page carries the same words, and a sent message shows its
images as inert thumbnails served to their owner only."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from providers import attachment_rules
from providers.registry import registry
from providers.services import connection_profile_create
from qtap_site.chat import attachments, protocol, rendering
from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Attachment, Chat, Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import open_socket, png_bytes, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

REFUSAL = "Ollama's llama3 does not take images."


@pytest.fixture
def text_only(user):
    """A profile whose provider takes images but whose model does not (Ollama's modelRules)."""
    return connection_profile_create(
        user=user, name="Local", plugin="qtap-plugin-ollama", model="llama3", base_url="http://127.0.0.1:9"
    )


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, chat: Chat, data: bytes, name: str = "cat.png", **fields: str):
    return client.post(f"/chats/{chat.pk}/attachments/", {"file": SimpleUploadedFile(name, data), **fields})


def test_the_rule_reads_the_provider_and_the_model():
    ollama = registry.get("qtap-plugin-ollama").manifest.provider_config
    openai = registry.get("qtap-plugin-openai").manifest.provider_config
    assert attachment_rules.refusal(ollama, "llava:7b", mime_type="image/png", size=100) == ""
    assert attachment_rules.refusal(ollama, "llama3", mime_type="image/png", size=100) == REFUSAL
    assert attachment_rules.refusal(ollama, "llava:7b", mime_type="application/pdf", size=100) == (
        "Ollama does not take PDFs. It accepts image/png, image/jpeg."
    )
    assert attachment_rules.refusal(openai, "gpt-4o", mime_type="application/pdf", size=21 * 2**20) == (
        "PDF larger than 20 MB, the most OpenAI accepts."
    )


def test_an_upload_the_chats_profile_refuses_is_400_in_words_and_stores_nothing(client, user, text_only):
    chat = chat_create(user=user, profile=text_only)
    response = upload(client, chat, png_bytes())
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "unsupported_attachment", "message": f"cat.png: {REFUSAL}"}
    assert not Attachment.objects.exists()


def test_the_upload_follows_the_profile_the_page_picked(client, user, other_user, text_only, profile):
    chat = chat_create(user=user, profile=profile)  # the chat's profile takes images; the picker does not
    assert upload(client, chat, png_bytes(), profile_id=str(text_only.pk)).status_code == 400
    assert upload(client, chat, png_bytes(), profile_id=str(profile.pk)).status_code == 201
    theirs = connection_profile_create(
        user=other_user, name="Theirs", plugin="qtap-plugin-ollama", model="llava", base_url="http://127.0.0.1:9"
    )
    assert upload(client, chat, png_bytes(), profile_id=str(theirs.pk)).status_code == 404
    assert Attachment.objects.count() == 1


async def test_a_send_with_a_refused_file_is_an_error_frame_and_saves_nothing(user, cookie, text_only, fake):
    chat = await database_sync_to_async(chat_create)(user=user, profile=text_only)
    # Stored without a profile (as if uploaded for another one), then sent to this chat.
    file = await database_sync_to_async(attachment_create)(owner=user, filename="cat.png", data=png_bytes())
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "What is this?", "attachments": [file.pk]})
    frames = await receive_until(comm, "error", "message.created", "generation.error", timeout=10)
    assert frames[-1] == {"type": "error", "code": "unsupported_attachment", "message": f"cat.png: {REFUSAL}"}
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
    assert not await Message.objects.filter(chat=chat).aexists()
    assert fake.requests == []


def test_the_page_refuses_with_the_servers_own_words(client, user, text_only, profile):
    chat = chat_create(user=user, profile=profile)
    page = client.get(f"/chats/{chat.pk}/").content.decode()
    assert 'src="/static/qtap/attachments.js"' in page and 'aria-describedby="send-blocked"' in page
    rules = attachments.page_rules([text_only, profile])
    assert rules[str(text_only.pk)]["types"]["image/png"]["refused"] == REFUSAL
    assert rules[str(profile.pk)]["types"]["image/png"] == {
        "refused": "",
        "too_large": "PNG image larger than 20 MB, the most OpenAI accepts.",
    }
    assert REFUSAL in page  # in #profile-info, what the page script reads


def test_a_sent_image_is_an_inert_thumbnail_served_to_its_owner_only(client, user, other_user, profile):
    chat = chat_create(user=user, profile=profile)
    image = attachment_create(owner=user, filename="cat.png", data=png_bytes())
    # A name the upload would have cleaned, to show the drawing escapes whatever the row holds.
    Attachment.objects.filter(pk=image.pk).update(filename='"><script>x</script>.png')
    pdf = attachment_create(owner=user, filename="paper.pdf", data=b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF")
    message = Message.objects.create(chat=chat, role="user", content="Look")
    message.attachments.set([image, pdf])
    html = rendering.message_html(protocol.message_dict(message), retryable=False)
    url = f"/attachments/{image.pk}/"
    assert f'<a href="{url}" target="_blank" rel="noopener"' in html and f'<img src="{url}"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert f'href="/attachments/{pdf.pk}/"' in html and "application/pdf" in html
    assert html.count("<img") == 1  # the PDF is a chip, not an image
    page = client.get(f"/chats/{chat.pk}/").content.decode()
    assert f'<img src="{url}"' in page
    assert client.get(url).status_code == 200
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(url).status_code == 404


async def test_the_live_message_carries_its_attachments_and_their_thumbnails(user, cookie, chat, fake):
    file = await database_sync_to_async(attachment_create)(owner=user, filename="red.png", data=png_bytes())
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "message.send", "content": "What is this?", "attachments": [file.pk]})
    frames = await receive_until(comm, "generation.finished", "generation.error", timeout=15)
    await comm.disconnect()
    created = next(f["message"] for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user")
    url = f"/attachments/{file.pk}/"
    assert created["attachments"] == [
        {"id": file.pk, "filename": "red.png", "mime_type": "image/png", "size": file.size, "url": url}
    ]
    assert f'<img src="{url}" alt="red.png"' in created["message_html"]
    later, state = await open_socket(chat.pk, cookie)  # a tab that opens later gets them in chat.state
    await later.disconnect()
    user_message = next(m for m in state["messages_tail"] if m["role"] == "user")
    assert user_message["attachments"] == created["attachments"]
