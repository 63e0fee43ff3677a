"""Rows written as plain statements (``qtap_site.bulk_rows``), on whichever database the run uses: each
new row gets its own key, in order, in chunks and above keys deleted before; rows alike but in a few
fields are written as if each were prepared in full; one UPDATE sets each row's own values, NULLs too."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from qtap_site import bulk_rows
from qtap_site.chat.models import Chat, Message
from qtap_site.chat.services import chat_create

pytestmark = pytest.mark.django_db(transaction=True)

DIFFERING = ["chat", "parent", "content", "client_msg_id"]


def users(chat: Chat, *contents: str, parent: Message | None = None) -> list[Message]:
    return [
        Message(chat=chat, parent=parent, role=Message.Role.USER, content=text, client_msg_id=f"c-{at}")
        for at, text in enumerate(contents)
    ]


def saved(objs: list[Message]) -> list[tuple[Any, ...]]:
    return list(Message.objects.filter(pk__in=[m.pk for m in objs]).order_by("pk").values_list("pk", "content"))


def test_new_rows_get_their_own_keys_in_order_in_chunks_and_above_deleted_ones(chat, monkeypatch) -> None:
    monkeypatch.setattr(bulk_rows, "ROWS_PER_STATEMENT", 2)
    before = users(chat, "old 1", "old 2")
    bulk_rows.insert(before)
    top = max(m.pk for m in before)
    Message.objects.filter(pk__in=[m.pk for m in before]).delete()  # the newest keys are gone: never reused
    objs = users(chat, "a", "b", "c", "d", "e")
    with transaction.atomic():
        bulk_rows.insert(objs)
    keys = [m.pk for m in objs]
    assert keys == sorted(keys) and len(set(keys)) == 5 and keys[0] > top
    assert saved(objs) == [(m.pk, m.content) for m in objs]


def test_rows_alike_are_written_as_if_each_were_prepared_in_full(chat, user, profile) -> None:
    other = chat_create(user=user, profile=profile)
    parent = users(chat, "first")
    bulk_rows.insert(parent)
    full = [*users(chat, "one", "two", parent=parent[0]), *users(other, "three")]
    alike = [*users(chat, "one", "two", parent=parent[0]), *users(other, "three")]
    bulk_rows.insert(full)
    bulk_rows.insert_alike(alike, DIFFERING)

    def shape(objs: list[Message]) -> list[dict[str, Any]]:
        rows = Message.objects.filter(pk__in=[m.pk for m in objs]).order_by("pk").values()
        return [{k: v for k, v in row.items() if k not in {"id", "created_at", "updated_at"}} for row in rows]

    assert shape(alike) == shape(full)
    assert [m.content for m in alike] == [row["content"] for row in shape(alike)]  # each instance its own row
    stamps = {m.created_at for m in alike}
    assert len(stamps) == 1 and None not in stamps  # one time for the batch, set on every instance
    assert set(Message.objects.filter(pk__in=[m.pk for m in alike]).values_list("created_at", flat=True)) == stamps


def test_one_update_sets_each_rows_own_values_nulls_and_quotes_too(user, profile) -> None:
    chats = [chat_create(user=user, profile=profile) for _ in range(4)]
    untouched = chats.pop()
    for chat, title in zip(chats, ['it\'s "quoted"', "", "émoji 😀"], strict=True):
        chat.title, chat.profile = title, None  # every profile NULL: a column of NULLs still types
    bulk_rows.update(chats, ["title", "profile"])
    got = dict(Chat.objects.filter(pk__in=[c.pk for c in chats]).values_list("pk", "title"))
    assert got == {c.pk: c.title for c in chats}
    assert set(Chat.objects.filter(pk__in=got).values_list("profile_id", flat=True)) == {None}
    chats[1].profile, chats[1].title = profile, "back"
    bulk_rows.update(chats, ["title", "profile"])
    assert Chat.objects.get(pk=chats[1].pk).profile_id == profile.pk
    assert Chat.objects.get(pk=chats[0].pk).profile_id is None and Chat.objects.get(pk=chats[2].pk).title == "émoji 😀"
    assert (Chat.objects.get(pk=untouched.pk).profile_id, Chat.objects.get(pk=untouched.pk).title) == (profile.pk, "")
