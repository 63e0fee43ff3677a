"""Chat services: creating, renaming and deleting chats, the state a tab receives on connect, and what
a generation needs from the database before its upstream call (profile, plugin, key, request).
Starting generations lives in ``qtap_site.chat.sending``; saving their text in ``qtap_site.chat.saves``.

Everything here is synchronous Django; the async runner (``qtap_site.chat.runner``) calls it through
``database_sync_to_async`` so the per-token path never touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from providers.models import ConnectionProfile
from qtap_site.chat.models import Chat, Message
from qtap_site.chat.protocol import Forbidden, NotFound, message_dict

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


# ---- branches ---------------------------------------------------------------------------------


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
