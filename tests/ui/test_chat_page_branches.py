"""The chat page drawn by the server shows the chosen branch with its "n/m" sibling switchers, and an earlier
page of history reaches back to a linked message (``?to=``), through Django's test client."""

from __future__ import annotations

import re
from typing import Any

import pytest

from qtap_site.chat import branches
from qtap_site.chat.models import Message
from qtap_site.chat.protocol import Forbidden
from qtap_site.chat.services import chat_create

pytestmark = pytest.mark.django_db
BACK, ON = "\u2039", "\u203a"  # the arrows of the sibling switcher


def tree(user: Any) -> dict[str, Any]:
    """Q → A, then Q edited → A2 (the newest, so the visible branch until another is picked)."""
    chat = chat_create(user=user, title="Branches")
    q = Message.objects.create(chat=chat, role="user", content="Original question")
    a = Message.objects.create(chat=chat, parent=q, role="assistant", content="Original answer")
    q2 = Message.objects.create(chat=chat, role="user", content="Edited question")
    a2 = Message.objects.create(chat=chat, parent=q2, role="assistant", content="Edited answer")
    return {"chat": chat, "q": q, "a": a, "q2": q2, "a2": a2}


def nav_of(page: str, message: Message) -> str:
    found = re.search(
        rf'id="msg-{message.pk}".*?<span class="branch-nav" data-siblings="([\d,]+)">(.*?)</button></span>', page, re.S
    )
    assert found, f"no switcher on message {message.pk}"
    return found.group(1) + " " + re.sub(r"<[^>]+>", "", found.group(2)).strip()


def test_the_page_shows_the_chosen_branch_and_its_switchers(alice_client: Any, user: Any) -> None:
    t = tree(user)
    page = alice_client.get(f"/chats/{t['chat'].pk}/").content.decode()
    assert "Edited answer" in page and "Original answer" not in page
    assert nav_of(page, t["q2"]) == f"{t['q'].pk},{t['q2'].pk} {BACK} 2/2 {ON}"
    assert re.search(rf'data-action="edit" data-message-id="{t["q2"].pk}"', page)

    branches.select_branch(user_id=user.pk, chat_id=t["chat"].pk, message_id=t["q"].pk)

    page = alice_client.get(f"/chats/{t['chat'].pk}/").content.decode()
    assert "Original answer" in page and "Edited answer" not in page and "Edited question" not in page
    assert nav_of(page, t["q"]) == f"{t['q'].pk},{t['q2'].pk} {BACK} 1/2 {ON}"
    assert 'aria-label="Previous version" disabled' in page and 'aria-label="Next version">' in page


def test_another_users_branch_cannot_be_picked(alice_client: Any, user: Any, other_user: Any) -> None:
    t = tree(other_user)
    with pytest.raises(Forbidden):
        branches.select_branch(user_id=user.pk, chat_id=t["chat"].pk, message_id=t["q"].pk)
    assert not Message.objects.filter(selected_mark__isnull=False).exists()
    assert alice_client.get(f"/chats/{t['chat'].pk}/").status_code == 404


def test_an_earlier_page_reaches_back_to_a_linked_message(alice_client: Any, user: Any) -> None:
    chat = chat_create(user=user, title="Long")
    parent = None
    for number in range(250):
        parent = Message.objects.create(
            chat=chat, parent=parent, role="user" if number % 2 == 0 else "assistant", content=f"Line {number}"
        )
    ids = list(Message.objects.filter(chat=chat).order_by("id").values_list("id", flat=True))
    page = alice_client.get(f"/chats/{chat.pk}/").content.decode()
    assert f'id="msg-{ids[150]}"' in page and f'id="msg-{ids[149]}"' not in page
    older = alice_client.get(f"/chats/{chat.pk}/history/?before={ids[150]}").content.decode()
    assert f'id="msg-{ids[50]}"' in older and f'id="msg-{ids[49]}"' not in older  # a page of a hundred
    reached = alice_client.get(f"/chats/{chat.pk}/history/?before={ids[150]}&to={ids[7]}").content.decode()
    assert f'id="msg-{ids[7]}"' in reached and f'id="msg-{ids[149]}"' in reached
    assert f'id="msg-{ids[6]}"' not in reached and "Show earlier messages" in reached
