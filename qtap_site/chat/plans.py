"""Plans: the provider call a chat's next plain send will make, known before the send arrives. With a
fresh plan the send's call leaves the moment the frame is read (``runner``), and the send's
transaction only checks and writes (``prepare``) instead of reading the chat, its profile, its key and
its branch again: what a send needs that does not change between sends is reused.

A plan comes from a reply that completed (``relaying.remember``, from the request it made) or from
the chat's rows when a tab opens it (``plan_of``). Every change this process makes to what a plan was
made of forgets it (the receivers below: a message, chat, key, profile or plugin state saved or
deleted, a branch picked); a plan stored after such a change began is refused (``store``'s
``since``), so no plan carries a key read before a rotation. ``prepare`` still checks, inside the
send's transaction, that the chat's rows are as the plan saw them (no message added, the message it
continues unchanged, the same profile, prompt, title and tools) and answers None otherwise: the send
then goes the full way (``sending.prepare_sends``). Plans are used only when one process serves
the site (``delivery.single_process``): a change made in another process would not reach them.

May import: ``branches`` (its signal), ``models``, ``protocol``, ``sending``, ``services``;
``qtap_site.budgets.guard``, the budget check; ``qtap_site.bulk_rows``, the writes as plain statements.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from providers import contract
from providers.calls import CallRefused, resolve_profile_call
from providers.models import ApiKey, ConnectionProfile, PluginState
from providers.reasoning import dropped_note
from qtap_site import bulk_rows
from qtap_site.budgets import guard
from qtap_site.chat import branches, protocol, services
from qtap_site.chat.models import Chat, Message
from qtap_site.chat.sending import HISTORY_RELATED, Prepared, SendRequest, chat_facts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """The next plain send's call (plugin, key, base URL, the request so far: system prompt, the branch
    up to ``parent_id``, parameters) and the rows it was made from, as the send's transaction checks them."""

    user_id: int
    chat_id: int
    profile_id: int
    profile_plugin: str  # as the profile names it (the reply row's ``plugin``)
    plugin: str  # the plugin's manifest name
    provider_name: str
    model: str
    api_key: str | None = field(repr=False)
    base_url: str | None
    request: contract.ChatRequest = field(repr=False)
    notes: str
    parent_id: int | None  # the message the next user message follows (the end of the visible branch)
    parent: tuple[str, str] | None = field(repr=False)  # its (status, content)
    newest_id: int | None  # the chat's newest message
    chat: tuple[Any, ...] = field(repr=False)  # the chat row's (user, profile, title, prompt, tools)
    made_at: float = field(default_factory=time.monotonic)


PLAN_SECONDS = 10.0  # a backstop: every change made in this process forgets the plans at once
MAX_PLANS = 1000  # chats with a plan; expired ones are dropped first, then the oldest
SWEEP_AT = 64  # plans kept before expired ones are dropped (each holds its chat's branch in memory)

# chat id → its plan (this process; a plan is only a guess, checked by the send's transaction)
plans: dict[int, Plan] = {}
# Bumped by every change that forgets plans: a plan made from what was read before is refused.
changes = 0


def fresh(chat_id: int, user_id: int) -> Plan | None:
    plan = plans.get(chat_id)
    if plan is None or plan.user_id != user_id or time.monotonic() - plan.made_at > PLAN_SECONDS:
        return None
    return plan


def store(plan: Plan, *, since: int) -> bool:
    """Keep ``plan`` unless something it may have been made of changed after ``since`` (a ``changes``)."""
    if changes != since:
        return False
    if len(plans) >= min(SWEEP_AT, MAX_PLANS):
        _sweep()
    plans[plan.chat_id] = plan
    return True


def _sweep() -> None:
    now = time.monotonic()
    for chat_id, plan in list(plans.items()):
        if now - plan.made_at > PLAN_SECONDS:
            plans.pop(chat_id, None)
    while len(plans) >= MAX_PLANS:
        plans.pop(next(iter(plans)), None)


def forget(chat_id: int | None = None) -> None:
    """Forget the chat's plan (every plan without ``chat_id``)."""
    global changes
    changes += 1
    if chat_id is None:
        plans.clear()
    else:
        plans.pop(chat_id, None)


# ---- a plan made from the chat's rows, when a tab opens it -------------------------------------------


def plans_of(asked: list[tuple[int, int]]) -> list[Plan | None]:
    """``plan_of`` each (user id, chat id); None for a chat whose plan could not be read (only a guess)."""
    found: list[Plan | None] = []
    for user_id, chat_id in asked:
        try:
            found.append(plan_of(user_id=user_id, chat_id=chat_id))
        except Exception:
            logger.debug("could not plan chat %s", chat_id, exc_info=True)
            found.append(None)
    return found


def plan_of(*, user_id: int, chat_id: int) -> Plan | None:
    """The plan of the chat's next plain send, read from its rows; None when a send would not go the
    plain way (no profile, a plugin switched off, tools on, files in the branch, a reply running).
    Reads the budget rows too, if they are not fresh: the send's call may leave early only if they are."""
    guard.cached_table()
    chat = Chat.objects.select_related("profile__api_key").filter(pk=chat_id, user_id=user_id).first()
    if chat is None:
        return None
    asked = SendRequest(user_id=user_id, chat_id=chat_id)
    profile = services.reply_profile(asked, chat, services.reply_profiles([asked], {chat.pk: chat}))
    if profile is None:
        return None
    try:
        call = resolve_profile_call(profile)
    except CallRefused:
        return None
    if services.tool_selection(chat, profile, call.config):
        return None
    nodes = services.tree_of([chat_id]).get(chat_id, {})
    branch = services.visible_path(nodes)
    rows = {m.pk: m for m in Message.objects.filter(pk__in=branch).prefetch_related(*HISTORY_RELATED)}
    turns = [(rows[pk], list(rows[pk].attachments.all())) for pk in branch if pk in rows]
    if len(turns) != len(branch) or any(files for _, files in turns):
        return None  # a branch with files: its bytes are not kept in memory for a guess
    last = turns[-1][0] if turns else None
    if last is not None and last.status == Message.Status.STREAMING:
        return None
    return Plan(
        user_id=user_id,
        chat_id=chat_id,
        profile_id=profile.pk,
        profile_plugin=profile.plugin,
        plugin=call.plugin,
        provider_name=call.provider_name,
        model=profile.model,
        api_key=call.api_key,
        base_url=call.base_url,
        request=services.provider_request(chat, profile, call, turns),
        notes=dropped_note(call.config, profile.model, profile.parameters or {}),
        parent_id=last.pk if last else None,
        parent=(last.status, last.content) if last else None,
        newest_id=max(nodes, default=None),
        chat=chat_facts(chat),
    )


# ---- the send's transaction, with a plan ----------------------------------------------------------


def prepare(send: SendRequest) -> Prepared | protocol.ChatServiceError | None:
    """One planned send the short way (``prepare_all``)."""
    return prepare_all([send])[0]


Outcome = Prepared | protocol.ChatServiceError | None


def prepare_all(sends: list[SendRequest]) -> list[Outcome]:
    """Planned sends, checked and written in one short transaction: per send, its chat locked and read
    back with its newest message, the message the send follows and the user's running replies (one
    statement; the capacity rule is the full way's, counting the sends accepted before it here); then
    one insert of the user messages, one of the replies and one update of the chats, whatever their
    number. A send answers None when its rows are not as its plan saw them: nothing of it is written,
    and it goes the full way. Raises only if the transaction failed, so nothing was written."""
    outcomes: list[Outcome] = [None] * len(sends)
    accepted: list[tuple[int, SendRequest, Plan]] = []
    limit = int(settings.QTAP_MAX_CONCURRENT_GENERATIONS)
    now = timezone.now()
    with transaction.atomic():
        taken: dict[int, int] = {}  # user → replies accepted above
        planned = [
            (index, send, plan) for index, send in enumerate(sends) if (plan := fresh(send.chat_id, send.user_id))
        ]
        now_rows = _rows_now([plan for _, _, plan in planned])
        for index, send, plan in planned:
            seen, (here, running) = now_rows.get(plan.chat_id, ((), (0, 0)))
            if seen != (plan.chat, plan.newest_id, plan.parent):
                continue
            if here or any(other.chat_id == send.chat_id for _, other, _ in accepted):
                outcomes[index] = protocol.Busy()
            elif running + taken.get(send.user_id, 0) >= limit:
                outcomes[index] = protocol.RateLimited.at(limit)
            else:
                taken[send.user_id] = taken.get(send.user_id, 0) + 1
                accepted.append((index, send, plan))
        if not accepted:
            return outcomes
        users = [
            Message(
                chat_id=send.chat_id,
                parent_id=plan.parent_id,
                role=Message.Role.USER,
                content=send.content,
                client_msg_id=send.client_msg_id or "",
            )
            for _, send, plan in accepted
        ]
        bulk_rows.insert_alike(users, ["chat", "parent", "content", "client_msg_id"])
        assistants = [
            Message.streaming_reply(
                chat_id=send.chat_id, parent_id=user.pk, plugin=plan.profile_plugin, model=plan.model, at=now
            )
            for (_, send, plan), user in zip(accepted, users, strict=True)
        ]
        bulk_rows.insert_alike(assistants, ["chat", "parent", "plugin", "model"])
        titles = [plan.chat[2] or " ".join(send.content.split())[: services.TITLE_LENGTH] for _, send, plan in accepted]
        # Every chat moves to the top of its list in one statement; a chat that also gets a title (its
        # first message) or the profile it replied with (a chat on the user's default takes it on) gets
        # a row of its own.
        Chat.objects.filter(pk__in=[send.chat_id for _, send, _ in accepted]).update(updated_at=now)
        renamed = [
            Chat(pk=send.chat_id, title=title, profile_id=plan.profile_id)
            for (_, send, plan), title in zip(accepted, titles, strict=True)
            if (title, plan.profile_id) != (plan.chat[2], plan.chat[1])
        ]
        bulk_rows.update(renamed, ["title", "profile"])
        refused = guard.refusals(
            [(send.user_id, assistant.pk) for (_, send, _), assistant in zip(accepted, assistants, strict=True)], now
        )
    for (index, send, plan), user, assistant, title in zip(accepted, users, assistants, titles, strict=True):
        outcomes[index] = _prepared(send, plan, user, assistant, title, refused.get(assistant.pk))
    return outcomes


def _prepared(
    send: SendRequest, plan: Plan, user: Message, assistant: Message, title: str, error: tuple[str, str] | None
) -> Prepared:
    turn = contract.Message(role="user", content=send.content)
    user_id, _, _, prompt, tools = plan.chat
    return Prepared(
        chat_id=send.chat_id,
        user_id=send.user_id,
        assistant_id=assistant.pk,
        user_message=protocol.message_dict(user, [], drawn=False),
        assistant_message=protocol.message_dict(assistant, [], drawn=False),
        profile_id=plan.profile_id,
        plugin=plan.plugin,
        model=plan.model,
        provider_name=plan.provider_name,
        base_url=plan.base_url,
        api_key=plan.api_key,
        request=dataclasses.replace(plan.request, messages=(*plan.request.messages, turn)),
        error=error,
        notes=plan.notes,
        renamed={"id": send.chat_id, "title": title} if title != plan.chat[2] else None,
        chat_facts=(user_id, plan.profile_id, title, prompt, tools),
    )


def _rows_now(planned: list[Plan]) -> dict[int, tuple[Any, ...]]:
    """Per chat of ``planned``: the chat row's facts, its newest message's id, the (status, content) of
    the message its plan continues, and the user's running replies (in this chat, in all chats), as they
    are now; the chats' rows locked until the transaction ends (PostgreSQL, in id order; SQLite holds the
    whole database already). One statement for every chat of a batch: the ORM's query building cost more
    than the rest of the transaction together, and a statement per send, each a trip through the
    database driver (and, while the event loop is busy, a wait for the interpreter), was most of a
    200-send batch."""
    found: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(planned), bulk_rows.ROWS_PER_STATEMENT):
        found |= _rows_of(planned[start : start + bulk_rows.ROWS_PER_STATEMENT])
    return found


READ_BACK_COLUMNS = 11  # what ``_rows_of`` picks per chat, as its rows are read below


def _rows_of(planned: list[Plan]) -> dict[int, tuple[Any, ...]]:
    if not planned:
        return {}
    quote = connection.ops.quote_name
    chats, messages = quote(Chat._meta.db_table), quote(Message._meta.db_table)
    lock = " FOR UPDATE OF c" if connection.features.has_select_for_update_of else ""
    # A running reply is ``services.live_streaming``'s: streaming, with a fresh heartbeat.
    live = "m.status = %s AND m.heartbeat_at >= %s"
    since = connection.ops.adapt_datetimefield_value(timezone.now() - services.stale_after())
    # Typed, so that a batch whose every parent is NULL still compares as ids (PostgreSQL).
    asked = ", ".join(["(CAST(%s AS BIGINT), CAST(%s AS BIGINT))"] * len(planned))
    # Only placeholders and quoted model identifiers are formatted in; every value is a parameter.
    picked = (
        "SELECT c.id, c.user_id, c.profile_id, c.title, c.system_prompt, c.tools, "  # noqa: S608
        f"(SELECT MAX(m.id) FROM {messages} m WHERE m.chat_id = c.id), "
        f"(SELECT p.status FROM {messages} p WHERE p.id = a.parent_id AND p.chat_id = c.id), "
        f"(SELECT p.content FROM {messages} p WHERE p.id = a.parent_id AND p.chat_id = c.id), "
        f"(SELECT COUNT(*) FROM {messages} m WHERE m.chat_id = c.id AND {live}), "
        f"(SELECT COUNT(DISTINCT m.chat_id) FROM {messages} m JOIN {chats} o ON o.id = m.chat_id "
        f"WHERE o.user_id = c.user_id AND {live}) "
        f"FROM {chats} c JOIN asked a ON a.chat_id = c.id"
    )
    head = f"WITH asked (chat_id, parent_id) AS (VALUES {asked})"
    # SQLite hands a result over a row per step through the driver, and each step gives up the
    # interpreter (beside a busy event loop, a wait of up to a switch interval per chat): there, the
    # rows come back as one JSON row. PostgreSQL's driver reads them all at once, and locks rows only
    # in a plain select.
    packed = connection.vendor == "sqlite"
    if packed:
        names = ", ".join(f"r{at}" for at in range(READ_BACK_COLUMNS))
        sql = f"{head}, found ({names}) AS ({picked}) SELECT json_group_array(json_array({names})) FROM found"  # noqa: S608
    else:
        sql = f"{head} {picked} ORDER BY c.id{lock}"
    streaming = Message.Status.STREAMING
    params = [value for plan in planned for value in (plan.chat_id, plan.parent_id)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, streaming, since, streaming, since])
        rows = json.loads(cursor.fetchone()[0]) if packed else cursor.fetchall()
    tools_field = Chat._meta.get_field("tools")
    found = {}
    for row in rows:
        tools = tools_field.from_db_value(row[5], None, connection)  # type: ignore[arg-type]
        parent = (row[7], row[8]) if row[7] is not None else None
        found[row[0]] = (((row[1], row[2], row[3], row[4], tools), row[6], parent), (row[9], row[10]))
    return found


# ---- what forgets plans -------------------------------------------------------------------------


@receiver(post_save, sender=Message)
@receiver(post_delete, sender=Message)
@receiver(post_save, sender=Chat)
@receiver(post_delete, sender=Chat)
def _chat_changed(instance: Any, **_: Any) -> None:
    """A message edited, added or deleted outside a send, a chat's prompt, tools or profile changed."""
    forget(instance.chat_id if isinstance(instance, Message) else instance.pk)


@receiver(branches.branch_selected)
def _branch_changed(chat_id: int, **_: Any) -> None:
    """Another branch of the chat shows: its next send continues that one, not the plan's."""
    forget(chat_id)


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
@receiver(post_save, sender=ConnectionProfile)
@receiver(post_delete, sender=ConnectionProfile)
@receiver(post_save, sender=PluginState)
@receiver(post_delete, sender=PluginState)
def _call_changed(**_: Any) -> None:
    """A key edited, rotated or deleted, a profile edited, a plugin enabled or disabled: no plan may
    carry the old key, base URL or parameters."""
    forget()
