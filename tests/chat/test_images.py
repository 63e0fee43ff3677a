"""Image generation from the chat socket: the OpenAI plugin against the local server, files saved
and served to the owner."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from qtap_site.chat.models import GeneratedImage
from tests.chat.conftest import PLUGIN_NAME, open_socket, receive_until, send
from tests.fakes.openai_dialect import PNG_1X1

pytestmark = pytest.mark.django_db(transaction=True)


async def test_images_are_generated_saved_and_served(chat, cookie, fake, image_profile, user, other_user):
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a red cat", "n": 2, "size": "1024x1024"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert [f["type"] for f in frames] == ["image.started", "image.finished"]
    images = frames[-1]["images"]
    assert len(images) == 2
    assert all(image["revised_prompt"] == "A detailed rendering of: a red cat" for image in images)
    sent = fake.requests[-1].json
    assert sent["prompt"] == "a red cat" and sent["n"] == 2 and sent["size"] == "1024x1024"

    rows = await database_sync_to_async(lambda: list(GeneratedImage.objects.filter(chat=chat)))()
    assert {r.pk for r in rows} == {i["id"] for i in images}
    assert all(r.plugin == PLUGIN_NAME and r.model == "dall-e-3" and r.prompt == "a red cat" for r in rows)

    def fetch(as_user, url):
        client = Client()
        client.force_login(as_user)
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.status_code == 200 else b""
        return response.status_code, body

    status, body = await database_sync_to_async(fetch)(user, images[0]["url"])
    assert status == 200 and body == PNG_1X1
    status, _ = await database_sync_to_async(fetch)(other_user, images[0]["url"])
    assert status == 404
    await comm.disconnect()


async def test_no_image_profile(chat, cookie):
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "a dog"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert frames[-1]["type"] == "image.error" and frames[-1]["code"] == "no_profile"
    await comm.disconnect()


async def test_upstream_refusal_is_an_image_error(chat, cookie, fake, image_profile):
    fake.fail_next(
        400,
        {"error": {"message": "Your request was rejected by the safety system.", "type": "invalid_request_error",
                   "code": "content_policy_violation"}},
    )  # fmt: skip
    comm, _ = await open_socket(chat.pk, cookie)
    await send(comm, {"type": "image.generate", "prompt": "something"})
    frames = await receive_until(comm, "image.finished", "image.error")
    assert frames[-1]["type"] == "image.error"
    assert frames[-1]["code"] == "content_filter" and "safety system" in frames[-1]["message"]
    assert not await GeneratedImage.objects.filter(chat=chat).aexists()
    # The socket still works.
    await send(comm, {"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    await comm.disconnect()
