"""Frames from the runner to the open tabs of a chat.

The tabs of this process get frames straight from here, with no queue and no dispatch hop per tab.
With several processes (Redis) each frame is also published once to the chat's channel-layer group,
serialised once, for the tabs of the other processes; its copy coming back to this process is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Protocol

from channels.layers import InMemoryChannelLayer, get_channel_layer

from qtap_site.chat.models import chat_group_name

logger = logging.getLogger(__name__)

RELAY = "chat.relay"  # the channel-layer event type consumers forward verbatim


# Frames published by this process come back to it through the layer (its tabs are in the group
# too); they have been delivered directly already, so the copy is recognised by this mark and dropped.
PROCESS = uuid.uuid4().hex


def relay_event(frame: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    """Wrap a client frame for the group: serialised once here, not once per tab."""
    event = {"type": RELAY, "frame": text or json.dumps(frame, separators=(",", ":")), "origin": PROCESS}
    if "seq" in frame:
        event["message_id"] = frame["message_id"]
        event["seq"] = frame["seq"]
    return event


TERMINAL_TYPES = frozenset({"generation.finished", "generation.error"})


class Tab(Protocol):
    async def relay(self, text: str, message_id: int | None, seq: int | None) -> None: ...


# chat id → the open sockets of that chat in this process
_tabs: dict[int, set[Tab]] = {}


def register_tab(chat_id: int, tab: Tab) -> None:
    _tabs.setdefault(chat_id, set()).add(tab)


def unregister_tab(chat_id: int, tab: Tab) -> None:
    tabs = _tabs.get(chat_id)
    if tabs is not None:
        tabs.discard(tab)
        if not tabs:
            del _tabs[chat_id]


def single_process() -> bool:
    """With the in-memory layer every tab lives in this process: frames go to them directly, with no
    queue and no dispatch hop per tab (under load each hop waits a whole turn of the event loop)."""
    return isinstance(get_channel_layer(), InMemoryChannelLayer)


async def send_to_chat(chat_id: int, frame: dict[str, Any]) -> None:
    """Publish a frame to every tab: the tabs of this process directly, the others through the channel
    layer. A channel layer that is briefly down (Redis restarting) costs remote tabs frames, never the
    generation: a lost delta shows as a gap in ``seq`` (the terminal frame carries the whole reply),
    and the terminal frame itself is retried for a few seconds."""
    text = json.dumps(frame, separators=(",", ":"))
    for tab in list(_tabs.get(chat_id, ())):
        await tab.relay(text, frame.get("message_id"), frame.get("seq"))
    if single_process():
        return
    attempts = 10 if frame.get("type") in TERMINAL_TYPES else 1
    for attempt in range(1, attempts + 1):
        try:
            await get_channel_layer().group_send(chat_group_name(chat_id), relay_event(frame, text))
            return
        except Exception:
            if attempt == attempts:
                logger.warning("could not publish %s to chat %s", frame.get("type"), chat_id, exc_info=True)
                return
            await asyncio.sleep(0.5)
