"""Tool-loop overhead: the time from the model's tool call to qtap's next upstream request, with a tool
that answers at once.

Each reply goes through the real ASGI websocket app in this process (``message.send`` on a chat whose
tools are the test tool plugin's, the OpenAI-compatible plugin, SQLite, the in-memory channel layer) to a
local Chat Completions server on a real socket. The model's first turn asks for 1 (or 4 parallel) calls
of the instant ``echo`` tool and ends (``finish_reason: tool_calls``, then ``[DONE]``); the request that
carries the results gets a short text. The upstream server notes, in its own thread, the monotonic time
it sent that turn's ``[DONE]`` and the time the next request arrived: the difference is the overhead
(the end of the stream parsed, the ToolCall rows saved, the tool.call/tool.result frames, the tool run,
the rows updated and the next request built and sent).

    .venv/bin/python -m bench tool_loop                  # 200 replies with 1 call, 200 with 4
    .venv/bin/python bench/tool_loop.py --replies 50 --calls 1 4 8

Replies of the different call counts run in alternating batches, so that all of them see the same
background load; each reply has a chat of its own (a short history). Replies run one at a time.
Runs in a temporary data directory (a fresh SQLite database, migrated). Writes
bench/results/tool_loop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import percentile  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tool_loop.json"
DEFAULT_REPLIES = 200
DEFAULT_CALLS = (1, 4)
BATCH = 20  # replies of one call count before switching to the next
WARMUP = 3  # replies per call count before the measured ones (imports, connections, first queries)
COMPATIBLE = "qtap-plugin-openai-compatible"
TERMINAL = ("generation.finished", "generation.error", "error")


# ---- the site: settings, database, user -----------------------------------------------------------


def setup_django(data_dir: Path) -> None:
    """Configure Django for a fresh SQLite database in ``data_dir`` and migrate it."""
    for name in ("DATABASE_URL", "REDIS_URL"):  # the embedded defaults: SQLite, in-memory channel layer
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "qtap_site.settings"
    os.environ["QTAP_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("QTAP_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username="bench-tools", password="bench tools password long")


def make_chats(user: Any, base_url: str, secret: str, count: int) -> list[int]:
    """``count`` chats of one profile on the upstream, each with the test tools on."""
    from providers.services import api_key_create, connection_profile_create
    from qtap_site.chat.models import Chat
    from qtap_site.chat.services import chat_create
    from tests.chat.tool_support import TOOL_PLUGIN

    key = api_key_create(user=user, plugin=COMPATIBLE, label="bench", secret=secret)
    profile = connection_profile_create(
        user=user, name="Bench tools", plugin=COMPATIBLE, model="tool-model", api_key=key, base_url=base_url
    )
    ids = [chat_create(user=user, profile=profile).pk for _ in range(count)]
    Chat.objects.filter(pk__in=ids).update(tools=[TOOL_PLUGIN])
    return ids


def reset_channel_state() -> None:
    """A fresh in-memory layer and no runner state for a new event loop (as the chat tests' fixture)."""
    from channels.layers import channel_layers

    from qtap_site.chat import delivery

    channel_layers.backends.pop("default", None)
    delivery._running.clear()
    delivery.ControlListener._by_loop.clear()


# ---- one reply ----------------------------------------------------------------------------------


async def one_reply(chat_id: int, cookie: str) -> dict[str, Any]:
    """Send a message on ``chat_id``'s socket and read its frames to the end of the reply."""
    from tests.chat.conftest import open_socket, receive_until, send

    comm, _ = await open_socket(chat_id, cookie)
    try:
        sent = time.monotonic()
        await send(comm, {"type": "message.send", "content": "Use the tool."})
        frames = await receive_until(comm, *TERMINAL, timeout=30)
        ended = time.monotonic()
    finally:
        await comm.disconnect()
    last = frames[-1]
    calls = [f for f in frames if f["type"] == "tool.call"]
    results = [f for f in frames if f["type"] == "tool.result"]
    return {
        "finished": last["type"] == "generation.finished" and last.get("finish_reason") == "stop",
        "key": calls[0]["call_id"] if calls else None,
        "calls": len(calls),
        "results": len(results),
        "result_errors": sum(bool(f["is_error"]) for f in results),
        "reply_ms": (ended - sent) * 1000,
    }


# ---- the measurement ------------------------------------------------------------------------------


def schedule(replies: int, call_counts: tuple[int, ...], batch: int) -> list[int]:
    """The call count of each measured reply, in order: batches of ``batch`` replies, counts alternating."""
    order: list[int] = []
    left = dict.fromkeys(call_counts, replies)
    while any(left.values()):
        for calls in call_counts:
            take = min(batch, left[calls])
            order += [calls] * take
            left[calls] -= take
    return order


async def drive(
    warmup: list[int],
    order: list[int],
    upstreams: dict[int, Any],
    chats: dict[int, list[int]],
    cookie: str,
    tool_runs: list[Any],
) -> tuple[dict[int, list[dict[str, Any]]], float, float | None]:
    """The warm-up replies, then the measured ones (one event loop for both: pooled upstream connections
    stay warm); answers the measured replies' rows per call count, their wall time and CPU steal share."""
    reset_channel_state()
    rows: dict[int, list[dict[str, Any]]] = {calls: [] for calls in upstreams}
    try:
        for calls in warmup:
            await one_reply(chats[calls].pop(), cookie)
        for up in upstreams.values():
            up.reset()
        tool_runs.clear()
        started, steal = time.monotonic(), _cpu_steal()
        for calls in order:
            row = await one_reply(chats[calls].pop(), cookie)
            gap = upstreams[calls].gaps_ms().get(row["key"]) if row["key"] else None
            row["overhead_ms"], row["overhead_cpu_ms"] = gap if gap else (None, None)
            row["results_sent"] = upstreams[calls].results_seen.get(row["key"], 0)
            rows[calls].append(row)
        return rows, time.monotonic() - started, _cpu_steal(steal)
    finally:
        reset_channel_state()


def measure(
    user: Any, *, replies: int = DEFAULT_REPLIES, call_counts: tuple[int, ...] = DEFAULT_CALLS,
    batch: int = BATCH, warmup: int = WARMUP,
) -> list[dict[str, Any]]:  # fmt: skip
    """Run the replies for ``user`` (Django set up, database reachable); one summary per call count."""
    from bench._tool_loop_upstream import TimedUpstream
    from providers.registry import registry
    from tests.chat.conftest import session_cookie
    from tests.chat.tool_support import tool_plugin

    cookie = session_cookie(user)
    upstreams = {calls: TimedUpstream(calls) for calls in call_counts}
    try:
        for upstream in upstreams.values():
            upstream.start()
        chats = {calls: make_chats(user, up.base_url, up.api_key, replies + warmup) for calls, up in upstreams.items()}
        plugin = tool_plugin()
        warm = [calls for calls in call_counts for _ in range(warmup)]
        with registry.temporarily(plugin):
            measured = schedule(replies, call_counts, batch)
            rows, wall, steal = asyncio.run(drive(warm, measured, upstreams, chats, cookie, plugin.tools.calls))
    finally:
        for up in upstreams.values():
            up.stop()
    summaries = []
    for calls in call_counts:
        summary = summarize(calls, rows[calls], upstreams[calls].chat_count)
        # What the tool itself ran (its arguments name the upstream): every call must have reached it.
        summary["tool_runs"] = sum(a["text"].startswith(f"c{calls} ") for _, a, _ in plugin.tools.calls)
        summary["wall_s_all_counts"] = round(wall, 2)
        summary["cpu_steal_share"] = steal
        summaries.append(summary)
    return summaries


def summarize(calls: int, rows: list[dict[str, Any]], upstream_requests: int) -> dict[str, Any]:
    overheads = [r["overhead_ms"] for r in rows if r["overhead_ms"] is not None]
    complete = [
        r for r in rows
        if r["finished"] and r["calls"] == calls and r["results"] == calls and r["results_sent"] == calls
        and not r["result_errors"] and r["overhead_ms"] is not None
    ]  # fmt: skip
    return {
        "calls_per_turn": calls,
        "replies": len(rows),
        "replies_complete": len(complete),
        "replies_lost": len(rows) - len(complete),
        "upstream_requests": upstream_requests,
        "tool_call_frames": sum(r["calls"] for r in rows),
        "tool_result_frames": sum(r["results"] for r in rows),
        "tool_errors": sum(r["result_errors"] for r in rows),
        "overhead_ms": _figures(overheads),
        "overhead_cpu_ms": _figures([r["overhead_cpu_ms"] for r in rows if r["overhead_cpu_ms"] is not None]),
        "reply_ms": _figures([r["reply_ms"] for r in rows]),
        "overheads_ms": [round(v, 3) for v in overheads],
    }


def _figures(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": round(statistics.mean(values), 2) if values else None,
        "min": round(min(values), 2) if values else None,
        "max": round(max(values), 2) if values else None,
    }


def _cpu_steal(before: tuple[int, int] | None = None) -> Any:
    """The machine's CPU ticks (total, stolen) now; given an earlier reading, the share stolen since."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    now = (sum(fields[:8]), fields[7] if len(fields) > 7 else 0)
    if before is None:
        return now
    total = now[0] - before[0]
    return round((now[1] - before[1]) / total, 3) if total else None


# ---- the driver ---------------------------------------------------------------------------------


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        o, c, r = s["overhead_ms"], s["overhead_cpu_ms"], s["reply_ms"]
        print(
            f"{s['calls_per_turn']} call(s)/turn  overhead p50 {o['p50']:>6.2f} ms  p99 {o['p99']:>6.2f} ms  "
            f"mean {o['mean']:>6.2f} ms  (min {o['min']:.2f}, max {o['max']:.2f})  "
            f"| CPU p50 {c['p50']:.2f} ms  p99 {c['p99']:.2f} ms  | whole reply p50 {r['p50']:.1f} ms  "
            f"| replies {s['replies']}, lost {s['replies_lost']}",
            flush=True,
        )
    print(f"CPU steal during the run: {summaries[0]['cpu_steal_share']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tool_loop", description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=DEFAULT_REPLIES, help="measured replies per call count")
    parser.add_argument("--calls", type=int, nargs="+", default=list(DEFAULT_CALLS), help="calls per tool turn")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--no-save", action="store_true", help="print the figures only")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    from django.apps import apps

    if apps.ready:  # another benchmark of this process set Django up: run in a clean interpreter
        command = [sys.executable, str(Path(__file__).resolve()), *(argv or [])]
        return subprocess.run(command, cwd=ROOT, check=False).returncode
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qtap-bench-tools-") as tmp:
        setup_django(Path(tmp))
        summaries = measure(make_user(), replies=args.replies, call_counts=tuple(args.calls), batch=args.batch)
        from django.db import connections

        connections.close_all()
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    report(summaries)
    print(f"load average (1 min) before and after: {load[0]}, {load[1]} on {os.cpu_count()} CPUs", flush=True)
    result = {
        "benchmark": "tool_loop",
        "measured": "upstream's clock: [DONE] of the tool-call turn sent -> next chat request read",
        "tool": "echo (answers at once)",
        "replies_per_call_count": args.replies,
        "batch": args.batch,
        "warmup_replies_per_call_count": WARMUP,
        "commit": _commit(),
        "database": "sqlite (WAL), temporary",
        "channel_layer": "in-memory",
        "site": "in-process ASGI app (channels WebsocketCommunicator), upstream on a loopback socket",
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {_cpu_model()}",
        "load_average_1min_before_after": load,  # other work on the machine stretches the wall-clock figures
        # The per-reply samples stay out of the file: the report renders every list it finds.
        "runs": [{k: v for k, v in s.items() if k != "overheads_ms"} for s in summaries],
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if any(s["replies_lost"] for s in summaries) else 0


if __name__ == "__main__":
    raise SystemExit(main())
