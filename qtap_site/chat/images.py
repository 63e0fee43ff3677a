"""Image generation from a chat: an ImageProfile's plugin generates, the files are saved as
GeneratedImage rows and every tab of the chat is told (image.started / image.finished / image.error).

May import: ``delivery``, ``models``, ``protocol``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.core.files.base import ContentFile
from django.urls import reverse

from providers import contract
from providers.calls import CallRefused, resolve_profile_call
from providers.errors import ProviderError, QtapProviderError
from providers.factory import create_image_provider
from providers.models import ImageProfile
from qtap_site.chat import protocol
from qtap_site.chat.delivery import send_to_chat
from qtap_site.chat.models import Chat, GeneratedImage

logger = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_tasks: set[asyncio.Task[None]] = set()


@dataclass
class PreparedImage:
    chat_id: int
    plugin: str = ""
    model: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    request: contract.ImageRequest | None = None
    error: tuple[str, str] | None = None


def prepare_image(
    *, user_id: int, chat_id: int, prompt: str, image_profile_id: int | None, options: dict[str, Any]
) -> PreparedImage:
    chat = Chat.objects.filter(pk=chat_id, user_id=user_id).first()
    if chat is None:
        raise protocol.NotFound("That chat does not exist.")
    profiles = ImageProfile.objects.filter(user_id=user_id).select_related("api_key")
    if image_profile_id is not None:
        profile = profiles.filter(pk=image_profile_id).first()
        if profile is None:
            raise protocol.NotFound("That image profile does not exist.")
    else:
        profile = profiles.filter(is_default=True).first() or profiles.first()
    prepared = PreparedImage(chat_id=chat.pk)
    if profile is None:
        prepared.error = (protocol.NO_PROFILE, "Create an image profile first.")
        return prepared
    try:
        call = resolve_profile_call(profile, capability="images")
    except CallRefused as refused:
        prepared.error = (refused.code, refused.message)
        return prepared
    prepared.plugin, prepared.model = call.plugin, profile.model
    prepared.api_key, prepared.base_url = call.api_key, call.base_url
    params = {**(profile.parameters or {}), **{k: v for k, v in options.items() if v is not None}}
    prepared.request = contract.ImageRequest(
        prompt=prompt,
        model=profile.model,
        n=int(params.get("n") or 1),
        size=params.get("size"),
        aspect_ratio=params.get("aspect_ratio"),
        quality=params.get("quality"),
        style=params.get("style"),
        negative_prompt=params.get("negative_prompt"),
        seed=params.get("seed"),
    )
    return prepared


def save_images(
    *, chat_id: int, prompt: str, plugin: str, model: str, images: list[contract.GeneratedImage]
) -> list[dict[str, Any]]:
    saved = []
    for image in images:
        row = GeneratedImage(
            chat_id=chat_id,
            prompt=prompt,
            revised_prompt=image.revised_prompt or "",
            plugin=plugin,
            model=model,
            mime_type=image.mime_type,
        )
        name = f"{uuid.uuid4().hex}.{_EXTENSIONS.get(image.mime_type, 'bin')}"
        row.file.save(name, ContentFile(image.data), save=False)
        row.save()
        saved.append(
            {
                "id": row.pk,
                "url": reverse("chat_api:generated_image_file", args=[row.pk]),
                "revised_prompt": row.revised_prompt or None,
            }
        )
    return saved


async def start_image_generation(prepared: PreparedImage, prompt: str) -> str:
    request_id = uuid.uuid4().hex
    task = asyncio.get_running_loop().create_task(_run(prepared, prompt, request_id))
    _tasks.add(task)  # keep a reference: the loop holds tasks only weakly
    task.add_done_callback(_tasks.discard)
    return request_id


async def _run(prepared: PreparedImage, prompt: str, request_id: str) -> None:
    chat_id = prepared.chat_id
    try:
        await send_to_chat(chat_id, protocol.image_started(request_id, prompt))
        if prepared.error is not None:
            await send_to_chat(chat_id, protocol.image_error(request_id, *prepared.error))
            return
        assert prepared.request is not None
        try:
            provider = create_image_provider(prepared.plugin, api_key=prepared.api_key, base_url=prepared.base_url)
            images = await provider.generate(prepared.request)
            payload = await database_sync_to_async(save_images)(
                chat_id=chat_id, prompt=prompt, plugin=prepared.plugin, model=prepared.model, images=images
            )
        except ProviderError as exc:
            await send_to_chat(chat_id, protocol.image_error(request_id, exc.code, exc.message))
            return
        except QtapProviderError as exc:
            code = getattr(exc, "code", protocol.PROVIDER_UNAVAILABLE)
            await send_to_chat(chat_id, protocol.image_error(request_id, code, str(exc)))
            return
        except Exception:
            logger.exception("image generation in chat %s failed", chat_id)
            await send_to_chat(chat_id, protocol.image_error(request_id, protocol.INTERNAL, "Image generation failed."))
            return
        await send_to_chat(chat_id, protocol.image_finished(request_id, payload))
    except Exception:
        logger.exception("image generation in chat %s could not report its end", chat_id)
