"""One phase of bench/transfer.py, in a fresh interpreter so its peak memory (ru_maxrss) is its own:
``seed`` (an account of N messages), ``export`` (GET /export/ through the full Django stack, read as
streamed), ``import`` (the exported archive, or a ChatGPT export made from it, imported for a new user).

    python -m bench._transfer_child seed --messages 50000
    python -m bench._transfer_child export --out /tmp/a.json
    python -m bench._transfer_child import --file /tmp/a.json

Prints one ``QTAP_BENCH {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from decimal import Decimal
from typing import Any

import django

PER_CHAT = 100
TEXT = (
    "Here is a reply of ordinary length, with **Markdown**, a list:\n\n1. one\n2. two\n\n"
    "```python\nprint('message {i}')\n```\n\nand a closing sentence for message {i}."
)


def _rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def seed(messages: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from qtap_site.chat.models import Chat, Message, ToolCall

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench", password="bench-password-long")
    made = 0
    while made < messages:
        chat = Chat.objects.create(user=user, title=f"Bench chat {made // PER_CHAT}", system_prompt="Be brief.")
        rows: list[Message] = []
        for i in range(min(PER_CHAT, messages - made)):
            role = "user" if i % 2 == 0 else "assistant"
            row = Message(chat=chat, role=role, content=TEXT.format(i=made + i))
            if role == "assistant":
                row.model, row.plugin, row.input_tokens, row.output_tokens = "gpt-4.1", "qtap-plugin-openai", 900, 120
                row.cost = Decimal("0.00123400")
            rows.append(row)
        Message.objects.bulk_create(rows)
        for i, row in enumerate(rows[1:], 1):
            # Every tenth message is a regenerated sibling of the one before it (the same parent).
            row.parent = rows[i - 2] if i % 10 == 9 and i >= 2 else rows[i - 1]
        Message.objects.bulk_update(rows, ["parent"], batch_size=1000)
        calls = [ToolCall(message=r, call_id=f"c{r.pk}", name="lookup", arguments={"q": "x"}, result="ok")
                 for r in rows[1::20]]  # fmt: skip
        ToolCall.objects.bulk_create(calls)
        made += len(rows)
    return {"messages": Message.objects.count(), "chats": Chat.objects.count()}


def export(out: str, trace: bool) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    base = _rss_mib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get("/export/")
    chunks = size = 0
    first_byte = None
    with open(out, "wb") as handle:
        for chunk in response.streaming_content:
            first_byte = first_byte if first_byte is not None else time.perf_counter() - started
            handle.write(chunk)
            chunks, size = chunks + 1, size + len(chunk)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    rss = _rss_mib()  # before the check below, which loads the whole file
    with open(out, "rb") as handle:
        count = sum(len(c["messages"]) for c in json.load(handle)["chats"])
    return {
        "seconds": round(seconds, 3), "messages": count, "messages_per_s": round(count / seconds),
        "bytes": size, "chunks": chunks, "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "rss_before_mib": base, "rss_peak_mib": rss,
        "tracemalloc_peak_mib": round(peak / 2**20, 1) if peak is not None else None,
    }  # fmt: skip


def to_chatgpt(archive_path: str, out: str, repeat: int = 1) -> None:
    """The archive rewritten as a ChatGPT conversations.json (same trees), to time that reader too;
    ``repeat`` times over under new ids, for a file the size of a big real export."""
    with open(archive_path, "rb") as handle:
        chats = json.load(handle)["chats"]
    chats = [{**chat, "id": f"{chat['id']}-{r}"} for r in range(repeat) for chat in chats]
    conversations = []
    for chat in chats:
        mapping: dict[str, Any] = {}
        for m in chat["messages"]:
            parent = str(m["parent"]) if m["parent"] is not None else None
            content = {"content_type": "text", "parts": [m["content"]]}
            message = {"id": str(m["id"]), "author": {"role": m["role"]}, "content": content, "create_time": 1.7e9}
            mapping[str(m["id"])] = {"id": str(m["id"]), "parent": parent, "children": [], "message": message}
        conversations.append({"id": f"conv-{chat['id']}", "title": chat["title"], "create_time": 1.7e9,
                              "mapping": mapping, "current_node": None})  # fmt: skip
    with open(out, "w") as handle:
        json.dump(conversations, handle)


class _Transactions:
    """How long each outermost ``transaction.atomic`` block stayed open: on SQLite (``IMMEDIATE``) the
    time the write lock was held. Patches ``Atomic`` itself, so it measures any version of the import."""

    def __init__(self) -> None:
        from django.db import connection, transaction

        self.open: list[float] = []
        enter, exit_ = transaction.Atomic.__enter__, transaction.Atomic.__exit__
        started: list[float] = []

        def entering(atomic: Any) -> None:
            if not connection.in_atomic_block:
                started.append(time.perf_counter())
            enter(atomic)

        def exiting(atomic: Any, *exc: Any) -> None:
            exit_(atomic, *exc)
            if not connection.in_atomic_block and started:
                self.open.append(time.perf_counter() - started.pop())

        transaction.Atomic.__enter__ = entering  # type: ignore[method-assign]
        transaction.Atomic.__exit__ = exiting  # type: ignore[method-assign]


class _Probe:
    """Another user's writes while the import runs, as the chat page makes them (a chat created, then a
    message in it), from another thread and connection, one every 0.1 s: the longest wait, and failures
    (SQLite gives up after its busy timeout)."""

    def __init__(self) -> None:
        import threading

        self.stop = threading.Event()
        self.waits: list[float] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db import DatabaseError, connection

        from qtap_site.chat.models import Chat, Message

        other = get_user_model().objects.create(username="probe")  # no password: hashing one takes a second
        while not self.stop.wait(0.1):
            started = time.perf_counter()
            try:
                chat = Chat.objects.create(user=other, title="probe")
                Message.objects.create(chat=chat, role="user", content="hello")
            except DatabaseError as exc:
                self.failures.append(type(exc).__name__)
            self.waits.append(time.perf_counter() - started)
        connection.close()

    def figures(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join()
        return {
            "probe_writes": len(self.waits), "probe_failures": len(self.failures),
            "probe_wait_max_s": round(max(self.waits, default=0.0), 3),
        }  # fmt: skip


def import_(path: str, username: str, trace: bool, probe: bool = False) -> dict[str, Any]:
    import os

    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import UploadedFile

    from qtap_site.transfer.importing import import_file

    user = get_user_model().objects.create_user(username=username, password="bench-password-long")
    transactions = _Transactions()
    prober = _Probe() if probe else None
    base = _rss_mib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    with open(path, "rb") as handle:
        result = import_file(
            user=user, upload=UploadedFile(handle, name="conversations.json", size=os.path.getsize(path))
        )
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    extra = prober.figures() if prober else {}
    return {
        "transaction_open_s": round(max(transactions.open, default=0.0), 3), **extra,
        "source": result.source, "seconds": round(seconds, 3), "chats": result.imported,
        "messages": result.messages, "messages_per_s": round(result.messages / seconds),
        "file_bytes": os.path.getsize(path), "rss_before_mib": base, "rss_peak_mib": _rss_mib(),
        "tracemalloc_peak_mib": round(peak / 2**20, 1) if peak is not None else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["seed", "export", "import", "to_chatgpt"])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--out", default="")
    parser.add_argument("--file", default="")
    parser.add_argument("--user", default="importer")
    parser.add_argument("--trace", action="store_true", help="tracemalloc (slower; for the peak, not the speed)")
    parser.add_argument("--probe", action="store_true", help="another user writes while the import runs")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    django.setup()
    if args.phase == "seed":
        figures = seed(args.messages)
    elif args.phase == "export":
        figures = export(args.out, args.trace)
    elif args.phase == "to_chatgpt":
        to_chatgpt(args.file, args.out, args.repeat)
        figures = {}
    else:
        figures = import_(args.file, args.user, args.trace, args.probe)
    print("QTAP_BENCH " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
