"""The frames of a running generation after its upstream request has left: its deltas, batched a
few milliseconds at a time (``flush``), and its end, saved and told (``finish``, ``fail``). The frames
that announce the reply (``message.created``, ``generation.started``) go out beside the upstream
request (``runner``); ``announced`` keeps every later frame behind them. A reply that ends leaves the
``plans.Plan`` of its chat's next send (``remember``).

May import: ``batching``, ``delivery``, ``models``, ``plans``, ``pricing``, ``protocol``, ``sending``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Protocol

from providers import contract
from qtap_site.chat import delivery, plans, protocol, sending
from qtap_site.chat.batching import FinalSaves
from qtap_site.chat.delivery import send_to_chat
from qtap_site.chat.models import Message
from qtap_site.chat.pricing import message_cost

logger = logging.getLogger(__name__)


class Relayed(delivery.Running, Protocol):
    """What these need of the runner's ``RunningGeneration``."""

    received_at: float
    content: list[str]
    reasoning: list[str]
    pending: list[tuple[str, str]]
    ttft_ms: int | None
    flush_lock: asyncio.Lock
    flush_handle: asyncio.Handle | None
    last_flush: float
    provider_state: Any
    tool_rounds: list[dict[str, Any]]
    announcing: asyncio.Task[str] | None
    plan_since: int  # ``plans.changes`` before its send was prepared


async def announced(gen: Relayed) -> None:
    """Wait until the frames announcing the reply are out (at once after the first time). A failure
    there (the channel layer down while joining the control group) is raised once, to the stream."""
    task = gen.announcing
    if task is None:
        return
    try:
        await asyncio.shield(task)  # a stop must not cut the announcing frames half-sent
    finally:
        if task.done():
            gen.announcing = None


def kick_flush(gen: Relayed) -> None:
    gen.flush_handle = None
    # A task of its own, so that cancelling the generation never cuts a frame half-sent.
    asyncio.get_running_loop().create_task(flush(gen))


async def flush(gen: Relayed) -> None:
    async with gen.flush_lock:
        await announced(gen)
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


async def drain(gen: Relayed) -> None:
    """Send whatever is still buffered, after any flush already under way."""
    if gen.flush_handle is not None:
        gen.flush_handle.cancel()
        gen.flush_handle = None
    await flush(gen)


def release(gen: Relayed) -> None:
    """The chat is free again: said before the terminal frame goes out, as a tab may answer it with its
    next message at once (with several processes that can arrive while the frame's publish is awaited)."""
    gen.streaming = False
    delivery.release(gen)


async def finish(
    gen: Relayed,
    prepared: sending.Prepared,
    finish_reason: str,
    usage: contract.Usage | None,
    *,
    status: str,
) -> None:
    cost = message_cost(usage, provider_name=prepared.provider_name, model=prepared.model)
    counts = {name: getattr(usage, name) if usage else None for name in USAGE_FIELDS}
    ended, html = await end(
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
    remember(gen, prepared, status)  # before the frame: a tab may answer it with its next message at once
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


async def fail(gen: Relayed, prepared: sending.Prepared, code: str, message: str, *, retryable: bool) -> None:
    gen.streaming = False
    ended, _ = await end(
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


async def end(gen: Relayed, prepared: sending.Prepared, *, retryable: bool, **saved: Any) -> tuple[dict[str, Any], str]:
    """Send what is still buffered, save the reply as it ended and free the chat; answers the reply's
    message as it ended (``protocol.ended_message``) and its text as HTML."""
    try:
        await announced(gen)  # raises only if the stream never flushed: then it is why this reply ends
    except Exception:
        logger.warning("generation %s was not announced", gen.message_id, exc_info=True)
    await drain(gen)
    snap = gen.snapshot()
    saved |= {"content": snap["content"], "reasoning": snap["reasoning"], "seq": snap["seq"], "ttft_ms": gen.ttft_ms}
    html = await FinalSaves.for_loop().save(message_id=gen.message_id, **saved)
    release(gen)
    drawn = {"tool_calls": snap["tool_calls"]} if "tool_calls" in snap else {}
    return protocol.ended_message(prepared.assistant_message, html=html, retryable=retryable, **saved, **drawn), html


# ---- what the chat's next send will ask -----------------------------------------------------------


def remember(gen: Relayed, prepared: sending.Prepared, status: str) -> None:
    """After a reply ended: the plan of the chat's next send, if it can be told from this one (a plain
    reply that completed, with nothing changed since its send was prepared). Any other ending forgets
    it; the next send then goes the usual way."""
    plans.plans.pop(gen.chat_id, None)
    request = prepared.request
    if (
        request is None
        or prepared.profile_id is None
        or status != Message.Status.COMPLETE
        or prepared.tools
        or gen.tool_rounds
        or gen.provider_state is not None
    ):
        return
    text = "".join(gen.content)
    # The reply as ``services.provider_request`` will read it back: a complete assistant turn.
    turn = (contract.Message(role="assistant", content=text),) if text else ()
    plan = plans.Plan(
        user_id=gen.user_id,
        chat_id=gen.chat_id,
        profile_id=prepared.profile_id,
        profile_plugin=str(prepared.assistant_message.get("plugin") or ""),
        plugin=prepared.plugin,
        provider_name=prepared.provider_name,
        model=prepared.model,
        api_key=prepared.api_key,
        base_url=prepared.base_url,
        request=dataclasses.replace(request, messages=request.messages + turn),
        notes=prepared.notes,
        parent_id=gen.message_id,
        parent=(Message.Status.COMPLETE, text),
        newest_id=gen.message_id,
        chat=prepared.chat_facts,
    )
    plans.store(plan, since=gen.plan_since)
