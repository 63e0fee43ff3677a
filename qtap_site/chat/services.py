"""Chat services: creating, renaming and deleting chats, the state a tab receives on connect, and what
a generation needs from the database before its upstream call (profile, plugin, key, request).
Starting generations lives in ``qtap_site.chat.sending``; saving their text in ``qtap_site.chat.saves``.

Everything here is synchronous Django; the async runner (``qtap_site.chat.runner``) calls it through
``database_sync_to_async`` so the per-token path never touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from providers import contract
from providers.calls import CallRefused, resolve_profile_call
from providers.models import ConnectionProfile
from providers.registry import registry
from qtap_site.chat.attachments import attachment_bytes
from qtap_site.chat.models import Attachment, Chat, Message
from qtap_site.chat.protocol import ChatServiceError, Forbidden, NotFound
from qtap_site.chat.rendering import render_markdown

logger = logging.getLogger(__name__)

TAIL_LENGTH = 50
TITLE_LENGTH = 80


def stale_after() -> timedelta:
    """A "streaming" message whose heartbeat is older than this has no live process behind it."""
    return timedelta(seconds=float(getattr(settings, "QTAP_GENERATION_STALE_SECONDS", 30)))


def live_streaming() -> Q:
    """Messages being generated right now by a live process (its heartbeat is fresh)."""
    return Q(status=Message.Status.STREAMING, heartbeat_at__gte=timezone.now() - stale_after())


# ---- chats -------------------------------------------------------------------------------------


def chat_create(
    *, user: Any, profile: ConnectionProfile | None = None, title: str = "", system_prompt: str = ""
) -> Chat:
    if profile is not None and profile.user_id != user.pk:
        raise NotFound("That connection profile does not exist.")
    return Chat.objects.create(user=user, profile=profile, title=title[:200], system_prompt=system_prompt)


def chat_rename(chat: Chat, title: str) -> Chat:
    chat.title = title.strip()[:200]
    chat.save(update_fields=["title", "updated_at"])
    return chat


def chat_delete(chat: Chat, *, then: Callable[[int], None] | None = None) -> None:
    """Delete the chat and its messages, then call ``then(chat_id)``. The views pass
    ``delivery.stop_chat``: a reply still being written for the chat is stopped, in whichever process
    writes it, so that it does not keep the provider (and the user's quota) busy for nothing."""
    chat_id = chat.pk
    chat.delete()
    if then is not None:
        then(chat_id)


def chat_for_user(*, user_id: int, chat_id: int) -> Chat:
    """The chat, or ``NotFound`` (no such chat) / ``Forbidden`` (someone else's)."""
    chat = Chat.objects.filter(pk=chat_id).first()
    if chat is None:
        raise NotFound("That chat does not exist.")
    if chat.user_id != user_id:
        raise Forbidden("That chat belongs to another user.")
    return chat


# ---- serialisation -----------------------------------------------------------------------------


def attachment_dict(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "filename": attachment.filename,
        "mime_type": attachment.mime_type,
        "size": attachment.size,
        "url": reverse("chat_api:attachment_file", args=[attachment.pk]),
    }


def message_dict(message: Message, attachments: list[Attachment] | None = None) -> dict[str, Any]:
    if attachments is None:
        attachments = list(message.attachments.all())
    return {
        "id": message.pk,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "reasoning": message.reasoning,
        "html": render_markdown(message.content) if message.role == Message.Role.ASSISTANT else "",
        "status": message.status,
        "plugin": message.plugin,
        "model": message.model,
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "cost": float(message.cost) if message.cost is not None else None,
        "finish_reason": message.finish_reason,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "ttft_ms": message.ttft_ms,
        "attachments": [attachment_dict(a) for a in attachments],
        "created_at": message.created_at.isoformat(),
        "client_msg_id": message.client_msg_id or None,
    }


def active_branch(chat_id: int, *, leaf_id: int | None = None) -> list[int]:
    """Ids from the root to ``leaf_id`` (default: the newest message), following parent links."""
    rows = dict(Message.objects.filter(chat_id=chat_id).order_by().values_list("id", "parent_id"))
    if not rows:
        return []
    return branch_to(rows, leaf_id if leaf_id is not None else max(rows))


def branch_to(parents: Mapping[int, int | None], leaf_id: int) -> list[int]:
    """Ids from the root to ``leaf_id``, given every message's parent (a cycle cannot loop forever)."""
    node: int | None = leaf_id
    branch: list[int] = []
    while node is not None and node in parents and len(branch) <= len(parents):
        branch.append(node)
        node = parents[node]
    branch.reverse()
    return branch


def recover_stale_messages(*, chat_id: int | None = None) -> int:
    """Messages left "streaming" by a dead process become "interrupted", keeping their last checkpoint.

    Only rows whose heartbeat is stale are touched: a live generation in another process keeps
    its heartbeat fresh and is left alone.
    """
    cutoff = timezone.now() - stale_after()
    stale = Message.objects.filter(status=Message.Status.STREAMING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
    )
    if chat_id is not None:
        stale = stale.filter(chat_id=chat_id)
    return stale.update(
        status=Message.Status.INTERRUPTED,
        finish_reason="interrupted",
        error_code="interrupted",
        error_message="The server stopped while this reply was being written.",
        updated_at=timezone.now(),
    )


def chat_state(*, user_id: int, chat_id: int) -> dict[str, Any]:
    """The ``chat.state`` payload; ``generation`` is the database's running-generation record (the
    runner replaces it with its exact in-process state when the generation runs in this process)."""
    chat = chat_for_user(user_id=user_id, chat_id=chat_id)
    recover_stale_messages(chat_id=chat.pk)
    branch = active_branch(chat.pk)[-TAIL_LENGTH:]
    messages = Message.objects.filter(pk__in=branch).prefetch_related("attachments")
    by_id = {m.pk: m for m in messages}
    tail = [message_dict(by_id[pk], list(by_id[pk].attachments.all())) for pk in branch if pk in by_id]
    running = Message.objects.filter(chat_id=chat.pk).filter(live_streaming()).order_by("-id").first()
    generation = None
    if running is not None:
        generation = {
            "message_id": running.pk,
            "content": running.content,
            "reasoning": running.reasoning,
            "seq": running.seq,
        }
    return {
        "chat": {"id": chat.pk, "title": chat.title, "profile_id": chat.profile_id},
        "messages_tail": tail,
        "generation": generation,
    }


# ---- the generation's database side --------------------------------------------------------------


@dataclass
class Prepared:
    """Everything the runner needs, gathered in one trip to the database thread."""

    chat_id: int
    user_id: int
    assistant_id: int
    user_message: dict[str, Any] | None
    assistant_message: dict[str, Any]
    profile_id: int | None = None
    plugin: str = ""
    model: str = ""
    provider_name: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    request: contract.ChatRequest | None = None
    error: tuple[str, str] | None = None  # (generation.error code, message) found before any network


def prepare_generation(
    *,
    user_id: int,
    chat_id: int,
    content: str = "",
    attachment_ids: list[int] | tuple[int, ...] = (),
    profile_id: int | None = None,
    client_msg_id: str | None = None,
    regenerate_id: int | None = None,
) -> Prepared:
    """Save the user message (unless regenerating) and a "streaming" placeholder in one short
    transaction, then resolve the profile, plugin and key and build the request."""
    from qtap_site.chat import sending  # it builds on this module

    if regenerate_id is not None:
        return sending.prepare_regeneration(
            user_id=user_id, chat_id=chat_id, profile_id=profile_id, regenerate_id=regenerate_id
        )
    send = sending.SendRequest(user_id, chat_id, content, tuple(attachment_ids), profile_id, client_msg_id)
    outcome = sending.prepare_sends([send])[0]
    if isinstance(outcome, ChatServiceError):
        raise outcome
    return outcome


def resolve_provider(
    prepared: Prepared,
    profile: ConnectionProfile | None,
    chat: Chat,
    history: list[int],
    user_message: Message,
    new_attachments: list[Attachment],
    *,
    enabled: dict[str, bool] | None = None,
    messages: dict[int, Message] | None = None,
) -> tuple[str, str] | None:
    """Fill in plugin, key and request; answer the (code, message) that stops this generation, if any.

    ``enabled`` (plugin name → enabled) and ``messages`` (the history's rows) may come preloaded
    for many generations at once; what is missing is read here.
    """
    if profile is None:
        return ("no_profile", "Choose a connection profile for this chat first.")
    try:
        call = resolve_profile_call(profile, enabled=enabled)
    except CallRefused as refused:
        found = registry.find(profile.plugin)
        if found is not None:
            prepared.plugin = found.manifest.name
            prepared.provider_name = found.manifest.provider_name or ""
        return (refused.code, refused.message)
    prepared.plugin, prepared.provider_name = call.plugin, call.provider_name
    for attachment in new_attachments:
        problem = _attachment_problem(call.config, attachment)
        if problem:
            return ("unsupported_attachment", problem)
    prepared.api_key, prepared.base_url = call.api_key, call.base_url
    prepared.request = _build_request(profile, chat, history, user_message, new_attachments, call.config, rows=messages)
    return None


def _attachment_problem(config: Any, attachment: Attachment) -> str:
    support = config.attachment_support
    accepted = ", ".join(support.mime_types) or "no attachments"
    if not config.accepts_mime_type(attachment.mime_type):
        return (
            f"{config.display_name} cannot take {attachment.filename!r} ({attachment.mime_type}). Accepted: {accepted}."
        )
    if support.max_bytes is not None and attachment.size > support.max_bytes:
        return f"{attachment.filename!r} is larger than the {support.max_bytes} bytes {config.display_name} accepts."
    return ""


def _build_request(
    profile: ConnectionProfile,
    chat: Chat,
    history: list[int],
    user_message: Message,
    new_attachments: list[Attachment],
    config: Any,
    rows: dict[int, Message] | None = None,
) -> contract.ChatRequest:
    """System prompt, the complete messages of ``history`` (the branch before ``user_message``), then
    ``user_message``, with attachments as bytes.

    Older attachments the provider cannot take are left out (their text stays): switching a chat to a
    text-only profile must not make the whole conversation unsendable.
    """
    by_id: dict[int, Message] = rows if rows is not None else {}
    if history and rows is None:
        by_id = {m.pk: m for m in Message.objects.filter(pk__in=history).prefetch_related("attachments")}
    turns = [(by_id[pk], list(by_id[pk].attachments.all())) for pk in history if pk in by_id]
    turns.append((user_message, new_attachments))
    messages: list[contract.Message] = []
    if chat.system_prompt.strip():
        messages.append(contract.Message(role="system", content=chat.system_prompt))
    for message, attachments in turns:
        if message.status != Message.Status.COMPLETE:
            continue
        files = tuple(
            contract.Attachment(filename=a.filename, mime_type=a.mime_type, data=attachment_bytes(a))
            for a in attachments
            if not _attachment_problem(config, a)
        )
        if message.content or files:
            messages.append(contract.Message(role=message.role, content=message.content, attachments=files))  # type: ignore[arg-type]
    params = profile.parameters or {}
    return contract.ChatRequest(
        model=profile.model,
        messages=tuple(messages),
        temperature=params.get("temperature"),
        max_tokens=params.get("max_tokens"),
        top_p=params.get("top_p"),
        stop=tuple(params.get("stop") or ()),
    )
