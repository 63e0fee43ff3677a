"""Security suite fixtures: alice owns one of everything (with recognisable names), mallory owns
nothing, and a scripted OpenAI-dialect server stands in for the provider."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from channels.layers import channel_layers
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from qtap_site.chat import delivery
from tests.support.data import CHAT_COMPLETIONS, SECRET
from tests.support.fixtures import alice_cookie, chat_on_fake, close_worker_connections, scripted_openai

__all__ = [
    "alice_cookie",
    "chat_on_fake",
    "close_worker_connections",
    "fresh_channel_state",
    "owned",
    "scripted_openai",
]

# Strings that only alice's rows contain: a page shown to anyone else must not contain any of them.
MARKERS = {
    "chat": "alice-private-chat-7731",
    "key": "alice-key-label-5521",
    "profile": "alice-profile-9034",
    "image_profile": "alice-image-profile-2207",
    "message": "alice-private-message-4410",
    "attachment": "alice-file-6120.png",
    "import": "alice-import-3318.json",
}


@pytest.fixture(autouse=True)
def fresh_channel_state(close_worker_connections: None) -> Iterator[None]:
    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()
    yield
    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()


def png_bytes(size: tuple[int, int] = (4, 4), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Owned:
    user: Any
    key: Any
    profile: Any
    image_profile: Any
    chat: Any
    message: Any
    attachment: Any
    image: Any
    import_job: Any

    def ids(self) -> dict[str, Any]:
        """URL parameters naming alice's objects, by parameter name."""
        return {
            "chat_id": self.chat.pk,
            "key_id": self.key.pk,
            "profile_id": self.profile.pk,
            "attachment_id": self.attachment.pk,
            "image_id": self.image.pk,
            "import_id": self.import_job.pk,
        }


@pytest.fixture
def owned(transactional_db: None, user: Any, scripted_openai: Any) -> Owned:
    """One of everything, owned by alice (committed, so real servers see it too)."""
    from providers.services import api_key_create, connection_profile_create, image_profile_create
    from qtap_site.chat.attachments import attachment_create
    from qtap_site.chat.models import GeneratedImage, Message
    from qtap_site.chat.services import chat_create
    from qtap_site.transfer.models import ImportJob

    key = api_key_create(user=user, plugin="qtap-plugin-openai", label=MARKERS["key"], secret=SECRET)
    profile = connection_profile_create(
        user=user,
        name=MARKERS["profile"],
        plugin="qtap-plugin-openai",
        model="gpt-4o-mini",
        api_key=key,
        base_url=scripted_openai.base_url,
        is_default=True,
        parameters=CHAT_COMPLETIONS,
    )
    image_profile = image_profile_create(
        user=user,
        name=MARKERS["image_profile"],
        plugin="qtap-plugin-openai",
        model="gpt-image-1",
        api_key=key,
        base_url=scripted_openai.base_url,
        is_default=True,
    )
    chat = chat_create(user=user, profile=profile, title=MARKERS["chat"])
    message = Message.objects.create(chat=chat, role=Message.Role.USER, content=MARKERS["message"])
    attachment = attachment_create(owner=user, filename=MARKERS["attachment"], data=png_bytes())
    image = GeneratedImage(chat=chat, prompt="a red square", plugin="qtap-plugin-openai", model="gpt-image-1")
    image.file.save("square.png", ContentFile(png_bytes(colour="blue")), save=True)
    import_job = ImportJob.objects.create(
        user=user, filename=MARKERS["import"], status="done", finished_at=timezone.now(), chats=[chat.pk]
    )
    return Owned(user, key, profile, image_profile, chat, message, attachment, image, import_job)
