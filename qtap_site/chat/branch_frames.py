"""The branch part of a chat's websocket protocol (SPEC §5b): the client frames ``message.edit``
``{message_id, content}`` and ``branch.select`` ``{message_id}``, and the server frame ``chat.branch``
``{messages_tail}``. ``protocol`` parses the client frames with the others; ``branches`` does the work.

May import: nothing of the chat app.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CHAT_BRANCH = "chat.branch"
TYPES = ("message.edit", "branch.select")

MAX_ID = 2**63 - 1  # as ``protocol.MAX_ID``: the largest key of a 64-bit integer column
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class MessageEdit(_Frame):
    """Send ``content`` in place of the user message ``message_id``: a sibling of it, with its files."""

    type: Literal["message.edit"]
    message_id: Id
    content: str

    @field_validator("content")
    @classmethod
    def _whole_unicode(cls, value: str) -> str:
        # The database cannot store a lone surrogate (JSON can spell one); refused here like a send's text.
        if found := _LONE_SURROGATE.search(value):
            raise ValueError(f"contains a lone surrogate at character {found.start()}; text must be valid Unicode")
        return value


class BranchSelect(_Frame):
    """Show the branch through ``message_id`` (one of a set of siblings) in every tab."""

    type: Literal["branch.select"]
    message_id: Id


BranchFrame = MessageEdit | BranchSelect


def chat_branch(messages_tail: list[dict[str, Any]]) -> dict[str, Any]:
    """``messages_tail``: the chosen sibling and the visible messages below it, root first, each in the
    shape ``chat.state`` carries; a tab draws them in place of what it showed from that point on."""
    return {"type": CHAT_BRANCH, "messages_tail": messages_tail}
