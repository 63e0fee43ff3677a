"""Frames from the runner to the open tabs of a chat, and control of the generations running in this
process: which run here, stopping one from any process, and answering another process's tab that
asks where a stream is.

The tabs of this process get frames straight from here, with no queue and no dispatch hop per tab.
With several processes (Redis) each frame is also published once to the chat's channel-layer group,
serialised once, for the tabs of the other processes; its copy coming back to this process is dropped.

Stop reaches a generation from any process: each process's ``ControlListener`` joins the control group
``chatctl_<chat_id>`` of the chats it is generating in, and acts on ``generation.cancel`` (and on
``generation.sync``, a tab elsewhere asking for the exact state to resume from).

The runner registers its generations here, which is how a stop reaches them without this room
importing the runner.

May import: ``batching``, only for what a running generation offers the checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from providers.loops import PerLoop
from qtap_site.chat.batching import Checkpointed

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


# ---- the generations running in this process -----------------------------------------------------


class Running(Checkpointed, Protocol):
    """A generation running in this process (the runner's ``RunningGeneration``)."""

    chat_id: int
    user_id: int
    approvals: dict[str, asyncio.Future[bool]]  # the calls waiting for the user's yes or no

    def stop(self) -> None: ...


# chat id → the generation running in this process
_running: dict[int, Running] = {}


def register(gen: Running) -> None:
    _running[gen.chat_id] = gen


def release(gen: Running) -> None:
    """The chat is free again (this generation no longer counts as running)."""
    if _running.get(gen.chat_id) is gen:
        del _running[gen.chat_id]


def generations() -> Mapping[int, Running]:
    return _running


def local_generation(chat_id: int) -> Running | None:
    return _running.get(chat_id)


def running_count(user_id: int) -> int:
    return sum(1 for gen in _running.values() if gen.user_id == user_id)


# ---- stop and sync, from any process -------------------------------------------------------------


def chat_group_name(chat_id: int) -> str:
    """The channel-layer group every open tab of a chat joins."""
    return f"chat_{chat_id}"


def control_group_name(chat_id: int) -> str:
    return f"chatctl_{chat_id}"


class ControlListener:
    """One per event loop: a channel of this process that receives stop requests for its generations."""

    _by_loop: PerLoop[ControlListener] = PerLoop(lambda loop: ControlListener(loop), alive=lambda it: it.alive)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.channel_name: asyncio.Future[str] = loop.create_future()
        self.task = loop.create_task(self._listen(), name="qtap-generation-control")

    @classmethod
    async def get(cls) -> ControlListener:
        listener = cls._by_loop.get()
        await asyncio.shield(listener.channel_name)
        return listener

    @property
    def channel(self) -> str:
        return self.channel_name.result()

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def _listen(self) -> None:
        layer = get_channel_layer()
        try:
            channel = await layer.new_channel("qtap-runner.")
        except asyncio.CancelledError:
            self.channel_name.cancel()
            raise
        except Exception as exc:  # the next generation tries again with a new listener
            self.channel_name.set_exception(exc)
            return
        self.channel_name.set_result(channel)
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("generation control channel failed; retrying")
                await asyncio.sleep(1)
                continue
            if message.get("type") == "generation.cancel":
                stop_local(int(message["chat_id"]), message.get("message_id"))
            elif message.get("type") == "tool.approval":
                approve_local(int(message["chat_id"]), str(message["call_id"]), bool(message["approve"]))
            elif message.get("type") == "generation.sync":
                await _answer_sync(layer, message)


async def join_control(chat_id: int) -> str:
    """Listen for stops of the chat's generation from every process; answers the channel listening."""
    listener = await ControlListener.get()
    await get_channel_layer().group_add(control_group_name(chat_id), listener.channel)
    return listener.channel


async def leave_control(chat_id: int, channel: str) -> None:
    try:
        await get_channel_layer().group_discard(control_group_name(chat_id), channel)
    except Exception:
        logger.debug("could not leave the control group", exc_info=True)


async def _answer_sync(layer: Any, message: dict[str, Any]) -> None:
    """A tab opened in another process asks for the exact state of a generation running here."""
    gen = _running.get(int(message["chat_id"]))
    reply_to = message.get("reply_to")
    if gen is None or not isinstance(reply_to, str):
        return
    try:
        await layer.send(reply_to, {"type": "generation.snapshot", "generation": gen.snapshot()})
    except Exception:
        logger.debug("could not answer a generation sync", exc_info=True)


async def request_sync(chat_id: int, reply_to: str) -> None:
    """Ask the process running the chat's generation to send its snapshot to ``reply_to``."""
    await get_channel_layer().group_send(
        control_group_name(chat_id), {"type": "generation.sync", "chat_id": chat_id, "reply_to": reply_to}
    )


def stop_local(chat_id: int, message_id: int | None = None) -> bool:
    """Cancel the generation of ``chat_id`` if it runs in this process."""
    gen = _running.get(chat_id)
    if gen is None or (message_id is not None and message_id != gen.message_id):
        return False
    gen.stop()
    return True


async def stop_generation(chat_id: int, message_id: int | None = None) -> None:
    """Stop from any tab: here directly, elsewhere through the control group."""
    if not stop_local(chat_id, message_id):
        await get_channel_layer().group_send(
            control_group_name(chat_id), {"type": "generation.cancel", "chat_id": chat_id, "message_id": message_id}
        )


def stop_chat(chat_id: int) -> None:
    """``stop_generation`` for synchronous code (a view deleting the chat)."""
    async_to_sync(stop_generation)(chat_id)


def approve_local(chat_id: int, call_id: str, approve: bool) -> bool:
    """Answer a call of the chat's generation waiting for approval, if it runs in this process."""
    gen = _running.get(chat_id)
    waiter = gen.approvals.get(call_id) if gen is not None else None
    if waiter is None or waiter.done():
        return False
    waiter.set_result(approve)
    return True


async def approve_tool(chat_id: int, call_id: str, approve: bool) -> None:
    """``tool.approve`` from any tab: here directly, elsewhere through the control group."""
    if not approve_local(chat_id, call_id, approve):
        message = {"type": "tool.approval", "chat_id": chat_id, "call_id": call_id, "approve": approve}
        await get_channel_layer().group_send(control_group_name(chat_id), message)
