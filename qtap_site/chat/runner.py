"""The generation runner: one asyncio task per generation, relaying provider events to the chat's tabs.

``start_reply`` takes a ``message.send`` or ``message.regenerate``: refused at once if this process is
busy for it, else prepared in the next batch of sends and started. A chat's next plain send opens its
provider call beside its transaction, from the plan its last reply left (``_open_early``); the call is
read only once the transaction has saved the send and built the same call. The upstream request
leaves beside the frames that announce the reply. The per-token path appends to an in-memory buffer; a flush a few
milliseconds later sends one frame per batch (serialised once, whatever the number of tabs:
``relaying``, which also ends the reply). Checkpoints and final saves go through ``batching``. Exactly
one terminal event (``generation.finished`` or ``generation.error``) per generation. Stop reaches the
task from any process through ``delivery``. A reply with tools on goes through ``tool_loop``, which
calls ``_stream`` per turn.

May import: ``batching``, ``chat_frames``, ``delivery``, ``models``, ``protocol``, ``relaying``, ``sending``,
``tool_frames``, ``tool_loop``; ``qtap_site.budgets.guard``, whether a call may leave before the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from providers import contract
from providers.errors import ProtocolError, QtapProviderError
from providers.factory import create_llm_provider
from qtap_site.budgets import guard
from qtap_site.chat import chat_frames, delivery, protocol, relaying, sending, tool_frames, tool_loop
from qtap_site.chat.batching import Checkpoints, SendQueue
from qtap_site.chat.delivery import send_to_chat
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
    early = _open_early(request)
    try:
        prepared = await SendQueue.for_loop().prepare(request)
    except BaseException:
        if early is not None:
            await early.close()  # refused or failed: the early call is cut before anything was relayed
        raise
    if early is not None and not early.made_for(prepared):
        await early.close()
        early = None
    await start_generation(prepared, received_at=received_at, early=early)


@dataclass
class _Early:
    """A provider call opened beside its send's transaction, from the chat's ``relaying.Plan``. Nothing
    of it is read past the first event until the transaction has committed the send (its placeholder
    saved, its checks passed) and built the very same call; otherwise it is closed unread."""

    plan: relaying.Plan
    request: contract.ChatRequest
    provider: contract.LLMProvider
    events: Any
    first: asyncio.Task[Any]

    def made_for(self, prepared: sending.Prepared) -> bool:
        plan = self.plan
        return (
            prepared.error is None
            and not prepared.tools
            and prepared.request == self.request
            and (prepared.plugin, prepared.api_key, prepared.base_url) == (plan.plugin, plan.api_key, plan.base_url)
        )

    async def close(self) -> None:
        self.first.cancel()
        with contextlib.suppress(BaseException):
            await self.first
        with contextlib.suppress(Exception):
            await _aclose(self.events)
        with contextlib.suppress(Exception):
            await self.provider.aclose()


def _open_early(send: sending.SendRequest) -> _Early | None:
    """Open the send's provider call now, if its chat's plan is fresh and the send's own checks cannot
    refuse it for a reason the plan does not know: a plain message (not an edit, not a regeneration), no
    budget covering the user, and one process (every tab, view and change of the site is this process's,
    so its plans are current)."""
    plan = relaying.plans.get(send.chat_id)
    queue = SendQueue.for_loop()
    if (
        plan is None
        # Under a burst the batch of sends is what every call waits for; opening calls early would
        # only add to the loop's work in front of it (measured: 50 sends at once started later).
        or queue.waiting
        or (queue.worker is not None and not queue.worker.done())
        or plan.user_id != send.user_id
        or time.monotonic() - plan.made_at > relaying.PLAN_SECONDS
        or send.attachment_ids
        or send.regenerate_id is not None
        or send.edit_id is not None  # another branch than the plan's
        or send.profile_id is not None
        or not send.content.strip()
        or not delivery.single_process()
        or not guard.surely_unbudgeted(send.user_id)
    ):
        return None
    user = contract.Message(role="user", content=send.content)
    request = dataclasses.replace(plan.request, messages=(*plan.request.messages, user))
    provider = create_llm_provider(plan.plugin, api_key=plan.api_key, base_url=plan.base_url)
    events = provider.stream(request)
    first = asyncio.get_running_loop().create_task(_first(events))
    return _Early(plan, request, provider, events, first)


def _started(task: asyncio.Task[None]) -> None:
    _starting.discard(task)
    # Its tab answers a refusal; when the tab went away, it is retrieved here (and only logged).
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("a send ended before its reply started: %r", exc)


async def start_generation(
    prepared: sending.Prepared, *, received_at: float, early: _Early | None = None
) -> RunningGeneration:
    """Start the task of a prepared generation (on the provider call opened ``early``, if one was)."""
    gen = RunningGeneration(
        chat_id=prepared.chat_id, user_id=prepared.user_id, message_id=prepared.assistant_id, received_at=received_at
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


async def _run(gen: RunningGeneration, prepared: sending.Prepared, early: _Early | None = None) -> None:
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
    early: _Early | None = None,
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
            await _aclose(events)
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


async def _first(events: Any) -> Any:
    return await anext(events)


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
        await _aclose(events)


async def _aclose(events: Any) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
