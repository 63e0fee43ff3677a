"""The chat's own server frame (SPEC §5): ``chat.updated`` ``{chat: {id, title}}``, sent to every tab of a
chat when its title changes (the first message gives it one; a rename changes it), so each tab's heading
and chat list follow at once. ``chat.state`` carries the title for a tab that connects later.

A send that gives its chat a title sends this frame before its upstream request leaves; the runner builds it
from ``CHAT_UPDATED`` and the chat's shape the send prepared, without a call into this module (a send's path
stays as short as it was, tests/chat/test_send_path.py).

May import: nothing of the chat app.
"""

from __future__ import annotations

from typing import Any

CHAT_UPDATED = "chat.updated"


def chat_shape(chat_id: int, title: str) -> dict[str, Any]:
    """What ``chat.updated`` says of a chat."""
    return {"id": chat_id, "title": title}


def chat_updated(chat_id: int, title: str) -> dict[str, Any]:
    return {"type": CHAT_UPDATED, "chat": chat_shape(chat_id, title)}
