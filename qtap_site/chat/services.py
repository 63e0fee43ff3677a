"""Chats (create, rename, delete, one user's chat), the visible branch of the message tree (what a send
continues; ``branches`` builds the frames that show it), recovery of replies whose process died, which
profile a reply uses and the request it sends its provider. A batch of sends asks the many-chats forms
at the end once for all its chats.

Everything here is synchronous Django; the async rooms call it through ``database_sync_to_async`` so
the per-token path never touches the database. A service that must reach a room below it (deleting a
chat stops its reply) takes a callback.

May import: ``models``, ``protocol``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from providers import attachment_rules, contract
from providers.calls import Call
from providers.models import ConnectionProfile
from providers.reasoning import PLUGIN_OPTIONS, options_from_parameters, refused_parameters, takes_tools
from providers.tool_settings import tool_plugins
from providers.tool_values import unknown_tools
from qtap_site.chat.models import Attachment, Chat, Message
from qtap_site.chat.protocol import Forbidden, NotFound

logger = logging.getLogger(__name__)

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


SYSTEM_PROMPT_LENGTH = 20_000


def chat_set_system_prompt(chat: Chat, text: str, *, profile: ConnectionProfile | None = None) -> Chat:
    """The chat's system prompt (sent first with every request), and its profile when ``profile`` is given
    (a preset that names one); too long a prompt is refused (``ValidationError``)."""
    if len(text) > SYSTEM_PROMPT_LENGTH:
        raise ValidationError(f"A system prompt is at most {SYSTEM_PROMPT_LENGTH} characters.")
    if profile is not None and profile.user_id != chat.user_id:
        raise NotFound("That connection profile does not exist.")
    chat.system_prompt = text.strip()
    chat.profile = profile or chat.profile
    chat.save(update_fields=["system_prompt", "profile", "updated_at"])
    return chat


def chat_set_tools(chat: Chat, names: list[str] | None) -> Chat:
    """The tools on in ``chat`` (tool names, or a tool plugin's name for all of its tools); None: its
    profile's. A name no enabled tool plugin offers is refused (``ValidationError``)."""
    if names is not None:
        names = list(dict.fromkeys(names))
        if problem := unknown_tools(names, [plugin.manifest for plugin in tool_plugins()]):
            raise ValidationError(problem)
    chat.tools = names
    chat.save(update_fields=["tools", "updated_at"])
    return chat


def chat_tools(chat: Chat) -> list[str]:
    """The tools on in ``chat`` now: its own choice, else its profile's."""
    if chat.tools is not None:
        return list(chat.tools)
    return list((chat.profile.parameters or {}).get("tools") or []) if chat.profile else []


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


# A message in a chat's tree: its parent, and its rank among its siblings (the visible one ranks highest).
Node = tuple[int | None, tuple[Any, ...]]
_NEVER = datetime.min.replace(tzinfo=UTC)


def tree_of(chat_ids: Iterable[int]) -> dict[int, dict[int, Node]]:
    """chat → every message's ``Node``. A message ranks by its id (made later, ranks higher), or once
    picked (``branch.select``) by the chat's newest id at the time, above a message of that id, and
    among messages picked at the same mark by when."""
    trees: defaultdict[int, dict[int, Node]] = defaultdict(dict)
    rows = Message.objects.filter(chat_id__in=chat_ids).order_by()
    fields = ("chat_id", "id", "parent_id", "selected_mark", "selected_at")
    for chat_id, pk, parent_id, mark, picked in rows.values_list(*fields):
        trees[chat_id][pk] = (parent_id, (max(mark or 0, pk), mark is not None, picked or _NEVER, pk))
    return trees


def visible_path(nodes: Mapping[int, Node], through: int | None = None) -> list[int]:
    """The visible branch, root first: under each message its highest-ranked child, down to a leaf;
    with ``through``, the root down to that message, then on below it the same way."""
    children: defaultdict[int | None, list[tuple[tuple[Any, ...], int]]] = defaultdict(list)
    for pk, (parent, rank) in nodes.items():
        children[parent].append((rank, pk))
    path = [] if through is None else branch_to({pk: node[0] for pk, node in nodes.items()}, through)
    at = path[-1] if path else None
    while (below := children.get(at)) and len(path) < len(nodes):
        at = max(below)[1]
        path.append(at)
    return path


def active_branch(chat_id: int) -> list[int]:
    """Ids of the chat's visible branch, root first (``visible_path``)."""
    return visible_path(tree_of([chat_id]).get(chat_id, {}))


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


# ---- many chats at once: a batch of sends asks these once for all its chats ------------------------


def live_chats_of(users: Iterable[int]) -> defaultdict[int, set[int]]:
    """user → the chats with a live generation (any process)."""
    live = Message.objects.filter(live_streaming(), chat__user_id__in=users).order_by()
    busy: defaultdict[int, set[int]] = defaultdict(set)
    for user_id, chat_id in live.values_list("chat__user_id", "chat_id").distinct():
        busy[user_id].add(chat_id)
    return busy


class ProfileAsked(Protocol):
    """What a reply's request says of its profile (``sending.SendRequest``)."""

    @property
    def user_id(self) -> int: ...
    @property
    def chat_id(self) -> int: ...
    @property
    def profile_id(self) -> int | None: ...


def reply_profiles(asked: Sequence[ProfileAsked], chats: Mapping[int, Chat]) -> dict[Any, ConnectionProfile]:
    """The profiles ``reply_profile`` may answer for these requests, in two queries at most: those named
    (by id) and the users' default profiles (by ``("default", user)``)."""
    wanted = {a.profile_id for a in asked if a.profile_id is not None}
    wanted |= {c.profile_id for c in chats.values() if c.profile_id is not None and c.profile is None}
    found: dict[Any, ConnectionProfile] = {}
    if wanted:
        found.update({p.pk: p for p in ConnectionProfile.objects.filter(pk__in=wanted).select_related("api_key")})
    without = {
        a.user_id for a in asked if a.profile_id is None and a.chat_id in chats and chats[a.chat_id].profile_id is None
    }
    if without:
        defaults = ConnectionProfile.objects.filter(user_id__in=without, is_default=True).select_related("api_key")
        for profile in defaults.order_by("-pk"):  # the lowest id wins, as ``first()`` did
            found[("default", profile.user_id)] = profile
    return found


def reply_profile(
    asked: ProfileAsked, chat: Chat, profiles: Mapping[Any, ConnectionProfile]
) -> ConnectionProfile | None:
    """The profile a reply uses: the one its request names, else the chat's, else the user's default."""
    if asked.profile_id is not None:
        profile = profiles.get(asked.profile_id)
        if profile is None or profile.user_id != asked.user_id:
            raise NotFound("That connection profile does not exist.")
        return profile
    if chat.profile_id is not None:
        if chat.profile is not None and chat.profile.user_id == asked.user_id:
            return chat.profile
        profile = profiles.get(chat.profile_id)
        return profile if profile is not None and profile.user_id == asked.user_id else None
    return profiles.get(("default", asked.user_id))


# ---- the request a reply sends its provider ----------------------------------------------------------


def attachment_problem(config: Any, model: str, attachment: Attachment) -> str:
    """Why the provider of ``config`` cannot take ``attachment`` for ``model`` ("" when it can)."""
    why = attachment_rules.refusal(config, model, mime_type=attachment.mime_type, size=attachment.size)
    return f"{attachment.filename}: {why}" if why else ""


def tool_selection(chat: Chat, profile: ConnectionProfile, config: Any) -> tuple[str, ...]:
    """The tools on for a reply: the chat's choice, else its profile's ``tools``; none for a model that
    cannot call tools (its plugin's ``modelRules``)."""
    chosen = chat.tools if chat.tools is not None else (profile.parameters or {}).get("tools")
    if not chosen or not isinstance(chosen, list) or not takes_tools(config, profile.model):
        return ()
    return tuple(dict.fromkeys(str(name) for name in chosen))


def provider_request(
    chat: Chat,
    profile: ConnectionProfile,
    call: Call,
    turns: list[tuple[Message, list[Attachment]]],
) -> contract.ChatRequest:
    """System prompt, then the complete messages of ``turns`` (the branch up to the user message), with
    attachments as bytes and a reply's tool calls and results as the provider turns they were.

    Older attachments the provider cannot take are left out (their text stays): switching a chat to a
    text-only profile must not make the whole conversation unsendable.
    """
    config, plugin = call.config, call.plugin
    messages: list[contract.Message] = []
    if chat.system_prompt.strip():
        messages.append(contract.Message(role="system", content=chat.system_prompt))
    for message, attachments in turns:
        if message.status != Message.Status.COMPLETE:
            continue
        # A plugin gets back only the state it attached itself; another plugin's is dropped, never sent.
        own = message.role == "assistant" and message.plugin == plugin
        if message.role == "assistant" and message.tool_rounds:
            messages.extend(_tool_turns(message, own))
            continue
        files = tuple(
            contract.Attachment(filename=a.filename, mime_type=a.mime_type, data=_file_bytes(a))
            for a in attachments
            if not attachment_problem(config, profile.model, a)
        )
        if message.content or files:
            messages.append(
                contract.Message(
                    role=message.role,  # type: ignore[arg-type]
                    content=message.content,
                    attachments=files,
                    provider_state=message.provider_state if own else None,
                )
            )
    params = profile.parameters or {}
    # Sampling parameters the model rejects are dropped rather than failing the call (modelRules).
    refused = set(refused_parameters(config, profile.model))
    return contract.ChatRequest(
        model=profile.model,
        messages=tuple(messages),
        temperature=None if "temperature" in refused else params.get("temperature"),
        max_tokens=params.get("max_tokens"),
        top_p=None if "top_p" in refused else params.get("top_p"),
        stop=() if "stop" in refused else tuple(params.get("stop") or ()),
        reasoning=options_from_parameters(params),
        options={name: params[name] for name in PLUGIN_OPTIONS if name in params},
    )


def _tool_turns(message: Message, own: bool) -> list[contract.Message]:
    """A reply that called tools, as the provider turns it was: each turn's text and calls (with that
    turn's state), the results, and the last turn's text."""
    by_round: dict[int, list[Any]] = defaultdict(list)
    for row in message.tool_calls.all():
        by_round[row.round].append(row)
    turns: list[contract.Message] = []
    start = 0
    for index, turn in enumerate(message.tool_rounds or []):
        end = int(turn.get("offset", start))
        calls = by_round.get(index, [])
        turns.append(
            contract.Message(
                role="assistant",
                content=message.content[start:end],
                tool_calls=tuple(
                    contract.ToolCall(c.call_id, c.name, c.arguments or {}, c.invalid_arguments or None) for c in calls
                ),
                provider_state=turn.get("provider_state") if own else None,
            )
        )
        turns.extend(
            contract.Message(
                role="tool", content=c.result, tool_call_id=c.call_id, is_error=c.is_error, tool_name=c.name
            )
            for c in calls
        )
        start = int(turn.get("next", end))  # after the paragraph break the page put between the turns
    if rest := message.content[start:]:
        turns.append(
            contract.Message(role="assistant", content=rest, provider_state=message.provider_state if own else None)
        )
    return turns


def _file_bytes(attachment: Attachment) -> bytes:
    with attachment.file.open("rb") as handle:
        return bytes(handle.read())
