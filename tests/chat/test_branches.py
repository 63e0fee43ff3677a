"""Edit and resend, and branches (SPEC §5b): ``message.edit`` makes a sibling user message and a reply to
it, ``branch.select`` makes a sibling's branch the visible one in every tab (``chat.branch``), the
choice is stored (a new connection's ``chat.state`` shows it), and the provider is sent the visible
branch only. Over the real ASGI application and channel layer, with the local upstream on a real socket.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from qtap_site.chat.attachments import attachment_create
from qtap_site.chat.models import Message
from qtap_site.chat.services import chat_create
from tests.chat.conftest import TERMINAL, open_socket, png_bytes, receive_until, send, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def turn(comm: Any, fake: Any, frame: dict[str, Any], reply: str) -> list[dict[str, Any]]:
    """Send ``frame``, the upstream answering ``reply``; the frames up to the reply's end."""
    fake.tokens = [reply]
    await send(comm, frame)
    frames = await receive_until(comm, *TERMINAL)
    assert frames[-1]["type"] == "generation.finished", frames[-1]
    return frames


def created(frames: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return next(f["message"] for f in frames if f["type"] == "message.created" and f["message"]["role"] == role)


def sent_texts(fake: Any) -> list[tuple[str, str]]:
    """What the upstream's last chat request held: (role, text) of each message."""
    messages = fake.chat_requests[-1].json["messages"]
    return [(m["role"], m["content"] if isinstance(m["content"], str) else str(m["content"])) for m in messages]


@database_sync_to_async
def rows(chat_id: int) -> list[tuple[Any, ...]]:
    return list(
        Message.objects.filter(chat_id=chat_id).order_by("id").values_list("id", "parent_id", "role", "content")
    )


@database_sync_to_async
def file_ids(message_id: int) -> list[int]:
    return sorted(Message.objects.get(pk=message_id).attachments.values_list("id", flat=True))


async def two_turns(comm: Any, fake: Any, user: Any) -> dict[str, Any]:
    """The chat after "First question" (with a file) → "Answer one", "Follow up" → "Answer two"."""
    picture = await database_sync_to_async(attachment_create)(owner=user, filename="p.png", data=png_bytes())
    first = await turn(
        comm, fake, {"type": "message.send", "content": "First question", "attachments": [picture.pk]}, "Answer one"
    )
    second = await turn(comm, fake, {"type": "message.send", "content": "Follow up"}, "Answer two")
    return {
        "u1": created(first, "user"), "a1": created(first, "assistant"),
        "u2": created(second, "user"), "a2": created(second, "assistant"), "file": picture.pk,
    }  # fmt: skip


async def test_an_edit_is_a_sibling_with_its_own_reply_and_the_provider_sees_its_branch_only(
    chat: Any, cookie: str, fake: Any, user: Any
) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    other_tab, _ = await open_socket(chat.pk, cookie)
    before = await two_turns(comm, fake, user)
    await receive_until(other_tab, *TERMINAL)
    await receive_until(other_tab, *TERMINAL)

    frames = await turn(
        comm,
        fake,
        {"type": "message.edit", "message_id": before["u2"]["id"], "content": "Follow up, edited"},
        "Answer 2b",
    )

    edited, reply = created(frames, "user"), created(frames, "assistant")
    assert edited["content"] == "Follow up, edited"
    assert edited["parent_id"] == before["a1"]["id"]  # beside the message edited, under the same reply
    assert edited["siblings"] == [before["u2"]["id"], edited["id"]]
    assert reply["parent_id"] == edited["id"] and "siblings" not in reply
    assert 'class="branch-nav"' in edited["message_html"] and "2/2" in edited["message_html"]
    assert frames[-1]["message_id"] == reply["id"]
    # The provider got the edited branch: the first turn, then the new text; never the text edited away.
    texts = sent_texts(fake)
    assert [role for role, _ in texts] == ["system", "user", "assistant", "user"]
    assert "First question" in texts[1][1] and texts[2:] == [("assistant", "Answer one"), ("user", "Follow up, edited")]
    assert "Answer two" not in str(texts)
    # The other tab saw it all too.
    seen = await receive_until(other_tab, *TERMINAL)
    assert created(seen, "user")["id"] == edited["id"]

    # An edit of the first message (no parent) keeps its files.
    frames = await turn(
        comm, fake, {"type": "message.edit", "message_id": before["u1"]["id"], "content": "Better first"}, "A1b"
    )
    root = created(frames, "user")
    assert root["parent_id"] is None and root["siblings"] == [before["u1"]["id"], root["id"]]
    assert [a["id"] for a in root["attachments"]] == [before["file"]] == await file_ids(root["id"])
    texts = sent_texts(fake)  # the system prompt and the edited first message (with its file): no old branch
    assert len(texts) == 2 and texts[1][0] == "user" and "Better first" in texts[1][1]
    assert "First question" not in str(texts) and "Answer one" not in str(texts)
    await receive_until(other_tab, *TERMINAL)

    # A new connection (a reload) shows the newest edit's branch.
    fresh, state = await open_socket(chat.pk, cookie)
    assert [m["id"] for m in state["messages_tail"]] == [root["id"], created(frames, "assistant")["id"]]
    assert state["messages_tail"][0]["siblings"] == [before["u1"]["id"], root["id"]]
    for comm_ in (comm, other_tab, fresh):
        await comm_.disconnect()


async def test_branch_select_reaches_every_tab_is_stored_and_steers_the_next_send(
    chat: Any, cookie: str, fake: Any, user: Any
) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    before = await two_turns(comm, fake, user)
    edit = {"type": "message.edit", "message_id": before["u2"]["id"], "content": "Follow up, edited"}
    edited = created(await turn(comm, fake, edit, "Answer 2b"), "user")
    other_tab, _ = await open_socket(chat.pk, cookie)

    await send(comm, {"type": "branch.select", "message_id": before["u2"]["id"]})

    [branch] = await receive_until(other_tab, "chat.branch")  # the other tab follows
    assert [m["id"] for m in branch["messages_tail"]] == [before["u2"]["id"], before["a2"]["id"]]
    assert branch["messages_tail"][0]["siblings"] == [before["u2"]["id"], edited["id"]]
    assert branch["messages_tail"][0]["parent_id"] == before["a1"]["id"]
    assert "1/2" in branch["messages_tail"][0]["message_html"]
    assert (await receive_until(comm, "chat.branch"))[-1] == branch  # and so does the tab that chose

    # Stored: a reload shows the chosen branch, whole.
    fresh, state = await open_socket(chat.pk, cookie)
    shown = [m["id"] for m in state["messages_tail"]]
    assert shown == [before[k]["id"] for k in ("u1", "a1", "u2", "a2")]
    assert state["messages_tail"][2]["siblings"] == [before["u2"]["id"], edited["id"]]
    assert "siblings" not in state["messages_tail"][0] and state["messages_tail"][0]["parent_id"] is None

    # The next send continues the chosen branch: the edited text is not in its history.
    frames = await turn(comm, fake, {"type": "message.send", "content": "Third"}, "Answer three")
    assert created(frames, "user")["parent_id"] == before["a2"]["id"]
    texts = [text for _, text in sent_texts(fake)]
    assert texts[-3:] == ["Follow up", "Answer two", "Third"] and "Follow up, edited" not in texts

    # Back to the edit: the tail goes from it down to its newest leaf.
    await send(fresh, {"type": "branch.select", "message_id": edited["id"]})
    [branch] = [f for f in await receive_until(comm, "chat.branch") if f["type"] == "chat.branch"]
    assert branch["messages_tail"][0]["id"] == edited["id"] and len(branch["messages_tail"]) == 2
    for comm_ in (comm, other_tab, fresh):
        await comm_.disconnect()


async def test_regenerated_replies_are_siblings_to_navigate(chat: Any, cookie: str, fake: Any) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    first = created(await turn(comm, fake, {"type": "message.send", "content": "Hi"}, "One"), "assistant")
    again = created(
        await turn(comm, fake, {"type": "message.regenerate", "message_id": first["id"]}, "Two"), "assistant"
    )
    assert again["siblings"] == [first["id"], again["id"]] and again["parent_id"] == first["parent_id"]

    await send(comm, {"type": "branch.select", "message_id": first["id"]})
    [branch] = [f for f in await receive_until(comm, "chat.branch") if f["type"] == "chat.branch"]
    assert [m["id"] for m in branch["messages_tail"]] == [first["id"]]
    assert branch["messages_tail"][0]["content"] == "One"
    _, state = await open_socket(chat.pk, cookie)
    assert [m["content"] for m in state["messages_tail"]] == ["Hi", "One"]
    # A regeneration after that shows at once (the newest reply wins over an older pick).
    third = created(
        await turn(comm, fake, {"type": "message.regenerate", "message_id": first["id"]}, "Three"), "assistant"
    )
    assert third["siblings"] == [first["id"], again["id"], third["id"]]
    _, state = await open_socket(chat.pk, cookie)
    assert [m["content"] for m in state["messages_tail"]] == ["Hi", "Three"]
    await comm.disconnect()


async def expect_error(comm: Any, frame: dict[str, Any], code: str) -> dict[str, Any]:
    await send(comm, frame)
    [answer] = await receive_until(comm, "error")
    assert answer["code"] == code, answer
    await send(comm, {"type": "ping"})  # the socket stays open
    assert (await receive_until(comm, "pong"))[-1]["type"] == "pong"
    return answer


async def test_bad_edits_and_selections_are_refused_and_change_nothing(
    chat: Any, cookie: str, fake: Any, user: Any, other_user: Any, profile: Any
) -> None:
    comm, _ = await open_socket(chat.pk, cookie)
    mine = await two_turns(comm, fake, user)
    theirs = await database_sync_to_async(chat_create)(user=other_user)
    their_message = await database_sync_to_async(Message.objects.create)(chat=theirs, role="user", content="Private")
    their_cookie = await database_sync_to_async(session_cookie)(other_user)
    their_tab, _ = await open_socket(theirs.pk, their_cookie)
    mine_before, theirs_before = await rows(chat.pk), await rows(theirs.pk)
    user_id, reply_id = mine["u2"]["id"], mine["a2"]["id"]

    for frame, code in [
        ({"type": "message.edit", "message_id": 987654, "content": "x"}, "not_found"),
        ({"type": "message.edit", "message_id": their_message.pk, "content": "mine now"}, "not_found"),
        ({"type": "message.edit", "message_id": reply_id, "content": "x"}, "bad_request"),
        ({"type": "message.edit", "message_id": user_id, "content": ""}, "bad_request"),
        ({"type": "message.edit", "message_id": user_id, "content": "   \n"}, "bad_request"),
        ({"type": "message.edit", "message_id": user_id}, "bad_request"),
        ({"type": "message.edit", "message_id": "12", "content": "x"}, "bad_request"),
        ({"type": "branch.select", "message_id": 987654}, "not_found"),
        ({"type": "branch.select", "message_id": their_message.pk}, "not_found"),
        ({"type": "branch.select"}, "bad_request"),
    ]:
        answer = await expect_error(comm, frame, code)
        assert answer["message"], frame
    assert (
        "regenerate"
        in (await expect_error(comm, {"type": "message.edit", "message_id": reply_id, "content": "x"}, "bad_request"))[
            "message"
        ]
    )

    # While a reply is being written in the chat, neither an edit nor a switch of branch.
    fake.tokens, fake.stream_delay = ["slow "] * 40, 0.05
    await send(comm, {"type": "message.send", "content": "Long one"})
    await receive_until(comm, "generation.delta")
    after_send = await rows(chat.pk)
    await expect_error(comm, {"type": "message.edit", "message_id": user_id, "content": "now"}, "busy")
    await expect_error(comm, {"type": "branch.select", "message_id": user_id}, "busy")
    assert await rows(chat.pk) == after_send
    await send(comm, {"type": "generation.stop"})
    await receive_until(comm, *TERMINAL)

    assert (await rows(chat.pk))[: len(mine_before)] == mine_before
    assert await rows(theirs.pk) == theirs_before  # the other user's chat: untouched, and its tab heard nothing
    assert await their_tab.receive_nothing(timeout=0.3)
    _, state = await open_socket(chat.pk, cookie)
    assert all("siblings" not in m for m in state["messages_tail"])
    await comm.disconnect()
    await their_tab.disconnect()


def test_each_level_remembers_its_pick_and_a_newer_sibling_wins(user: Any) -> None:
    from qtap_site.chat import branches, services

    chat = chat_create(user=user)
    made = {}
    for name, parent, role in [
        ("q", None, "user"), ("a1", "q", "assistant"), ("a2", "q", "assistant"),
        ("u", "a1", "user"), ("b1", "u", "assistant"), ("b2", "u", "assistant"),
    ]:  # fmt: skip
        made[name] = Message.objects.create(chat=chat, parent=made.get(parent), role=role, content=name)

    def shown() -> list[str]:
        return [Message.objects.get(pk=pk).content for pk in services.active_branch(chat.pk)]

    assert shown() == ["q", "a2"]  # the newest sibling at each level
    tail = branches.select_branch(user_id=user.pk, chat_id=chat.pk, message_id=made["b1"].pk)
    assert [m["content"] for m in tail] == ["a1", "u", "b1"]  # from where the view changed: a1 was hidden
    assert shown() == ["q", "a1", "u", "b1"]
    branches.select_branch(user_id=user.pk, chat_id=chat.pk, message_id=made["a2"].pk)
    assert shown() == ["q", "a2"]
    tail = branches.select_branch(user_id=user.pk, chat_id=chat.pk, message_id=made["a1"].pk)
    assert [m["content"] for m in tail] == ["a1", "u", "b1"] and shown() == ["q", "a1", "u", "b1"]
    assert tail[0]["siblings"] == [made["a1"].pk, made["a2"].pk] and tail[2]["siblings"] == [
        made["b1"].pk,
        made["b2"].pk,
    ]
    newer = Message.objects.create(chat=chat, parent=made["u"], role="assistant", content="b3")  # a regeneration
    assert shown() == ["q", "a1", "u", "b3"] and newer.pk > made["b2"].pk
