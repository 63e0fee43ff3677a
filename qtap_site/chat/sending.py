"""The database side of ``message.send``, ``message.regenerate`` and ``message.edit``, many at once, and
the provider request each becomes.

A send saves the user's message and a "streaming" placeholder (a regeneration only the placeholder, a
new sibling under the same user message; an edit a new user message beside the one edited, with its
files) at the end of the chat's visible branch (``services.visible_path``), checks the chat and the
user's capacity and gathers what the call needs. One at a time that is about ten statements, and
under a burst (200 tabs pressing Enter together) sends queued on the database thread; a batch costs
the same ten, in one transaction. Each send still gets its own answer: a refused one is refused
alone, and one that breaks the batch's statements (a value the database cannot take) fails alone
too (``prepare_each``).

Synchronous Django; ``batching`` collects the batches.

May import: ``attachments``, ``models``, ``protocol``, ``services``; ``qtap_site.budgets.guard``, the budget
check; ``qtap_site.bulk_rows``, the batch's writes as plain statements.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from providers import contract
from providers.calls import CallRefused, resolve_profile_call
from providers.models import ConnectionProfile, PluginState
from providers.reasoning import dropped_note
from providers.registry import registry
from qtap_site import bulk_rows
from qtap_site.budgets import guard
from qtap_site.chat import attachments, protocol, services
from qtap_site.chat.models import Attachment, Chat, Message

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendRequest:
    """A ``message.send``, or with ``regenerate_id`` a ``message.regenerate`` (of that assistant message),
    or with ``edit_id`` a ``message.edit`` (``content`` in place of that user message)."""

    user_id: int
    chat_id: int
    content: str = ""
    attachment_ids: tuple[int, ...] = ()
    profile_id: int | None = None
    client_msg_id: str | None = None
    regenerate_id: int | None = None
    edit_id: int | None = None
    planned: bool = False  # its call left early, from the chat's plan (``plans.prepare`` may write it)


@dataclass
class Prepared:
    """Everything the runner needs, gathered in one trip to the database thread."""

    chat_id: int
    user_id: int
    assistant_id: int
    user_message: dict[str, Any] | None  # None for a regeneration: its user message exists already
    assistant_message: dict[str, Any]
    profile_id: int | None = None
    plugin: str = ""
    model: str = ""
    provider_name: str = ""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    request: contract.ChatRequest | None = None
    error: tuple[str, str] | None = None  # (generation.error code, message) found before any network
    tools: tuple[str, ...] = ()  # the tools on for this reply (names, or tool plugins for all of theirs)
    notes: str = ""  # what the person is told about the request (parameters their model does not take)
    renamed: dict[str, Any] | None = None  # {id, title} when this send gave its chat its title (chat.updated)
    chat_facts: tuple[Any, ...] = ()  # the chat row as this send left it (``chat_facts``; a plan checks it)


def chat_facts(chat: Chat) -> tuple[Any, ...]:
    """What of the chat row the next send's plan depends on (``plans.prepare`` reads it back)."""
    return (chat.user_id, chat.profile_id, chat.title, chat.system_prompt, chat.tools)


Outcome = Prepared | protocol.ChatServiceError


class AttachmentRefused(protocol.ChatServiceError):
    """A send with a file its profile's provider or model does not take: refused (an ``error`` frame)
    before anything is saved, so no reply starts only to fail. The page refuses it before uploading."""

    code = protocol.UNSUPPORTED_ATTACHMENT


@dataclass
class _Accepted:
    index: int
    send: SendRequest
    chat: Chat
    profile: ConnectionProfile | None
    attachments: list[Attachment]  # the user message's
    history: list[int]  # the active branch before the user message, root first
    user_message: Message | None = None  # a regeneration's from the start, a send's once saved
    assistant: Message | None = None
    titled: bool = False  # this send gave its chat its title
    siblings: list[int] = field(default_factory=list)  # an edit's or regeneration's siblings-to-be, oldest first


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
    refused: dict[int, tuple[str, str]] = {}
    with transaction.atomic():
        accepted = _accept(sends, outcomes)
        if accepted:
            _save(accepted, now)
            # Over budget: the reply ends with budget_exceeded, before any request (guard's docstring: races).
            refused = guard.refusals([(i.send.user_id, i.assistant.pk) for i in accepted if i.assistant], now)
    enabled: dict[str, bool] | None = None
    history: dict[int, Message] | None = None
    try:
        plugins = {registry.find(item.profile.plugin) for item in accepted if item.profile is not None}
        enabled = PluginState.objects.enabled_states([plugin.manifest for plugin in plugins if plugin is not None])
        history = _history_messages(accepted)
    except Exception:  # each send's provider call reads what it needs on its own instead
        logger.warning("preloading the history of %d sends failed", len(accepted), exc_info=True)
    for item in accepted:
        prepared = outcomes[item.index] = _prepared(item, enabled, history)
        prepared.error = refused.get(prepared.assistant_id, prepared.error)
    return [outcome for outcome in outcomes if outcome is not None]


# ---- reads and checks, in bulk -------------------------------------------------------------------


def _accept(sends: list[SendRequest], outcomes: list[Outcome | None]) -> list[_Accepted]:
    # Locked in id order, so two processes locking overlapping batches cannot deadlock (PostgreSQL;
    # SQLite takes the whole database for the transaction anyway). The chat's profile and key come in
    # the same query; only the chat's row is locked (on PostgreSQL a lock cannot reach the nullable
    # side of the outer join).
    chats = {
        chat.pk: chat
        for chat in Chat.objects.select_for_update(of=("self",))
        .select_related("profile__api_key")
        .filter(pk__in={s.chat_id for s in sends})
        .order_by("pk")
    }
    profiles = services.reply_profiles(sends, chats)
    uploaded = _attachments(sends)
    targets = _regenerated(sends)
    busy = services.live_chats_of({s.user_id for s in sends})
    trees = services.tree_of({s.chat_id for s in sends if s.chat_id in chats})
    limit = int(settings.QTAP_MAX_CONCURRENT_GENERATIONS)
    accepted = []
    for index, send in enumerate(sends):
        try:
            chat = chats.get(send.chat_id)
            if chat is None or chat.user_id != send.user_id:
                raise protocol.NotFound("That chat does not exist.")
            profile = services.reply_profile(send, chat, profiles)
            nodes = trees.get(chat.pk, {})
            rows, siblings = {pk: node[0] for pk, node in nodes.items()}, []
            if send.edit_id is not None:
                edited = targets.get(send.edit_id)
                if edited is None or edited.chat_id != chat.pk:
                    raise protocol.NotFound("That message does not exist in this chat.")
                if edited.role != Message.Role.USER:
                    raise protocol.ChatServiceError("Only your own messages can be edited; regenerate a reply instead.")
                if not send.content.strip():
                    raise protocol.ChatServiceError("An edited message needs some text.")
                files, user_message = list(edited.attachments.all()), None
                history = services.branch_to(rows, edited.pk)[:-1]
                siblings = sorted(pk for pk, parent in rows.items() if parent == edited.parent_id)
            elif send.regenerate_id is None:
                files = [uploaded[pk] for pk in dict.fromkeys(send.attachment_ids) if pk in uploaded]
                if len(files) != len(set(send.attachment_ids)) or any(a.owner_id != send.user_id for a in files):
                    raise protocol.NotFound("One of the attachments does not exist.")
                if not send.content.strip() and not files:
                    raise protocol.ChatServiceError("A message needs some text or an attachment.")
                user_message, history = None, services.visible_path(nodes)
            else:
                target = targets.get(send.regenerate_id)
                user_message = (
                    target.parent if target and target.chat_id == chat.pk and target.role == "assistant" else None
                )
                if user_message is None:
                    raise protocol.NotFound("That assistant message does not exist in this chat.")
                files = list(user_message.attachments.all())
                history = services.branch_to(rows, user_message.pk)[:-1]
                siblings = sorted(pk for pk, parent in rows.items() if parent == user_message.pk)
            # Whatever brought the files (a send, an edit, a regenerate), the reply's profile must take them.
            for file in files:
                if why := attachments.refusal(profile, mime_type=file.mime_type, size=file.size):
                    raise AttachmentRefused(f"{file.filename}: {why}")
            user_busy = busy[send.user_id]
            if chat.pk in user_busy:
                raise protocol.Busy()
            if len(user_busy) >= limit:
                raise protocol.RateLimited.at(limit)
        except protocol.ChatServiceError as exc:
            outcomes[index] = exc
            continue
        user_busy.add(chat.pk)  # a second send to this chat in the same batch is busy
        accepted.append(_Accepted(index, send, chat, profile, files, history, user_message, siblings=siblings))
    return accepted


def _attachments(sends: list[SendRequest]) -> dict[int, Attachment]:
    ids = {pk for s in sends for pk in s.attachment_ids}
    return {a.pk: a for a in Attachment.objects.filter(pk__in=ids)} if ids else {}


def _regenerated(sends: list[SendRequest]) -> dict[int, Message]:
    """The assistant messages to regenerate, with their user message and its attachments, and the user
    messages edited, with theirs."""
    ids = {s.regenerate_id or s.edit_id for s in sends if s.regenerate_id or s.edit_id}
    if not ids:
        return {}
    found = Message.objects.filter(pk__in=ids).select_related("parent")
    found = found.prefetch_related("parent__attachments", "attachments")
    return {m.pk: m for m in found}


def _history_messages(accepted: list[_Accepted]) -> dict[int, Message]:
    ids = {pk for item in accepted for pk in item.history}
    if not ids:
        return {}
    return {m.pk: m for m in Message.objects.filter(pk__in=ids).prefetch_related(*HISTORY_RELATED)}


# ---- writes, in bulk ------------------------------------------------------------------------------


def _save(accepted: list[_Accepted], now: Any) -> None:
    sends = [item for item in accepted if item.user_message is None]
    users = [
        Message(
            chat=item.chat,
            parent_id=item.history[-1] if item.history else None,
            role=Message.Role.USER,
            content=item.send.content,
            client_msg_id=item.send.client_msg_id or "",
        )
        for item in sends
    ]
    bulk_rows.insert(users)  # answers the new ids (SQLite ≥ 3.35, PostgreSQL)
    links = [
        Message.attachments.through(message_id=message.pk, attachment_id=attachment.pk)
        for item, message in zip(sends, users, strict=True)
        for attachment in item.attachments
    ]
    if links:
        Message.attachments.through.objects.bulk_create(links)
    for item, message in zip(sends, users, strict=True):
        item.user_message = message
    assistants = [
        Message.streaming_reply(
            chat=item.chat,
            parent=item.user_message,
            plugin=item.profile.plugin if item.profile else "",
            model=item.profile.model if item.profile else "",
            at=now,
        )
        for item in accepted
    ]
    bulk_rows.insert(assistants)
    renamed = []
    for item, assistant in zip(accepted, assistants, strict=True):
        item.assistant = assistant
        chat, before = item.chat, (item.chat.profile_id, item.chat.title)
        if item.profile is not None and chat.profile_id != item.profile.pk:
            chat.profile = item.profile
        if not chat.title and item.send.content.strip():
            chat.title = " ".join(item.send.content.split())[: services.TITLE_LENGTH]
            item.titled = True
        if (chat.profile_id, chat.title) != before:
            renamed.append(chat)
    # Every chat moves to the top of its list in one plain UPDATE; only the chats that also get a
    # title or a new profile (a first message, a profile switch) get their own values, in one
    # ``bulk_rows.update`` (``bulk_update``'s CASE per row cost more than all the other statements together).
    Chat.objects.filter(pk__in=[item.chat.pk for item in accepted]).update(updated_at=now)
    if renamed:
        bulk_rows.update(renamed, ["title", "profile"])


# ---- what the provider call needs ------------------------------------------------------------------


def _prepared(item: _Accepted, enabled: dict[str, bool] | None, history: dict[int, Message] | None) -> Prepared:
    assert item.user_message is not None and item.assistant is not None
    profile, new = item.profile, item.send.regenerate_id is None
    # The new message's siblings (an edit's user message, a regeneration's reply), itself last.
    mine = [*item.siblings, item.user_message.pk] if new and item.siblings else None
    theirs = [*item.siblings, item.assistant.pk] if not new else None
    prepared = Prepared(
        chat_id=item.chat.pk,
        user_id=item.send.user_id,
        assistant_id=item.assistant.pk,
        user_message=protocol.message_dict(item.user_message, item.attachments, drawn=False, siblings=mine)
        if new
        else None,
        assistant_message=protocol.message_dict(item.assistant, [], drawn=False, siblings=theirs),
        profile_id=profile.pk if profile else None,
        plugin=profile.plugin if profile else "",
        model=profile.model if profile else "",
        renamed={"id": item.chat.pk, "title": item.chat.title} if item.titled else None,
        chat_facts=chat_facts(item.chat),
    )
    try:
        prepared.error = resolve_provider(prepared, item, enabled=enabled, messages=history)
    except Exception:  # its reply ends with this error; the batch's other replies go ahead
        logger.exception("the provider call of message %s could not be prepared", item.assistant.pk)
        prepared.error = (protocol.INTERNAL, "The server could not prepare this reply; try again.")
    return prepared


def resolve_provider(
    prepared: Prepared,
    item: _Accepted,
    *,
    enabled: dict[str, bool] | None = None,
    messages: dict[int, Message] | None = None,
) -> tuple[str, str] | None:
    """Fill in plugin, key and request; answer the (code, message) that stops this generation, if any.

    ``enabled`` (plugin name → enabled) and ``messages`` (the history's rows) may come preloaded
    for many generations at once; what is missing is read here.
    """
    profile = item.profile
    if profile is None:
        return (protocol.NO_PROFILE, "Choose a connection profile for this chat first.")
    try:
        call = resolve_profile_call(profile, enabled=enabled)
    except CallRefused as refused:
        found = registry.find(profile.plugin)
        if found is not None:
            prepared.plugin = found.manifest.name
            prepared.provider_name = found.manifest.provider_name or ""
        return (refused.code, refused.message)
    prepared.plugin, prepared.provider_name = call.plugin, call.provider_name
    for attachment in item.attachments:
        problem = services.attachment_problem(call.config, profile.model, attachment)
        if problem:
            return (protocol.UNSUPPORTED_ATTACHMENT, problem)
    prepared.api_key, prepared.base_url = call.api_key, call.base_url
    prepared.request = services.provider_request(item.chat, profile, call, _turns(item, messages))
    prepared.tools = services.tool_selection(item.chat, profile, call.config)
    prepared.notes = dropped_note(call.config, profile.model, profile.parameters or {})
    return None


def _turns(item: _Accepted, rows: dict[int, Message] | None) -> list[tuple[Message, list[Attachment]]]:
    """The history's messages (preloaded in ``rows``, else read here), then the user message."""
    assert item.user_message is not None
    by_id: dict[int, Message] = rows if rows is not None else {}
    if item.history and rows is None:
        by_id = {m.pk: m for m in Message.objects.filter(pk__in=item.history).prefetch_related(*HISTORY_RELATED)}
    turns = [(by_id[pk], list(by_id[pk].attachments.all())) for pk in item.history if pk in by_id]
    turns.append((item.user_message, item.attachments))
    return turns


# What the history's rows bring along: a turn's files, and a reply's tool calls.
HISTORY_RELATED = ("attachments", "tool_calls")
