"""The generation runner: one asyncio task per generation, relaying provider events to the chat's tabs.

``start_reply`` takes a ``message.send`` or ``message.regenerate``: refused at once if this process is
busy for it, else prepared in the next batch of sends and started. The per-token path appends to an
in-memory buffer; a flush a few milliseconds later sends one frame per batch (serialised once, whatever
the number of tabs). Checkpoints and final saves go through ``batching``. Exactly one terminal event
(``generation.finished`` or ``generation.error``) per generation. Stop reaches the task from any process
through ``delivery``. A reply with tools on goes through ``tool_loop``, which calls ``_stream`` per turn.

May import: ``batching``, ``chat_frames``, ``delivery``, ``models``, ``pricing``, ``protocol``, ``sending``,
``tool_frames``, ``tool_loop``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from providers import contract
from providers.errors import ProtocolError, QtapProviderError
from providers.factory import create_llm_provider
from qtap_site.chat import chat_frames, delivery, protocol, sending, tool_frames, tool_loop
from qtap_site.chat.batching import Checkpoints, FinalSaves, SendQueue
from qtap_site.chat.delivery import send_to_chat
from qtap_site.chat.models import Message
from qtap_site.chat.pricing import message_cost

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
    prepared = await SendQueue.for_loop().prepare(request)
    await start_generation(prepared, received_at=received_at)


def _started(task: asyncio.Task[None]) -> None:
    _starting.discard(task)
    # Its tab answers a refusal; when the tab went away, it is retrieved here (and only logged).
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("a send ended before its reply started: %r", exc)


async def start_generation(prepared: sending.Prepared, *, received_at: float) -> RunningGeneration:
    """Start the task of a prepared generation."""
    gen = RunningGeneration(
        chat_id=prepared.chat_id, user_id=prepared.user_id, message_id=prepared.assistant_id, received_at=received_at
    )
    delivery.register(gen)
    gen.task = asyncio.get_running_loop().create_task(_run(gen, prepared), name=f"generation-{gen.message_id}")
    return gen


# ---- the task ------------------------------------------------------------------------------------


async def _run(gen: RunningGeneration, prepared: sending.Prepared) -> None:
    control: str | None = None
    try:
        try:
            control = await delivery.join_control(gen.chat_id)
            if prepared.user_message is not None:
                await send_to_chat(gen.chat_id, protocol.message_created(prepared.user_message))
            await send_to_chat(gen.chat_id, protocol.message_created(prepared.assistant_message))
            if prepared.error is None:
                await send_to_chat(
                    gen.chat_id,
                    protocol.generation_started(
                        message_id=gen.message_id,
                        profile_id=prepared.profile_id,
                        plugin=prepared.plugin,
                        model=prepared.model,
                    ),
                )
            if prepared.renamed is not None:  # the send named its chat: every tab's heading and list follow
                await send_to_chat(gen.chat_id, {"type": chat_frames.CHAT_UPDATED, "chat": prepared.renamed})
            if prepared.error is not None:
                code, message = prepared.error
                await _fail(gen, prepared, code, message, retryable=protocol.is_retryable(code))
                return
            gen.streaming = True
            Checkpoints.for_loop().ensure_running(delivery.generations())
            if prepared.tools:
                usage, finish = await tool_loop.converse(gen, prepared, _stream, _drain)
            else:
                usage, finish, _ = await _stream(gen, prepared)
            if finish is None:
                raise ProtocolError(prepared.plugin, "The provider ended the stream before finishing the reply.")
        except asyncio.CancelledError:
            gen.streaming = False
            if gen.stop_requested:
                await _finish(gen, prepared, "cancelled", None, status=Message.Status.CANCELLED)
                return
            # The loop is shutting down: keep the text; recovery marks the row "interrupted".
            await Checkpoints.for_loop().save_now(gen)
            raise
        except Exception as exc:
            if not isinstance(exc, QtapProviderError):
                logger.exception("generation %s failed", gen.message_id)
            code, message, retryable = protocol.failure(exc)
            await _fail(gen, prepared, code, message, retryable=retryable)
            return
        gen.streaming = False
        await _finish(gen, prepared, finish.reason, usage, status=Message.Status.COMPLETE)
    except Exception:
        # Only reached if sending the terminal event itself failed (a broken channel layer).
        logger.exception("generation %s could not report its end", gen.message_id)
    finally:
        gen.streaming = False
        delivery.release(gen)
        if control is not None:
            await delivery.leave_control(gen.chat_id, control)


async def _stream(
    gen: RunningGeneration, prepared: sending.Prepared, request: contract.ChatRequest | None = None
) -> tuple[contract.Usage | None, contract.Finish | None, list[contract.ToolCall]]:
    """One provider turn, relayed to the tabs: its usage, its finish and the tools it called."""
    request = request or prepared.request
    assert request is not None
    provider = create_llm_provider(prepared.plugin, api_key=prepared.api_key, base_url=prepared.base_url)
    usage: contract.Usage | None = None
    finish: contract.Finish | None = None
    calls: list[contract.ToolCall] = []
    loop = asyncio.get_running_loop()
    coalesce = _coalesce_window()
    try:
        events = provider.stream(request)
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
                        await asyncio.shield(loop.create_task(_flush(gen)))
                        gen.last_yield = loop.time()
                    else:
                        if gen.flush_handle is None:
                            # If the upstream pauses, the buffered text still goes out on time.
                            gen.flush_handle = loop.call_later(coalesce - waited, _kick_flush, gen)
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


async def _aclose(events: Any) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _kick_flush(gen: RunningGeneration) -> None:
    gen.flush_handle = None
    # A task of its own, so that cancelling the generation never cuts a frame half-sent.
    asyncio.get_running_loop().create_task(_flush(gen))


async def _flush(gen: RunningGeneration) -> None:
    async with gen.flush_lock:
        gen.last_flush = asyncio.get_running_loop().time()
        if gen.flush_handle is not None:
            gen.flush_handle.cancel()
            gen.flush_handle = None
        if not gen.pending:
            return
        batch, gen.pending = gen.pending, []
        frames = []
        for kind, text in _runs(batch):
            gen.seq += 1
            (gen.content if kind == "text" else gen.reasoning).append(text)
            frames.append(protocol.generation_delta(gen.message_id, gen.seq, text, reasoning=kind != "text"))
        if gen.ttft_ms is None:
            gen.ttft_ms = round((time.monotonic() - gen.received_at) * 1000)
        for frame in frames:
            await send_to_chat(gen.chat_id, frame)


def _runs(batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge consecutive chunks of the same kind, keeping their order."""
    merged: list[tuple[str, list[str]]] = []
    for kind, text in batch:
        if merged and merged[-1][0] == kind:
            merged[-1][1].append(text)
        else:
            merged.append((kind, [text]))
    return [(kind, "".join(parts)) for kind, parts in merged]


async def _drain(gen: RunningGeneration) -> None:
    """Send whatever is still buffered, after any flush already under way."""
    if gen.flush_handle is not None:
        gen.flush_handle.cancel()
        gen.flush_handle = None
    await _flush(gen)


def _release(gen: RunningGeneration) -> None:
    """The chat is free again: said before the terminal frame goes out, as a tab may answer it with its
    next message at once (with several processes that can arrive while the frame's publish is awaited)."""
    gen.streaming = False
    delivery.release(gen)


async def _finish(
    gen: RunningGeneration,
    prepared: sending.Prepared,
    finish_reason: str,
    usage: contract.Usage | None,
    *,
    status: str,
) -> None:
    cost = message_cost(usage, provider_name=prepared.provider_name, model=prepared.model)
    counts = {name: getattr(usage, name) if usage else None for name in USAGE_FIELDS}
    ended, html = await _end(
        gen,
        prepared,
        retryable=False,
        status=status,
        finish_reason=finish_reason,
        cost=cost,
        **counts,
        # Only a whole reply's state goes back: a cut-off turn's signatures would not verify.
        provider_state=gen.provider_state if status == Message.Status.COMPLETE else None,
        tool_rounds=gen.tool_rounds or None,
        notes=prepared.notes,
    )
    await send_to_chat(
        gen.chat_id,
        protocol.generation_finished(
            message_id=gen.message_id,
            finish_reason=finish_reason,
            input_tokens=ended["input_tokens"],
            output_tokens=ended["output_tokens"],
            cost=ended["cost"],
            ttft_ms=gen.ttft_ms,
            html=html,
            message_html=ended["message_html"],
            cached_input_tokens=counts["cached_input_tokens"],
            reasoning_tokens=counts["reasoning_tokens"],
        ),
    )


USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


async def _fail(
    gen: RunningGeneration, prepared: sending.Prepared, code: str, message: str, *, retryable: bool
) -> None:
    gen.streaming = False
    ended, _ = await _end(
        gen,
        prepared,
        retryable=retryable,
        status=Message.Status.ERROR,
        finish_reason="error",
        error_code=code,
        error_message=message,
    )
    frame = protocol.generation_error(
        message_id=gen.message_id, code=code, message=message, retryable=retryable, message_html=ended["message_html"]
    )
    await send_to_chat(gen.chat_id, frame)


async def _end(
    gen: RunningGeneration, prepared: sending.Prepared, *, retryable: bool, **saved: Any
) -> tuple[dict[str, Any], str]:
    """Send what is still buffered, save the reply as it ended and free the chat; answers the reply's
    message as it ended (``protocol.ended_message``) and its text as HTML."""
    await _drain(gen)
    snap = gen.snapshot()
    saved |= {"content": snap["content"], "reasoning": snap["reasoning"], "seq": snap["seq"], "ttft_ms": gen.ttft_ms}
    html = await FinalSaves.for_loop().save(message_id=gen.message_id, **saved)
    _release(gen)
    drawn = {"tool_calls": snap["tool_calls"]} if "tool_calls" in snap else {}
    return protocol.ended_message(prepared.assistant_message, html=html, retryable=retryable, **saved, **drawn), html
