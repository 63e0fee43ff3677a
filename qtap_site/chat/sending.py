"""The database side of ``message.send``, for many sends at once.

Every send saves the user's message and a "streaming" placeholder, checks the chat and the user's
capacity, and gathers what the provider call needs (profile, key, history). Done one send at a time,
that is about ten ORM statements, and under a burst (200 tabs pressing Enter together) the sends
queue on the database thread: the last one waited for all the others before its request left.
Here a whole batch costs the same ten statements, each covering every send of the batch, in one
transaction. Each send still gets its own answer: a refused one (someone else's chat, a busy chat,
a missing attachment) is refused alone, and the others go ahead; and a send that breaks the batch's
statements (a value the database cannot take) fails alone too, because ``prepare_each`` then
prepares every send of that batch on its own.

``qtap_site.chat.send_queue`` collects the batches; ``services.prepare_generation`` is the same path
for a single send, and for a regeneration (a new sibling of an assistant message), done one at a time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from providers.errors import UnknownProviderError
from providers.models import ConnectionProfile, PluginState
from providers.registry import registry
from qtap_site.chat import protocol, services
from qtap_site.chat.models import Attachment, Chat, Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRequest:
    user_id: int
    chat_id: int
    content: str = ""
    attachment_ids: tuple[int, ...] = ()
    profile_id: int | None = None
    client_msg_id: str | None = None


@dataclass
class _Accepted:
    index: int
    send: SendRequest
    chat: Chat
    profile: ConnectionProfile | None
    attachments: list[Attachment]
    branch: list[int]
    user_message: Message | None = None
    assistant: Message | None = None


Outcome = services.Prepared | protocol.ChatServiceError


def prepare_each(sends: list[SendRequest]) -> list[Outcome | Exception]:
    """``prepare_sends`` for a batch of several people's sends, where a send's failure must be its own:
    if the batch fails, each send is prepared again on its own, in its own transaction, and one that
    still fails answers its own exception. The batch's transaction rolled back, so nothing is saved
    twice. (A batch fails whole while the database is unavailable; then every send fails again, alone.)
    """
    try:
        return list(prepare_sends(sends))
    except Exception:
        if len(sends) == 1:
            raise
        logger.warning("a batch of %d sends failed; preparing them one by one", len(sends), exc_info=True)
    outcomes: list[Outcome | Exception] = []
    for send in sends:
        try:
            outcomes.extend(prepare_sends([send]))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def prepare_sends(sends: list[SendRequest]) -> list[Outcome]:
    """One outcome per send, in order: its ``Prepared`` generation, or the error that refused it.

    Raises only if the transaction failed, so nothing was saved. After it commits, a failure is
    reported on the reply it concerns (``Prepared.error``), never raised: those rows exist.
    """
    outcomes: list[Outcome | None] = [None] * len(sends)
    now = timezone.now()
    with transaction.atomic():
        accepted = _accept(sends, outcomes)
        if accepted:
            _save(accepted, now)
    enabled: dict[str, bool] | None = None
    history: dict[int, Message] | None = None
    try:
        enabled = _plugin_states({a.profile.plugin for a in accepted if a.profile is not None})
        history = _history_messages(accepted)
    except Exception:  # each send's provider call reads what it needs on its own instead
        logger.warning("preloading the history of %d sends failed", len(accepted), exc_info=True)
    for item in accepted:
        outcomes[item.index] = _prepared(item, enabled, history)
    return [outcome for outcome in outcomes if outcome is not None]


# ---- regeneration: one at a time (a rare, single action) ------------------------------------------


def prepare_regeneration(
    *, user_id: int, chat_id: int, profile_id: int | None, regenerate_id: int
) -> services.Prepared:
    """A sibling of an assistant message: a new placeholder under the same user message."""
    now = timezone.now()
    with transaction.atomic():
        # The chat's profile and key come in the same query; only the chat's row is locked (on
        # PostgreSQL a lock cannot reach the nullable side of the outer join).
        chat = _first(
            Chat.objects.select_for_update(of=("self",))
            .select_related("profile__api_key")
            .filter(pk=chat_id, user_id=user_id)
            .order_by()
        )
        if chat is None:
            raise protocol.NotFound("That chat does not exist.")
        profile = _resolve_profile(user_id, chat, profile_id)
        target = _first(Message.objects.filter(pk=regenerate_id, chat_id=chat.pk))
        if target is None or target.role != Message.Role.ASSISTANT or target.parent_id is None:
            raise protocol.NotFound("That assistant message does not exist in this chat.")
        user_message = Message.objects.get(pk=target.parent_id)
        attachments: list[Attachment] = list(user_message.attachments.all())
        history = services.active_branch(chat.pk, leaf_id=user_message.pk)[:-1]
        _check_capacity(user_id, chat)
        assistant = Message.objects.create(
            chat=chat,
            parent=user_message,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            plugin=profile.plugin if profile else "",
            model=profile.model if profile else "",
            heartbeat_at=now,
        )
        updates: dict[str, Any] = {"updated_at": now}
        if profile is not None and chat.profile_id != profile.pk:
            updates["profile_id"] = profile.pk
        Chat.objects.filter(pk=chat.pk).update(**updates)

    prepared = services.Prepared(
        chat_id=chat.pk,
        user_id=user_id,
        assistant_id=assistant.pk,
        user_message=None,
        assistant_message=services.message_dict(assistant, []),
        profile_id=profile.pk if profile else None,
        plugin=profile.plugin if profile else "",
        model=profile.model if profile else "",
    )
    prepared.error = services.resolve_provider(prepared, profile, chat, history, user_message, attachments)
    return prepared


def _resolve_profile(user_id: int, chat: Chat, profile_id: int | None) -> ConnectionProfile | None:
    profiles = ConnectionProfile.objects.filter(user_id=user_id).select_related("api_key").order_by()
    if profile_id is None and chat.profile_id is not None:
        profile_id = chat.profile_id
        if chat.profile is not None and chat.profile.user_id == user_id:
            return chat.profile  # came with the chat's row (select_related): no query
        return _first(profiles.filter(pk=profile_id))
    if profile_id is not None:
        profile = _first(profiles.filter(pk=profile_id))
        if profile is None:
            raise protocol.NotFound("That connection profile does not exist.")
        return profile
    return profiles.filter(is_default=True).order_by("pk").first()


def _first(queryset: Any) -> Any:
    """The first row of a query whose order does not matter (``first()`` would add an ORDER BY)."""
    return next(iter(queryset[:1]), None)


def _check_capacity(user_id: int, chat: Chat) -> None:
    # One query answering one row: the chats of this user with a live generation (any process), and
    # whether this chat is one of them. Fetching the busy chats' ids instead cost a row per running
    # generation on every send: at 200 streams that was the largest part of the send transaction.
    live = Message.objects.filter(services.live_streaming(), chat__user_id=user_id).order_by()
    found = live.aggregate(chats=Count("chat_id", distinct=True), here=Count("pk", filter=Q(chat_id=chat.pk)))
    if found["here"]:
        raise protocol.Busy()
    limit = int(settings.QTAP_MAX_CONCURRENT_GENERATIONS)
    if found["chats"] >= limit:
        raise protocol.RateLimited.at(limit)


# ---- reads and checks, in bulk -------------------------------------------------------------------


def _accept(sends: list[SendRequest], outcomes: list[Outcome | None]) -> list[_Accepted]:
    # Locked in id order, so two processes locking overlapping batches cannot deadlock (PostgreSQL;
    # SQLite takes the whole database for the transaction anyway).
    chats = {
        chat.pk: chat
        for chat in Chat.objects.select_for_update(of=("self",))
        .select_related("profile__api_key")
        .filter(pk__in={s.chat_id for s in sends})
        .order_by("pk")
    }
    users = {s.user_id for s in sends}
    profiles = _profiles(sends, chats)
    attachments = _attachments(sends)
    busy = _busy_chats(users)
    branches = _branches({s.chat_id for s in sends if s.chat_id in chats})
    limit = int(settings.QTAP_MAX_CONCURRENT_GENERATIONS)
    accepted = []
    for index, send in enumerate(sends):
        try:
            chat = chats.get(send.chat_id)
            if chat is None or chat.user_id != send.user_id:
                raise protocol.NotFound("That chat does not exist.")
            profile = _profile_for(send, chat, profiles)
            files = [attachments[pk] for pk in dict.fromkeys(send.attachment_ids) if pk in attachments]
            if len(files) != len(set(send.attachment_ids)) or any(a.owner_id != send.user_id for a in files):
                raise protocol.NotFound("One of the attachments does not exist.")
            if not send.content.strip() and not files:
                raise protocol.ChatServiceError("A message needs some text or an attachment.")
            user_busy = busy[send.user_id]
            if chat.pk in user_busy:
                raise protocol.Busy()
            if len(user_busy) >= limit:
                raise protocol.RateLimited.at(limit)
        except protocol.ChatServiceError as exc:
            outcomes[index] = exc
            continue
        user_busy.add(chat.pk)  # a second send to this chat in the same batch is busy
        accepted.append(_Accepted(index, send, chat, profile, files, branches.get(chat.pk, [])))
    return accepted


def _profiles(sends: list[SendRequest], chats: dict[int, Chat]) -> dict[Any, ConnectionProfile]:
    """Profiles named by a send (by id) and the users' default profiles (by ``("default", user)``)."""
    wanted = {s.profile_id for s in sends if s.profile_id is not None}
    wanted |= {c.profile_id for c in chats.values() if c.profile_id is not None and c.profile is None}
    found: dict[Any, ConnectionProfile] = {}
    if wanted:
        found.update({p.pk: p for p in ConnectionProfile.objects.filter(pk__in=wanted).select_related("api_key")})
    without = {
        s.user_id for s in sends if s.profile_id is None and s.chat_id in chats and chats[s.chat_id].profile_id is None
    }
    if without:
        defaults = ConnectionProfile.objects.filter(user_id__in=without, is_default=True).select_related("api_key")
        for profile in defaults.order_by("-pk"):  # the lowest id wins, as ``first()`` did
            found[("default", profile.user_id)] = profile
    return found


def _profile_for(send: SendRequest, chat: Chat, profiles: dict[Any, ConnectionProfile]) -> ConnectionProfile | None:
    if send.profile_id is not None:
        profile = profiles.get(send.profile_id)
        if profile is None or profile.user_id != send.user_id:
            raise protocol.NotFound("That connection profile does not exist.")
        return profile
    if chat.profile_id is not None:
        if chat.profile is not None and chat.profile.user_id == send.user_id:
            return chat.profile
        profile = profiles.get(chat.profile_id)
        return profile if profile is not None and profile.user_id == send.user_id else None
    return profiles.get(("default", send.user_id))


def _attachments(sends: list[SendRequest]) -> dict[int, Attachment]:
    ids = {pk for s in sends for pk in s.attachment_ids}
    return {a.pk: a for a in Attachment.objects.filter(pk__in=ids)} if ids else {}


def _busy_chats(users: set[int]) -> defaultdict[int, set[int]]:
    """user → the chats with a live generation (any process)."""
    live = Message.objects.filter(services.live_streaming(), chat__user_id__in=users).order_by()
    busy: defaultdict[int, set[int]] = defaultdict(set)
    for user_id, chat_id in live.values_list("chat__user_id", "chat_id").distinct():
        busy[user_id].add(chat_id)
    return busy


def _branches(chat_ids: set[int]) -> dict[int, list[int]]:
    """chat → the ids of its active branch, root first (as ``services.active_branch``)."""
    if not chat_ids:
        return {}
    parents: defaultdict[int, dict[int, int | None]] = defaultdict(dict)
    for chat_id, pk, parent_id in (
        Message.objects.filter(chat_id__in=chat_ids).order_by().values_list("chat_id", "id", "parent_id")
    ):
        parents[chat_id][pk] = parent_id
    return {chat_id: services.branch_to(rows, max(rows)) for chat_id, rows in parents.items()}


# ---- writes, in bulk ------------------------------------------------------------------------------


def _save(accepted: list[_Accepted], now: Any) -> None:
    users = [
        Message(
            chat=item.chat,
            parent_id=item.branch[-1] if item.branch else None,
            role=Message.Role.USER,
            content=item.send.content,
            client_msg_id=item.send.client_msg_id or "",
        )
        for item in accepted
    ]
    Message.objects.bulk_create(users)  # answers the new ids (SQLite ≥ 3.35, PostgreSQL)
    links = [
        Message.attachments.through(message_id=message.pk, attachment_id=attachment.pk)
        for item, message in zip(accepted, users, strict=True)
        for attachment in item.attachments
    ]
    if links:
        Message.attachments.through.objects.bulk_create(links)
    assistants = [
        Message(
            chat=item.chat,
            parent=message,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            plugin=item.profile.plugin if item.profile else "",
            model=item.profile.model if item.profile else "",
            heartbeat_at=now,
        )
        for item, message in zip(accepted, users, strict=True)
    ]
    Message.objects.bulk_create(assistants)
    renamed = []
    for item, user_message, assistant in zip(accepted, users, assistants, strict=True):
        item.user_message, item.assistant = user_message, assistant
        chat, before = item.chat, (item.chat.profile_id, item.chat.title)
        if item.profile is not None and chat.profile_id != item.profile.pk:
            chat.profile = item.profile
        if not chat.title and item.send.content.strip():
            chat.title = " ".join(item.send.content.split())[: services.TITLE_LENGTH]
        if (chat.profile_id, chat.title) != before:
            renamed.append(chat)
    # Every chat moves to the top of its list in one plain UPDATE; only the chats that also get a
    # title or a new profile (a first message, a profile switch) go through a bulk update, whose CASE
    # per row cost more than all the other statements of a batch together when every chat had one.
    Chat.objects.filter(pk__in=[item.chat.pk for item in accepted]).update(updated_at=now)
    if renamed:
        Chat.objects.bulk_update(renamed, ["title", "profile"])


# ---- what the provider call needs ------------------------------------------------------------------


def _plugin_states(plugins: set[str]) -> dict[str, bool]:
    """Whether each plugin in use is enabled, by plugin name (as ``plugin_is_enabled``, in one query)."""
    manifests = {}
    for name in plugins:
        try:
            manifest = registry.get(name).manifest
        except UnknownProviderError:
            continue  # resolve_provider answers "provider_unavailable" for it
        manifests[manifest.name] = manifest
    if not manifests:
        return {}
    stored = dict(PluginState.objects.filter(name__in=manifests).values_list("name", "enabled"))
    return {name: bool(stored.get(name, manifest.enabled_by_default)) for name, manifest in manifests.items()}


def _history_messages(accepted: list[_Accepted]) -> dict[int, Message]:
    ids = {pk for item in accepted for pk in item.branch}
    if not ids:
        return {}
    return {m.pk: m for m in Message.objects.filter(pk__in=ids).prefetch_related("attachments")}


def _prepared(
    item: _Accepted, enabled: dict[str, bool] | None, history: dict[int, Message] | None
) -> services.Prepared:
    assert item.user_message is not None and item.assistant is not None
    profile = item.profile
    prepared = services.Prepared(
        chat_id=item.chat.pk,
        user_id=item.send.user_id,
        assistant_id=item.assistant.pk,
        user_message=services.message_dict(item.user_message, item.attachments),
        assistant_message=services.message_dict(item.assistant, []),
        profile_id=profile.pk if profile else None,
        plugin=profile.plugin if profile else "",
        model=profile.model if profile else "",
    )
    try:
        prepared.error = services.resolve_provider(
            prepared,
            profile,
            item.chat,
            item.branch,
            item.user_message,
            item.attachments,
            enabled=enabled,
            messages=history,
        )
    except Exception:  # its reply ends with this error; the batch's other replies go ahead
        logger.exception("the provider call of message %s could not be prepared", item.assistant.pk)
        prepared.error = ("internal", "The server could not prepare this reply; try again.")
    return prepared
