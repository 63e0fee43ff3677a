"""The branches of a chat on screen: ``chat.state`` (what a tab draws on connect, the visible branch's
tail), each message's ``siblings`` (edits and regenerations of it), and ``branch.select``, which makes a
sibling's branch the visible one for every tab by stamping it (``Message.selected_mark``; how a branch is
chosen is ``services.visible_path``). An edit itself is a send (``sending``, ``SendRequest.edit_id``).

Synchronous Django, called through ``database_sync_to_async``.

May import: ``models``, ``protocol``, ``services``, ``tool_frames``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from qtap_site.chat.models import Message
from qtap_site.chat.protocol import Busy, NotFound, message_dict
from qtap_site.chat.services import (
    Node,
    branch_to,
    chat_for_user,
    live_streaming,
    recover_stale_messages,
    tree_of,
    visible_path,
)
from qtap_site.chat.tool_frames import calls_of

# Sent with ``chat_id`` when a chat's visible branch changed: the pick is a queryset update, which sends
# no ``post_save``, and what a chat's next send continues must not be guessed from the old branch.
branch_selected = Signal()

TAIL_LENGTH = 50


def siblings_of(nodes: Mapping[int, Node], ids: Iterable[int]) -> dict[int, list[int]]:
    """message → its siblings' ids and its own, oldest first, for those of ``ids`` that have siblings."""
    ids = list(ids)
    wanted = {nodes[pk][0] for pk in ids if pk in nodes}
    by_parent: defaultdict[int | None, list[int]] = defaultdict(list)
    for pk, (parent, _) in sorted(nodes.items()):
        if parent in wanted:
            by_parent[parent].append(pk)
    return {pk: by_parent[nodes[pk][0]] for pk in ids if pk in nodes and len(by_parent[nodes[pk][0]]) > 1}


def tail_shapes(nodes: Mapping[int, Node], ids: list[int]) -> list[dict[str, Any]]:
    """The messages ``ids`` in the shape frames carry them, each with its ``siblings`` when it has some."""
    by_id = {m.pk: m for m in Message.objects.filter(pk__in=ids).prefetch_related("attachments", "tool_calls")}
    siblings = siblings_of(nodes, ids)
    return [
        message_dict(by_id[pk], list(by_id[pk].attachments.all()), siblings=siblings.get(pk))
        for pk in ids
        if pk in by_id
    ]


def chat_state(*, user_id: int, chat_id: int) -> dict[str, Any]:
    """The ``chat.state`` payload; ``generation`` is the database's running-generation record (the
    runner replaces it with its exact in-process state when the generation runs in this process)."""
    chat = chat_for_user(user_id=user_id, chat_id=chat_id)
    recover_stale_messages(chat_id=chat.pk)
    nodes = tree_of([chat.pk]).get(chat.pk, {})
    tail = tail_shapes(nodes, visible_path(nodes)[-TAIL_LENGTH:])
    running = Message.objects.filter(chat_id=chat.pk).filter(live_streaming()).order_by("-id").first()
    generation = None
    if running is not None:
        generation = {
            "message_id": running.pk,
            "content": running.content,
            "reasoning": running.reasoning,
            "seq": running.seq,
        }
        if calls := calls_of(running):
            generation["tool_calls"] = calls
    return {
        "chat": {"id": chat.pk, "title": chat.title, "profile_id": chat.profile_id},
        "messages_tail": tail,
        "generation": generation,
    }


def select_branch(*, user_id: int, chat_id: int, message_id: int) -> list[dict[str, Any]]:
    """Make the branch through ``message_id`` the visible one; answer ``chat.branch``'s ``messages_tail``.

    The message and every message above it are stamped as picked, so the branch shows even when a tab
    picked it from a stale view; below it, each level keeps the child picked (or made) most recently.
    Refused while a reply is being written in the chat: its frames would go to a branch no tab shows.
    """
    chat = chat_for_user(user_id=user_id, chat_id=chat_id)
    with transaction.atomic():
        nodes = tree_of([chat.pk]).get(chat.pk, {})
        if message_id not in nodes:  # the chat's own messages only: another chat's id is not found
            raise NotFound("That message does not exist in this chat.")
        if Message.objects.filter(chat_id=chat.pk).filter(live_streaming()).exists():
            raise Busy("A reply is being written in this chat; switch branches when it has ended.")
        before = visible_path(nodes)
        above = branch_to({pk: node[0] for pk, node in nodes.items()}, message_id)
        mark = max(nodes)  # a message made after this pick has a higher id, and shows instead
        Message.objects.filter(pk__in=above, chat_id=chat.pk).update(selected_mark=mark, selected_at=timezone.now())
    branch_selected.send(sender=Message, chat_id=chat.pk)
    nodes = tree_of([chat.pk]).get(chat.pk, {})
    after = visible_path(nodes)
    # From the chosen message down; from higher up if the tab picked it from a view that was out of date.
    start = after.index(message_id)
    start = next((i for i, (old, new) in enumerate(zip(before, after, strict=False)) if old != new), start)
    return tail_shapes(nodes, after[min(start, after.index(message_id)) :])
