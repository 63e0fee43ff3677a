"""The generation runner: one asyncio task per generation, relaying provider events to the chat's tabs.

``start_reply`` takes a ``message.send`` or ``message.regenerate``: refused at once if this process is
busy for it, else prepared in the next batch of sends and started. A chat's next plain send opens its
provider call the moment it is read, from the chat's plan (``early``, ``plans``); the call is
read only once the transaction has saved the send and built the same call. ``plan_ahead`` makes the
plan of a chat a tab opens. The upstream request
leaves beside the frames that announce the reply. The per-token path appends to an in-memory buffer; a flush a few
milliseconds later sends one frame per batch (serialised once, whatever the number of tabs:
``relaying``, which also ends the reply). Checkpoints and final saves go through ``batching``. Exactly
one terminal event (``generation.finished`` or ``generation.error``) per generation. Stop reaches the
task from any process through ``delivery``. A reply with tools on goes through ``tool_loop``, which
calls ``_stream`` per turn.

May import: ``batching``, ``chat_frames``, ``delivery``, ``early``, ``models``, ``plans``, ``protocol``,
``relaying``, ``sending``, ``tool_frames``, ``tool_loop``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from providers import contract
from providers.errors import ProtocolError, QtapProviderError
from providers.factory import create_llm_provider
from qtap_site.chat import chat_frames, delivery, plans, protocol, relaying, sending, tool_frames, tool_loop
from qtap_site.chat.batching import Checkpoints, SendQueue
from qtap_site.chat.delivery import send_to_chat
from qtap_site.chat.early import Early, close_events, open_early
from qtap_site.chat.models import Message

logger = logging.getLogger(__name__)


@dataclass
class RunningGeneration:
    chat_id: int
    user_id: int
    message_id: int
    received_at: float
    task: asyncio.Task[None] | None = None
    content: list[str] = field(default_factory=list)  # text already sent (seq ≤ self.seq)
    reasoning: list[str] = field(default_factory=list)
    seq: int = 0
    pending: list[tuple[str, str]] = field(default_factory=list)  # ("text" | "reasoning", chunk) not yet sent
    ttft_ms: int | None = None
    stop_requested: bool = False
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    flush_handle: asyncio.Handle | None = None
    last_flush: float = 0.0  # loop time of the last flush
    last_yield: float = 0.0  # loop time the stream loop last let other tasks run
    streaming: bool = False  # between generation.started and the end: checkpointed
    saved_seq: int = -1  # seq of the last checkpoint written
    saved_at: float = 0.0  # loop time of the last checkpoint written
    provider_state: Any = None  # the plugin's opaque state for this reply: saved, never sent to a tab
    tool_rounds: list[dict[str, Any]] = field(default_factory=list)  # the turns that ended in calls
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # every call so far (tool_loop's records)
    approvals: dict[str, asyncio.Future[bool]] = field(default_factory=dict)  # call id → the user's yes/no
    announcing: asyncio.Task[str] | None = None  # sending the frames that announce the reply (runner._announce)
    plan_since: int = -1  # ``plans.changes`` before its send was prepared (-1: it leaves no plan)

    def stop(self) -> None:
        if not self.stop_requested and self.task is not None:
            self.stop_requested = True
            self.task.cancel()

    def snapshot(self) -> dict[str, Any]:
        """What a tab joining now needs: everything up to ``seq``; later frames reach it through the group."""
        text = "".join(self.content)
        snap = {"message_id": self.message_id, "content": text, "reasoning": "".join(self.reasoning), "seq": self.seq}
        if self.tool_calls:  # a reply calling tools: its calls so far, each where its turn's text ends
            snap["tool_calls"] = tool_frames.drawn(self.tool_calls, self.tool_rounds, len(text))
        return snap


# ---- starting --------------------------------------------------------------------------------------


async def start_reply(
    frame: protocol.MessageSend | protocol.MessageRegenerate, *, user_id: int, chat_id: int, received_at: float
) -> None:
    """A reply to ``message.send``, or another reply by ``message.regenerate``."""
    if isinstance(frame, protocol.MessageSend):
        request = sending.SendRequest(
            user_id=user_id,
            chat_id=chat_id,
            content=frame.content,
            attachment_ids=tuple(frame.attachments),
            profile_id=frame.profile_id,
            client_msg_id=frame.client_msg_id,
        )
    else:
        request = sending.SendRequest(user_id, chat_id, profile_id=frame.profile_id, regenerate_id=frame.message_id)
    await send(request, received_at=received_at)


async def send(request: sending.SendRequest, *, received_at: float) -> None:
    """Refused at once if this process already writes a reply in the chat, or the user's limit of them
    (the send transaction checks again across processes); else prepared in the next batch of sends and
    started. Preparing and starting are a task of their own: a tab that closes while its send is being
    prepared does not lose the reply, which starts like one whose tab closed a moment later."""
    if delivery.local_generation(request.chat_id) is not None:
        raise protocol.Busy()
    limit = int(settings.QTAP_MAX_CONCURRENT_GENERATIONS)
    if delivery.running_count(request.user_id) >= limit:
        raise protocol.RateLimited.at(limit)
    task = asyncio.get_running_loop().create_task(_prepare_and_start(request, received_at))
    _starting.add(task)  # the loop holds tasks only weakly
    task.add_done_callback(_started)
    await asyncio.shield(task)


_starting: set[asyncio.Task[None]] = set()


async def _prepare_and_start(request: sending.SendRequest, received_at: float) -> None:
    since = plans.changes  # a change from now on keeps this reply from leaving a plan
    # Plans are one process's (``plans``): with several, a send goes the full way without asking.
    opened = open_early(request) if delivery.single_process() else None
    if opened is not None:
        request = dataclasses.replace(request, planned=True)
    try:
        prepared = await SendQueue.for_loop().prepare(request)
    except BaseException:
        if opened is not None:
            await opened.close()  # refused or failed: the early call is cut before anything was relayed
        raise
    if opened is not None and not opened.made_for(prepared):
        await opened.close()
        opened = None
    await start_generation(prepared, received_at=received_at, early=opened, since=since)


async def plan_ahead(*, user_id: int, chat_id: int) -> None:
    """The plan of a chat a tab has just opened, so that its first send's call can leave at once.
    Read in the background (the tab's ``chat.state`` does not wait for it) by one planner per process,
    a few chats per trip to the database thread and only while no send is being written there: the
    sends come first (200 tabs opening together would otherwise put 200 reads in front of the next
    sends). Kept only if nothing it may have been read from changed meanwhile; a send already under way
    makes its own. Returns once the chats waiting to be planned, this one included, have been."""
    global _planner
    if not delivery.single_process() or plans.fresh(chat_id, user_id) or delivery.local_generation(chat_id):
        return
    _to_plan.pop(chat_id, None)
    _to_plan[chat_id] = user_id
    while len(_to_plan) > plans.MAX_PLANS:  # the oldest tabs' chats wait longest: dropped first
        _to_plan.pop(next(iter(_to_plan)))
    loop = asyncio.get_running_loop()
    if _planner is None or _planner.done() or _planner.get_loop() is not loop:
        _planner = loop.create_task(_plan_waiting(), name="qtap-planner")
    await asyncio.shield(_planner)


_to_plan: dict[int, int] = {}  # chat id → user id: chats whose tabs opened, oldest first
_planner: asyncio.Task[None] | None = None
PLANS_PER_TRIP = 8  # a send arriving meanwhile waits for this many reads (a few ms each)
PLAN_PAUSE_S = 0.005  # how often a waiting planner looks whether the sends are written


async def _plan_waiting() -> None:
    queue = SendQueue.for_loop()
    while _to_plan:
        if queue.busy:
            await asyncio.sleep(PLAN_PAUSE_S)
            continue
        asked = [(_to_plan.pop(chat_id), chat_id) for chat_id in list(_to_plan)[:PLANS_PER_TRIP]]
        asked = [(u, c) for u, c in asked if not plans.fresh(c, u) and delivery.local_generation(c) is None]
        since = plans.changes
        try:
            found = await database_sync_to_async(plans.plans_of)(asked)
        except Exception:  # only a guess: the sends go the full way
            logger.debug("could not plan chats %s", [c for _, c in asked], exc_info=True)
            continue
        for plan in found:
            if plan is not None and delivery.local_generation(plan.chat_id) is None:
                plans.store(plan, since=since)


def _started(task: asyncio.Task[None]) -> None:
    _starting.discard(task)
    # Its tab answers a refusal; when the tab went away, it is retrieved here (and only logged).
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("a send ended before its reply started: %r", exc)


async def start_generation(
    prepared: sending.Prepared, *, received_at: float, early: Early | None = None, since: int = -1
) -> RunningGeneration:
    """Start the task of a prepared generation (on the provider call opened ``early``, if one was);
    ``since``, the ``plans.changes`` before it was prepared (the reply may leave a plan if none came)."""
    gen = RunningGeneration(
        chat_id=prepared.chat_id,
        user_id=prepared.user_id,
        message_id=prepared.assistant_id,
        received_at=received_at,
        plan_since=since,
    )
    delivery.register(gen)
    gen.task = asyncio.get_running_loop().create_task(_run(gen, prepared, early), name=f"generation-{gen.message_id}")
    return gen


# ---- the task ------------------------------------------------------------------------------------


async def _announce(gen: RunningGeneration, prepared: sending.Prepared) -> str:
    """Join the chat's control group and tell the tabs about the reply; answers the control channel.
    A task of its own, beside the upstream request: both only wait on sockets, and the first delta
    waits for these frames (``relaying.announced``), so the tabs see them in the same order."""
    control = await delivery.join_control(gen.chat_id)
    if prepared.user_message is not None:
        await send_to_chat(gen.chat_id, protocol.message_created(prepared.user_message))
    await send_to_chat(gen.chat_id, protocol.message_created(prepared.assistant_message))
    if prepared.error is None:
        await send_to_chat(
            gen.chat_id,
            protocol.generation_started(
                message_id=gen.message_id, profile_id=prepared.profile_id, plugin=prepared.plugin, model=prepared.model
            ),
        )
    if prepared.renamed is not None:  # the send named its chat: every tab's heading and list follow
        await send_to_chat(gen.chat_id, {"type": chat_frames.CHAT_UPDATED, "chat": prepared.renamed})
    return control


async def _run(gen: RunningGeneration, prepared: sending.Prepared, early: Early | None = None) -> None:
    announcing = gen.announcing = asyncio.get_running_loop().create_task(_announce(gen, prepared))
    try:
        try:
            if prepared.error is not None or prepared.tools:  # nothing to overlap, or tool frames to order
                await relaying.announced(gen)
            if prepared.error is not None:
                code, message = prepared.error
                await relaying.fail(gen, prepared, code, message, retryable=protocol.is_retryable(code))
                return
            gen.streaming = True
            Checkpoints.for_loop().ensure_running(delivery.generations())
            if prepared.tools:
                usage, finish = await tool_loop.converse(gen, prepared, _stream, relaying.drain)
            else:
                usage, finish, _ = await _stream(gen, prepared, early=early)
                early = None
            if finish is None:
                raise ProtocolError(prepared.plugin, "The provider ended the stream before finishing the reply.")
        except asyncio.CancelledError:
            gen.streaming = False
            if gen.stop_requested:
                await relaying.finish(gen, prepared, "cancelled", None, status=Message.Status.CANCELLED)
                return
            # The loop is shutting down: keep the text; recovery marks the row "interrupted".
            await Checkpoints.for_loop().save_now(gen)
            raise
        except Exception as exc:
            if not isinstance(exc, QtapProviderError):
                logger.exception("generation %s failed", gen.message_id)
            code, message, retryable = protocol.failure(exc)
            await relaying.fail(gen, prepared, code, message, retryable=retryable)
            return
        gen.streaming = False
        await relaying.finish(gen, prepared, finish.reason, usage, status=Message.Status.COMPLETE)
    except Exception:
        # Only reached if sending the terminal event itself failed (a broken channel layer).
        logger.exception("generation %s could not report its end", gen.message_id)
    finally:
        gen.streaming = False
        delivery.release(gen)
        if early is not None:  # the reply ended before streaming (an error found by its transaction)
            await early.close()
        control = await _settled(announcing)
        if control is not None:
            await delivery.leave_control(gen.chat_id, control)


async def _settled(announcing: asyncio.Task[str]) -> str | None:
    """The control channel the announcing task joined, once it is done; None if it failed (the
    generation was told so, through ``relaying.announced``)."""
    try:
        return await asyncio.shield(announcing)
    except Exception:
        return None


async def _stream(
    gen: RunningGeneration,
    prepared: sending.Prepared,
    request: contract.ChatRequest | None = None,
    *,
    early: Early | None = None,
) -> tuple[contract.Usage | None, contract.Finish | None, list[contract.ToolCall]]:
    """One provider turn, relayed to the tabs: its usage, its finish and the tools it called."""
    request = request or prepared.request
    assert request is not None
    if early is not None:
        provider = early.provider
    else:
        provider = create_llm_provider(prepared.plugin, api_key=prepared.api_key, base_url=prepared.base_url)
    usage: contract.Usage | None = None
    finish: contract.Finish | None = None
    calls: list[contract.ToolCall] = []
    loop = asyncio.get_running_loop()
    coalesce = _coalesce_window()
    try:
        events = provider.stream(request) if early is None else _after(early.first, early.events)
        try:
            async for event in events:
                if isinstance(event, contract.TextDelta | contract.ReasoningDelta):
                    if not event.text:
                        continue
                    kind = "text" if isinstance(event, contract.TextDelta) else "reasoning"
                    gen.pending.append((kind, event.text))
                    waited = loop.time() - gen.last_flush
                    if gen.seq == 0 or waited >= coalesce:
                        # The first chunk goes out at once (time to first token); later ones in batches.
                        # Flushing here, not only from a timer, matters: when the upstream socket has
                        # data buffered this loop never yields, and a timer would not fire until the end.
                        # The flush is its own task (shielded) so a stop never cuts a frame half-sent;
                        # awaiting it also lets the other streams of this process have their turn.
                        await asyncio.shield(loop.create_task(relaying.flush(gen)))
                        gen.last_yield = loop.time()
                    else:
                        if gen.flush_handle is None:
                            # If the upstream pauses, the buffered text still goes out on time.
                            gen.flush_handle = loop.call_later(coalesce - waited, relaying.kick_flush, gen)
                        if loop.time() - gen.last_yield > YIELD_EVERY_S:
                            # Reading an upstream socket that already holds data never suspends: yield
                            # now and then, or one busy stream starves every other stream and socket.
                            gen.last_yield = loop.time()
                            await asyncio.sleep(0)
                elif isinstance(event, contract.Usage):
                    usage = event
                elif isinstance(event, contract.ProviderState):
                    gen.provider_state = event.value
                elif isinstance(event, contract.ToolCall):
                    calls.append(event)
                elif isinstance(event, contract.Finish):
                    finish = event
        finally:
            # Closing the generator closes the upstream response (also on cancellation).
            await close_events(events)
    finally:
        try:
            await provider.aclose()
        except Exception:
            logger.debug("provider close failed", exc_info=True)
    return usage, finish, calls


MAX_COALESCE_S = 0.1
YIELD_EVERY_S = 0.002


def _coalesce_window() -> float:
    """Seconds of deltas batched into one frame: QTAP_DELTA_COALESCE_MS when the process is quiet,
    longer when many streams share it (a millisecond per running generation, at most 100 ms), so
    the number of frames per second a process must send stays bounded as load grows."""
    base = max(float(settings.QTAP_DELTA_COALESCE_MS), 0.0) / 1000
    return min(max(base, len(delivery.generations()) * 0.001), max(base, MAX_COALESCE_S))


async def _after(first: asyncio.Task[Any], events: Any) -> Any:
    """The early call's events: the first (read while the send was being saved), then the rest."""
    try:
        try:
            yield await first
        except StopAsyncIteration:
            return
        async for event in events:
            yield event
    finally:
        await close_events(events)
