"""The tool loop of a reply: stream a turn, run the calls it asks for, hand the results back, stream
again, until a turn asks for none or the round limit is reached (then the model answers without tools).

Which tools a reply has is its chat's choice (or its profile's), among the enabled tool plugins' tools
for this user (``providers.tool_settings.tool_contexts``: the user's settings, secrets decrypted).
Every call is checked before it runs (a known tool, arguments that are a JSON object matching the
tool's schema), waits for the user's approval where the tool asks for it, and runs with its plugin's
timeout; a failure of any kind reaches the model as a tool error in words, and the reply goes on.
Calls of one turn run concurrently. A stop cancels the task running all of this: the upstream, the
calls and the loop; calls still open are saved "cancelled".

The runner calls ``converse`` only for a reply with tools on; a plain reply never enters this module.

May import: ``delivery``, ``models``, ``services``, ``tool_frames``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import jsonschema
from channels.db import database_sync_to_async
from django.conf import settings

from providers import contract
from providers.factory import create_tool_provider
from providers.registry import registry
from providers.tool_settings import tool_contexts
from qtap_site.chat import tool_frames
from qtap_site.chat.delivery import send_to_chat
from qtap_site.chat.models import ToolCall

logger = logging.getLogger(__name__)

Status = ToolCall.Status


class Generation(Protocol):
    """What the loop needs of the runner's ``RunningGeneration``."""

    chat_id: int
    user_id: int
    message_id: int
    content: list[str]
    pending: list[tuple[str, str]]
    provider_state: Any
    tool_rounds: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    approvals: dict[str, asyncio.Future[bool]]


StreamRound = Callable[
    [Any, Any, contract.ChatRequest],
    Awaitable[tuple[contract.Usage | None, contract.Finish | None, list[contract.ToolCall]]],
]


def max_rounds() -> int:
    return max(int(settings.QTAP_TOOL_MAX_ROUNDS), 1)


def result_cap() -> int:
    return max(int(settings.QTAP_TOOL_RESULT_MAX_CHARS), 100)


def approval_timeout() -> float:
    return float(settings.QTAP_TOOL_APPROVAL_TIMEOUT_SECONDS)


# ---- which tools a reply has -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    plugin: str
    spec: contract.ToolSpec
    needs_approval: bool
    timeout: float
    # Built once when the toolbox opens: checking a schema and building its validator cost more than
    # the rest of a call's round trip (None: the tool's schema is itself invalid; arguments go unchecked).
    validator: Any = None


def _validator(spec: contract.ToolSpec) -> Any:
    try:
        cls = jsonschema.validators.validator_for(spec.parameters)
        cls.check_schema(spec.parameters)
    except jsonschema.SchemaError:
        logger.warning("tool %s has an invalid schema; its arguments are not checked", spec.name)
        return None
    return cls(spec.parameters)


@dataclass
class Toolbox:
    tools: dict[str, Tool] = field(default_factory=dict)
    contexts: dict[str, contract.ToolContext] = field(default_factory=dict)
    providers: dict[str, contract.ToolProvider] = field(default_factory=dict)

    def specs(self) -> tuple[contract.ToolSpec, ...]:
        return tuple(tool.spec for tool in self.tools.values())


async def open_toolbox(user_id: int, selection: tuple[str, ...]) -> Toolbox:
    """The tools of ``selection`` (tool names, or tool plugins' names for all of theirs) this user can
    call now. A plugin whose listing fails or hangs is left out (logged); the others are kept."""
    contexts = await database_sync_to_async(tool_contexts)(user_id)
    box = Toolbox(contexts=contexts)
    wanted = set(selection)
    listings = []
    for name in contexts:
        plugin = registry.find(name)
        config = plugin.manifest.tool_config if plugin is not None else None
        if plugin is None or config is None:
            continue
        static = {tool.name for tool in config.tools}
        if name in wanted or static & wanted or (config.dynamic_tools and wanted - static):
            box.providers[name] = create_tool_provider(name)
            listings.append((name, config))
    answers = await asyncio.gather(
        *(asyncio.wait_for(box.providers[name].list_tools(contexts[name]), config.timeout_seconds)
          for name, config in listings),
        return_exceptions=True,
    )  # fmt: skip
    for (name, config), answer in zip(listings, answers, strict=True):
        if isinstance(answer, BaseException):
            logger.warning("tool plugin %s could not list its tools: %r", name, answer)
            continue
        for spec in answer:
            if (name in wanted or spec.name in wanted) and spec.name not in box.tools:
                approval = config.needs_approval if spec.needs_approval is None else spec.needs_approval
                box.tools[spec.name] = Tool(name, spec, approval, config.timeout_seconds, _validator(spec))
    return box


# ---- the loop --------------------------------------------------------------------------------------


async def converse(
    gen: Generation, prepared: Any, stream_round: StreamRound, drain: Callable[[Any], Awaitable[None]]
) -> tuple[contract.Usage | None, contract.Finish | None]:
    """Turns until one asks for no tools; answers the reply's summed usage and its last finish."""
    box = await open_toolbox(gen.user_id, prepared.tools)
    request: contract.ChatRequest = replace(prepared.request, tools=box.specs())
    total: contract.Usage | None = None
    start = 0
    limit = max_rounds()
    for index in range(limit + 1):
        if index == limit:  # the last turn: the model is asked for its answer, without tools
            request = replace(request, tool_choice="none")
        usage, finish, calls = await stream_round(gen, prepared, request)
        total = _added(total, usage)
        if not calls or index == limit or not request.tools:
            if calls:  # a model that ignores tool_choice: its calls are not run and the reply ends here
                finish = contract.Finish("other")
            return total, finish
        await drain(gen)
        text = "".join(gen.content)
        offset = len(text)
        # The next turn's text starts a paragraph of its own on the page; ``next`` is where it starts, so
        # each turn goes back to its provider exactly as it came (a signature may cover its text).
        separator = "\n\n" if text and not text.endswith("\n") else ""
        gen.tool_rounds.append(
            {"offset": offset, "next": offset + len(separator), "provider_state": gen.provider_state}
        )
        turn = contract.Message(
            role="assistant", content=text[start:offset], tool_calls=tuple(calls), provider_state=gen.provider_state
        )
        gen.provider_state = None
        results = await run_calls(gen, box, calls, index)
        request = replace(request, messages=(*request.messages, turn, *results))
        if separator:
            gen.pending.append(("text", separator))
        start = offset + len(separator)
    return total, None  # not reached: the last turn always returns


def _added(total: contract.Usage | None, usage: contract.Usage | None) -> contract.Usage | None:
    """Every turn is billed: a reply's usage is the sum of its turns'."""
    if total is None or usage is None:
        return usage or total

    def plus(a: Any, b: Any) -> Any:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return contract.Usage(
        input_tokens=plus(total.input_tokens, usage.input_tokens),
        output_tokens=plus(total.output_tokens, usage.output_tokens),
        cost=plus(total.cost, usage.cost),
        cached_input_tokens=plus(total.cached_input_tokens, usage.cached_input_tokens),
        cache_write_tokens=plus(total.cache_write_tokens, usage.cache_write_tokens),
        reasoning_tokens=plus(total.reasoning_tokens, usage.reasoning_tokens),
    )


# ---- the calls of one turn -------------------------------------------------------------------------


async def run_calls(
    gen: Generation, box: Toolbox, calls: list[contract.ToolCall], index: int
) -> list[contract.Message]:
    """Run one turn's calls concurrently; answers their results as ``tool`` messages, in call order."""
    records: list[dict[str, Any]] = []
    for call in calls:
        tool = box.tools.get(call.name)
        problem = call_problem(call, tool, box)
        waits = tool is not None and tool.needs_approval and problem is None
        records.append(
            {
                "call_id": call.id,
                "round": index,
                "name": call.name,
                "plugin": tool.plugin if tool else "",
                "arguments": call.arguments,
                "invalid_arguments": call.invalid_arguments or "",
                "needs_approval": waits,
                "status": Status.AWAITING_APPROVAL if waits else Status.RUNNING,
                "problem": problem,
            }
        )
    gen.tool_calls.extend(records)
    await database_sync_to_async(_save_calls)(gen.message_id, records)
    for record in records:
        await send_to_chat(gen.chat_id, tool_frames.tool_call(gen.message_id, record))
    try:
        await asyncio.gather(*(_run_one(gen, box, record) for record in records))
    except asyncio.CancelledError:
        open_calls = [r for r in records if r["status"] in (Status.AWAITING_APPROVAL, Status.RUNNING)]
        for record in open_calls:
            record["status"] = Status.CANCELLED
        if open_calls:
            await asyncio.shield(database_sync_to_async(_update_calls)(gen.message_id, open_calls))
        raise
    return [
        contract.Message(
            role="tool",
            content=record["result"],
            tool_call_id=record["call_id"],
            is_error=record["is_error"],
            tool_name=record["name"],
        )
        for record in records
    ]


def call_problem(call: contract.ToolCall, tool: Tool | None, box: Toolbox) -> str | None:
    """Why ``call`` cannot run, in words the model can act on; None when it can."""
    if tool is None:
        offered = ", ".join(sorted(box.tools)) or "none"
        return f"There is no tool named {call.name!r} in this chat. The tools are: {offered}."
    if call.invalid_arguments is not None:
        return (
            f"The arguments of {call.name} were not a JSON object: {call.invalid_arguments[:200]!r}. "
            "Call it again with arguments that are a JSON object matching its schema."
        )
    error = jsonschema.exceptions.best_match(tool.validator.iter_errors(call.arguments)) if tool.validator else None
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the arguments"
        return f"The arguments of {call.name} do not match its schema ({where}: {error.message})."
    return None


async def _run_one(gen: Generation, box: Toolbox, record: dict[str, Any]) -> None:
    started = time.monotonic()
    problem = record.pop("problem")
    if problem is not None:
        _settle(record, Status.ERROR, problem, is_error=True, started=started)
    elif record["needs_approval"] and not await _approved(gen, record):
        _settle(
            record, Status.DENIED, "The user denied this call; do not try it again.", is_error=True, started=started
        )
    else:
        started = time.monotonic()
        tool = box.tools[record["name"]]
        try:
            result = await asyncio.wait_for(
                box.providers[tool.plugin].call(record["name"], record["arguments"], box.contexts[tool.plugin]),
                tool.timeout,
            )
        except TimeoutError:
            result = contract.ToolResult(f"The tool did not answer within {tool.timeout:g} seconds.", is_error=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool plugin's failure is the model's to hear about, not the chat's
            logger.warning("tool %s failed", record["name"], exc_info=True)
            result = contract.ToolResult(f"The tool failed: {type(exc).__name__}: {str(exc)[:500]}", is_error=True)
        status = Status.ERROR if result.is_error else Status.COMPLETE
        _settle(record, status, _capped(result.content), is_error=result.is_error, started=started)
    await database_sync_to_async(_update_calls)(gen.message_id, [record])
    await send_to_chat(gen.chat_id, tool_frames.tool_result(gen.message_id, record))


async def _approved(gen: Generation, record: dict[str, Any]) -> bool:
    """Wait for the user's yes or no (from any tab, in any process: ``delivery.approve_tool``)."""
    waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    gen.approvals[record["call_id"]] = waiter
    try:
        approved = await asyncio.wait_for(waiter, approval_timeout())
    except TimeoutError:
        approved = False
    finally:
        gen.approvals.pop(record["call_id"], None)
    if approved:
        record["status"] = Status.RUNNING
        await database_sync_to_async(_update_calls)(gen.message_id, [record])
        await send_to_chat(gen.chat_id, tool_frames.tool_call(gen.message_id, record))
    return approved


def _settle(record: dict[str, Any], status: str, content: str, *, is_error: bool, started: float) -> None:
    record.update(status=status, result=content, is_error=is_error)
    record["duration_ms"] = round((time.monotonic() - started) * 1000)


def _capped(content: str) -> str:
    cap = result_cap()
    if len(content) <= cap:
        return content
    return f"{content[:cap]}\n\n[The result was cut to {cap} of its {len(content)} characters.]"


# ---- saving ------------------------------------------------------------------------------------------


def _save_calls(message_id: int, records: list[dict[str, Any]]) -> None:
    ToolCall.objects.bulk_create(
        [
            ToolCall(
                message_id=message_id,
                round=r["round"],
                call_id=r["call_id"],
                name=r["name"][:200],
                plugin=r["plugin"],
                arguments=r["arguments"],
                invalid_arguments=r["invalid_arguments"],
                needs_approval=r["needs_approval"],
                status=r["status"],
            )
            for r in records
        ],
        ignore_conflicts=True,  # a provider that repeats a call id in one turn: the first is kept
    )


def _update_calls(message_id: int, records: list[dict[str, Any]]) -> None:
    for r in records:
        ToolCall.objects.filter(message_id=message_id, round=r["round"], call_id=r["call_id"]).update(
            status=r["status"], result=r.get("result", ""), is_error=r.get("is_error", False),
            duration_ms=r.get("duration_ms"),
        )  # fmt: skip
