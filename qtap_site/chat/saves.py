"""Saving the text of running generations: checkpoints (about once a second, also the heartbeat other
processes read) and final saves, synchronous Django. Both come in batches (``batching``) and are
written with one prepared statement run once per row.

May import: ``models``, ``rendering``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from qtap_site.chat.models import Message
from qtap_site.chat.rendering import render_markdown

logger = logging.getLogger(__name__)


def checkpoint_message(*, message_id: int, content: str, reasoning: str, seq: int) -> None:
    """The once-a-second save of a running generation; also its heartbeat."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        content=content, reasoning=reasoning, seq=seq, heartbeat_at=timezone.now()
    )


def checkpoint_messages(items: list[dict[str, Any]]) -> set[int]:
    """Checkpoint several running generations in one call (one trip to the database thread); answers
    the ids saved.

    All rows go in one prepared statement run for each row (``executemany``): through the ORM every
    row paid for building and compiling its UPDATE, which at 200 streams made checkpoints a large
    share of the process's CPU. If the batch fails (a lock, a brief outage), each row is tried on its
    own, so one failure costs only its own row.
    """
    if not items:
        return set()
    try:
        with transaction.atomic():
            _checkpoint_batch(items)
        return {item["message_id"] for item in items}
    except Exception:
        logger.warning("checkpoint of %d messages failed; saving them one by one", len(items), exc_info=True)
    saved = set()
    for item in items:
        try:
            checkpoint_message(**item)
        except Exception:
            logger.warning("checkpoint of message %s failed", item.get("message_id"), exc_info=True)
        else:
            saved.add(item["message_id"])
    return saved


def _checkpoint_batch(items: list[dict[str, Any]]) -> None:
    """``checkpoint_message`` for every item, as one statement executed once per row."""
    now = timezone.now()
    rows = [(item["content"], item["reasoning"], item["seq"], now, item["message_id"]) for item in items]
    _update_rows(("content", "reasoning", "seq", "heartbeat_at"), rows, only_streaming=True)


def _update_rows(fields: tuple[str, ...], rows: list[tuple[Any, ...]], *, only_streaming: bool = False) -> None:
    """``UPDATE message SET <fields> WHERE id = <last value of the row>`` for every row, as one prepared
    statement run once per row (``executemany``). The ORM built and compiled an UPDATE per row,
    which at hundreds of generations was most of the cost of saving them."""
    quote = connection.ops.quote_name
    by_name = {f.name: f for f in Message._meta.concrete_fields}
    assignments = ", ".join(f"{quote(by_name[name].column)} = %s" for name in fields)
    where = f"{quote(by_name['id'].column)} = %s"
    if only_streaming:
        where += f" AND {quote(by_name['status'].column)} = %s"
    table = quote(Message._meta.db_table)
    # Only quoted identifiers from the model are formatted in; every value is a parameter.
    sql = f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608
    prepared = [
        [by_name[name].get_db_prep_save(value, connection) for name, value in zip((*fields, "id"), row, strict=True)]
        + ([Message.Status.STREAMING.value] if only_streaming else [])
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, prepared)


def finish_message(
    *,
    message_id: int,
    status: str,
    content: str,
    reasoning: str,
    seq: int,
    finish_reason: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost: Decimal | float | None = None,
    ttft_ms: int | None = None,
    error_code: str = "",
    error_message: str = "",
    cached_input_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    provider_state: Any = None,
    tool_rounds: Any = None,
    notes: str = "",
) -> str:
    """The final save of a generation; answers the rendered HTML of its text."""
    now = timezone.now()
    Message.objects.filter(pk=message_id).update(
        status=status,
        content=content,
        reasoning=reasoning,
        seq=seq,
        finish_reason=finish_reason,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=Decimal(str(cost)) if cost is not None else None,
        ttft_ms=ttft_ms,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
        provider_state=provider_state,
        tool_rounds=tool_rounds,
        notes=notes,
        error_code=error_code,
        error_message=error_message[:2000],
        heartbeat_at=now,
        updated_at=now,
    )
    return render_markdown(content)


FINAL_FIELDS = (
    "status",
    "content",
    "reasoning",
    "seq",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cost",
    "ttft_ms",
    "error_code",
    "error_message",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "provider_state",
    "tool_rounds",
    "notes",
    "heartbeat_at",
    "updated_at",
)


def finish_messages(items: list[dict[str, Any]]) -> list[str | Exception]:
    """``finish_message`` for generations ending together, in one transaction; answers, per item, the
    rendered HTML or the exception that stopped its save. If the batch fails, each is saved on its
    own, so one failure costs only its own row."""
    try:
        with transaction.atomic():
            _finish_batch(items)
    except Exception:
        logger.warning("final save of %d messages failed; saving them one by one", len(items), exc_info=True)
        results: list[str | Exception] = []
        for item in items:
            try:
                results.append(finish_message(**item))
            except Exception as exc:
                results.append(exc)
        return results
    return [render_markdown(item["content"]) for item in items]


def _finish_batch(items: list[dict[str, Any]]) -> None:
    now = timezone.now()
    rows = []
    for item in items:
        values = {"finish_reason": "", "error_code": "", "error_message": "", "notes": "", "heartbeat_at": now}
        values["updated_at"] = now
        values |= {name: item.get(name) for name in FINAL_FIELDS if name in item}
        values["error_message"] = str(values["error_message"] or "")[:2000]
        cost = values.get("cost")
        values["cost"] = Decimal(str(cost)) if cost is not None else None
        rows.append((*(values.get(name) for name in FINAL_FIELDS), item["message_id"]))
    _update_rows(FINAL_FIELDS, rows)
