"""The chat websocket: authorise, parse a frame (``protocol``), hand it on. A reply is the runner's
(``runner.start_reply``), and runs in its own task, never in ``receive()``, so a stop frame is
handled at once; a stop is delivery's.

May import: ``branch_frames``, ``branches``, ``delivery``, ``images``, ``protocol``, ``runner``, ``sending``,
``services``, ``tool_frames``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from qtap_site.chat import branch_frames, branches, delivery, images, protocol, runner, services
from qtap_site.chat.branch_frames import BranchSelect, MessageEdit
from qtap_site.chat.protocol import GenerationStop, ImageGenerate, MessageRegenerate, MessageSend, Ping
from qtap_site.chat.sending import SendRequest
from qtap_site.chat.tool_frames import ToolApprove

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
SYNC_TIMEOUT_S = 0.5

logger = logging.getLogger(__name__)

_recovered = False  # stale "streaming" rows are recovered once per process, lazily (no ORM in ready())


class ChatConsumer(AsyncWebsocketConsumer):
    chat_id: int
    user_id: int
    group: str | None = None
    # message id → the last seq the chat.state snapshot already contained (frames up to it are dropped)
    resume_seq: dict[int, int]
    early: list[tuple[str, int | None, int | None]] | None = None
    waiting_state: dict[str, Any] | None = None  # chat.state held back until the owner's snapshot
    sync_timeout: asyncio.TimerHandle | None = None
    planning: asyncio.Task[None] | None = None  # the chat's plan, read when the tab opens it

    async def connect(self) -> None:
        global _recovered
        self.resume_seq = {}
        user = self.scope.get("user")
        self.chat_id = int(self.scope["url_route"]["kwargs"]["chat_id"])
        # Accept first: a code given before the handshake never reaches a browser.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        if not _recovered:
            await database_sync_to_async(services.recover_stale_messages)()
            _recovered = True
        try:
            state = await database_sync_to_async(branches.chat_state)(user_id=self.user_id, chat_id=self.chat_id)
        except protocol.Forbidden:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        except protocol.NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = delivery.chat_group_name(self.chat_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Taken after joining the group and in the same step as registering this tab for direct
        # frames: every frame after this snapshot reaches this socket, none is missing.
        local = delivery.local_generation(self.chat_id)
        self.early = []  # frames that arrive before chat.state has gone out are sent after it
        delivery.register_tab(self.chat_id, self)
        if local is not None:
            state["generation"] = local.snapshot()
        elif state["generation"] is not None and not delivery.single_process():
            # Running in another process: the database has its last checkpoint; ask the owner for
            # its exact state, and fall back to the checkpoint if no answer comes in time.
            self.waiting_state = state
            await delivery.request_sync(self.chat_id, self.channel_name)
            loop = asyncio.get_running_loop()
            self.sync_timeout = loop.call_later(SYNC_TIMEOUT_S, lambda: loop.create_task(self.send_state(state)))
            return
        await self.send_state(state)
        if state["generation"] is None:  # the chat's first send can then leave at once
            self.planning = asyncio.get_running_loop().create_task(
                runner.plan_ahead(user_id=self.user_id, chat_id=self.chat_id)
            )

    async def send_state(self, state: dict[str, Any]) -> None:
        """Send chat.state once, then the frames that queued behind it, in order."""
        if self.early is None:
            return
        self.waiting_state = None
        if self.sync_timeout is not None:
            self.sync_timeout.cancel()
        if state["generation"] is not None:
            self.resume_seq[state["generation"]["message_id"]] = state["generation"]["seq"]
        pending, self.early = self.early, []
        await self.send_json(protocol.chat_state(state))
        while pending:  # frames may keep arriving while these go out: keep their order
            for text, message_id, seq in pending:
                await self.deliver(text, message_id, seq)
            pending, self.early = self.early, []
        self.early = None

    async def generation_snapshot(self, event: dict[str, Any]) -> None:
        """The owning process's answer to our sync request: the exact state to resume from."""
        state = self.waiting_state
        generation = event.get("generation")
        if state is None or not isinstance(generation, dict):
            return
        if state["generation"] is None or generation.get("message_id") == state["generation"]["message_id"]:
            state = {**state, "generation": generation}
        await self.send_state(state)

    async def disconnect(self, code: int) -> None:
        # Leaving does not stop a generation: it finishes and is saved for the next visit.
        delivery.unregister_tab(self.chat_id, self)
        if self.sync_timeout is not None:
            self.sync_timeout.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        received_at = time.monotonic()
        try:
            frame = protocol.parse_frame(text_data, max_bytes=int(settings.QTAP_MAX_FRAME_BYTES))
            await self.dispatch_frame(frame, received_at)
        except protocol.ChatServiceError as exc:
            await self.send_json(protocol.error(exc.code, exc.message))
        except Exception:
            # A server-side failure (the database unavailable…): the frame did nothing (its
            # transaction rolled back); say so and keep the socket open.
            logger.exception("frame of chat %s failed", self.chat_id)
            await self.send_json(protocol.error(protocol.INTERNAL, "The server could not handle that; try again."))

    async def dispatch_frame(self, frame: Any, received_at: float) -> None:
        if isinstance(frame, Ping):
            await self.send_json(protocol.pong())
        elif isinstance(frame, MessageSend | MessageRegenerate):
            await runner.start_reply(frame, user_id=self.user_id, chat_id=self.chat_id, received_at=received_at)
        elif isinstance(frame, MessageEdit):  # a send of new text beside the message edited
            edit = SendRequest(self.user_id, self.chat_id, content=frame.content, edit_id=frame.message_id)
            await runner.send(edit, received_at=received_at)
        elif isinstance(frame, BranchSelect):
            tail = await database_sync_to_async(branches.select_branch)(
                user_id=self.user_id, chat_id=self.chat_id, message_id=frame.message_id
            )
            await delivery.send_to_chat(self.chat_id, branch_frames.chat_branch(tail))
        elif isinstance(frame, GenerationStop):
            await delivery.stop_generation(self.chat_id, frame.message_id)
        elif isinstance(frame, ToolApprove):
            await delivery.approve_tool(self.chat_id, frame.call_id, frame.approve)
        elif isinstance(frame, ImageGenerate):
            options = frame.model_dump(include={"size", "aspect_ratio", "quality", "style", "n"})
            prepared = await database_sync_to_async(images.prepare_image)(
                user_id=self.user_id,
                chat_id=self.chat_id,
                prompt=frame.prompt,
                image_profile_id=frame.image_profile_id,
                options=options,
            )
            await images.start_image_generation(prepared, frame.prompt)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Before every handler, channels closes stale database connections, which is a trip to the
        # database thread. A relayed frame never touches the database, and with several processes
        # every delta reaches every tab this way: one trip per frame per tab, queued behind the
        # database work of every generation, was most of the cost of a frame there.
        if message["type"] == delivery.RELAY:
            if message.get("origin") != delivery.PROCESS:  # this process's own frames came directly
                await self.chat_relay(message)
        else:
            await super().dispatch(message)

    async def chat_relay(self, event: dict[str, Any]) -> None:
        """A frame for every tab through the channel layer (several processes), serialised once."""
        await self.relay(event["frame"], event.get("message_id"), event.get("seq"))

    async def relay(self, text: str, message_id: int | None, seq: int | None) -> None:
        """Send a runner frame, dropping what the chat.state snapshot already contained."""
        if self.early is not None:
            self.early.append((text, message_id, seq))
            return
        await self.deliver(text, message_id, seq)

    async def deliver(self, text: str, message_id: int | None, seq: int | None) -> None:
        if seq is not None and message_id is not None and self.resume_seq:
            seen = self.resume_seq.get(message_id)
            if seen is not None and seq <= seen:
                return
        try:
            await self.send(text_data=text)
        except Exception:  # the socket went away between frames; disconnect() unregisters it
            logger.debug("frame for a closed socket dropped", exc_info=True)

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
