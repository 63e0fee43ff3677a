"""Load: N users, each holding a websocket and streaming paced replies from a local OpenAI-dialect
server, against one Daphne process (embedded defaults: SQLite, in-memory layer) and two Daphne
processes behind Redis (PostgreSQL); beside N bare httpx clients streaming from the same server.

Per N it records: sockets opened and refused, RSS per open socket, time to first token through qtap
(client ``message.send`` to first ``generation.delta``, database work included) and direct (request to
first content chunk) with the difference ("added"), delivered tokens per second both ways, errors,
tokens lost and CPU time of the Daphne processes per delivered token.

    .venv/bin/python -m bench load                      # N = 50, 200, 500, 1000; both deployments
    .venv/bin/python bench/load.py --n 50 200 --modes one

Loopback only; every phase is bounded in time. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import cpu_seconds, percentile, raise_open_files, rss_mb  # noqa: E402
from bench._deployments import Deployment, base_env, private_postgres, private_redis, provider_server  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "load.json"
DEFAULT_NS = (50, 200, 500, 1000)
TERMINAL = ("generation.finished", "generation.error", "error")
TARGETS = {
    "rss_mb_at_1000_sockets_one_process": "< 512",
    "added_ttft_ms_p50_at_200": "< 10",
    "added_ttft_ms_p99_at_200": "< 50",
    "throughput_ratio_at_200": ">= 0.8",
    "tokens_lost": "0",
}


# ---- one user's socket ---------------------------------------------------------------------------


async def open_socket(url: str, cookie: str, timeout: float) -> tuple[Any, float]:
    from websockets.asyncio.client import connect

    started = time.perf_counter()
    ws = await connect(
        url,
        origin=url.replace("ws://", "http://").split("/ws/", 1)[0],  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=timeout,
        ping_interval=None,
        max_size=2**22,
        close_timeout=1,
    )
    state = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    if state.get("type") != "chat.state":
        raise RuntimeError(f"expected chat.state, got {state.get('type')}")
    return ws, (time.perf_counter() - started) * 1000


async def stream_over_socket(ws: Any, expected: int, timeout: float) -> dict[str, Any]:
    """One message and its reply. Frames of an earlier reply that timed out on this socket are skipped:
    the reply is recognised by the client_msg_id of the message that asked for it."""
    tag = f"load-{time.perf_counter_ns()}"
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message.send", "content": "go", "client_msg_id": tag}))
    first: float | None = None
    tokens = 0
    last_seq = 0
    gaps = 0
    asked: int | None = None  # our user message
    reply: int | None = None  # the assistant message answering it
    deadline = sent + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(deadline - time.perf_counter(), 0.01)))
        kind = frame["type"]
        if kind == "message.created":
            message = frame["message"]
            if message.get("client_msg_id") == tag:
                asked = message["id"]
            elif asked is not None and message.get("parent_id") == asked and message.get("role") == "assistant":
                reply = message["id"]
        elif kind == "error" and asked is None:
            return {"ttft_ms": None, "tokens": 0, "lost": 0, "gaps": 0, "error": f"error:{frame.get('code')}"}
        elif reply is None or frame.get("message_id") != reply:
            continue
        elif kind == "generation.delta":
            if first is None:
                first = time.perf_counter()
            tokens += frame["text"].count(" ")
            gaps += frame["seq"] != last_seq + 1
            last_seq = frame["seq"]
        elif kind in TERMINAL:
            ok = kind == "generation.finished"
            return {
                "ttft_ms": (first - sent) * 1000 if first is not None else None,
                "tokens": tokens,
                "lost": max(expected - tokens, 0) if ok else 0,
                "gaps": gaps,
                "error": None if ok else f"{kind}:{frame.get('code')}",
            }


async def stream_direct(client: httpx.AsyncClient, base_url: str, expected: int) -> dict[str, Any]:
    body = {"model": "load", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    sent = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    if first is None:
                        first = time.perf_counter()
                    tokens += text.count(" ")
    return {"ttft_ms": (first - sent) * 1000 if first else None, "tokens": tokens, "lost": expected - tokens}


# ---- one measurement ------------------------------------------------------------------------------


def _summarise(results: list[Any], wall: float) -> dict[str, Any]:
    good = [r for r in results if isinstance(r, dict) and r.get("ttft_ms") is not None]
    errors = [r for r in results if not isinstance(r, dict) or r.get("error")]
    ttfts = [r["ttft_ms"] for r in good]
    tokens = sum(r["tokens"] for r in results if isinstance(r, dict))
    return {
        "streams": len(results),
        "errors": len(errors),
        "error_kinds": sorted({str(r.get("error")) if isinstance(r, dict) else type(r).__name__ for r in errors}),
        "ttft_ms_p50": percentile(ttfts, 50),
        "ttft_ms_p99": percentile(ttfts, 99),
        "tokens": tokens,
        "tokens_lost": sum(r["lost"] for r in results if isinstance(r, dict)),
        "seq_gaps": sum(r.get("gaps", 0) for r in results if isinstance(r, dict)),
        "tokens_per_s": round(tokens / wall, 1) if wall else None,
        "wall_s": round(wall, 2),
    }


async def paced(offsets: list[float], rounds: int, job: Any) -> tuple[list[Any], float]:
    """Run ``job(i)`` ``rounds`` times per user, user i starting after offsets[i]: a steady state where
    about N streams overlap, rather than one thundering herd."""

    async def user(i: int) -> list[Any]:
        await asyncio.sleep(offsets[i])
        out = []
        for _ in range(rounds):
            try:
                out.append(await job(i))
            except Exception as exc:  # a refused or timed-out stream is a figure, not a crash
                out.append(exc)
        return out

    began = time.perf_counter()
    per_user = await asyncio.gather(*(user(i) for i in range(len(offsets))))
    return [r for rs in per_user for r in rs], time.perf_counter() - began


async def measure(
    deployment: Deployment, n: int, args: argparse.Namespace, base_url: str, baseline_mb: float | None = None
) -> dict[str, Any]:
    users = deployment.users[:n]
    hosts = _cycle(deployment.processes, n)
    urls = [p.ws_url(f"/ws/chats/{u['chat']}/") for p, u in zip(hosts, users, strict=True)]
    rss_before = sum(rss_mb(pid) for pid in deployment.pids)

    # 1. open every socket (at most 100 handshakes in flight, as browsers arriving together)
    gate = asyncio.Semaphore(100)

    async def opener(i: int) -> Any:
        async with gate:
            return await open_socket(urls[i], users[i]["cookie"], args.timeout)

    opened = await asyncio.gather(*(opener(i) for i in range(n)), return_exceptions=True)
    sockets = [o[0] if isinstance(o, tuple) else None for o in opened]
    handshakes = [o[1] for o in opened if isinstance(o, tuple)]
    refused = sum(1 for s in sockets if s is None)
    await asyncio.sleep(1.0)
    rss_open = sum(rss_mb(pid) for pid in deployment.pids)

    # 2. stream: each user sends ``rounds`` messages, starting at a random point of one stream's length
    stream_s = args.tokens * args.delay
    rng = random.Random(n)
    offsets = [rng.uniform(0, stream_s) for _ in range(n)]
    cpu_before = sum(cpu_seconds(pid) for pid in deployment.pids)

    async def through_qtap(i: int) -> dict[str, Any]:
        if sockets[i] is None:
            raise ConnectionError("socket refused")
        return await stream_over_socket(sockets[i], args.tokens, args.timeout)

    qtap_results, qtap_wall = await paced(offsets, args.rounds, through_qtap)
    cpu_used = sum(cpu_seconds(pid) for pid in deployment.pids) - cpu_before
    rss_streaming = sum(rss_mb(pid) for pid in deployment.pids)
    for ws in sockets:
        if ws is not None:
            await ws.close()

    # 3. the same load straight to the provider server
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout, trust_env=False) as client:
        direct_results, direct_wall = await paced(
            offsets, args.rounds, lambda i: stream_direct(client, base_url, args.tokens)
        )

    qtap = _summarise(qtap_results, qtap_wall)
    direct = _summarise(direct_results, direct_wall)
    qtap["cpu_s"] = round(cpu_used, 2)
    qtap["cpu_us_per_token"] = round(cpu_used / qtap["tokens"] * 1e6, 1) if qtap["tokens"] else None

    def added(key: str) -> float | None:
        if qtap[key] is None or direct[key] is None:
            return None
        return round(qtap[key] - direct[key], 2)

    return {
        "mode": deployment.mode,
        "processes": len(deployment.processes),
        "n": n,
        "sockets_open": n - refused,
        "sockets_refused": refused,
        "handshake_ms_p50": percentile(handshakes, 50),
        "handshake_ms_p99": percentile(handshakes, 99),
        "rss_mb_idle": round(rss_before, 1),
        "rss_mb_open": round(rss_open, 1),
        "rss_mb_streaming": round(rss_streaming, 1),
        # Growth from the deployment's idle baseline (freed memory is reused, so a delta from the previous
        # run would undercount).
        "rss_mb_baseline": round(baseline_mb if baseline_mb is not None else rss_before, 1),
        "rss_kb_per_socket": round(
            (rss_open - (baseline_mb if baseline_mb is not None else rss_before)) * 1024 / max(n - refused, 1), 1
        ),
        "qtap": qtap,
        "direct": direct,
        "added_ttft_ms_p50": added("ttft_ms_p50"),
        "added_ttft_ms_p99": added("ttft_ms_p99"),
        "throughput_ratio": round(qtap["tokens_per_s"] / direct["tokens_per_s"], 3)
        if qtap["tokens_per_s"] and direct["tokens_per_s"]
        else None,
    }


def _cycle(items: list[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


def report_line(row: dict[str, Any]) -> str:
    q, d = row["qtap"], row["direct"]
    return (
        f"{row['mode']:>13} N={row['n']:>4}  open {row['sockets_open']:>4} (refused {row['sockets_refused']})  "
        f"RSS {row['rss_mb_open']:>6.1f} MB ({row['rss_kb_per_socket']:>5.1f} KB/socket)  "
        f"TTFT p50 {q['ttft_ms_p50']} / p99 {q['ttft_ms_p99']} ms (direct {d['ttft_ms_p50']} / {d['ttft_ms_p99']}; "
        f"added {row['added_ttft_ms_p50']} / {row['added_ttft_ms_p99']})  "
        f"tok/s {q['tokens_per_s']} vs {d['tokens_per_s']} ({row['throughput_ratio']})  "
        f"errors {q['errors']} {q['error_kinds']} lost {q['tokens_lost']}  CPU {q['cpu_us_per_token']} us/token"
    )


# ---- driver ---------------------------------------------------------------------------------------


def run_mode(mode: str, ns: list[int], args: argparse.Namespace, base_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"qtap-load-{mode}-") as tmp:
        env = base_env(Path(tmp))
        env["QTAP_MAX_CONCURRENT_GENERATIONS"] = "3"
        env.update(dict(item.split("=", 1) for item in args.env))
        with _backing_services(mode, args) as extra:
            if extra is None:
                print(f"skipping {mode}: needs PostgreSQL ({args.postgres}) and redis-server", file=sys.stderr)
                return rows
            env.update(extra)
            deployment = Deployment(mode, env, 1 if mode == "one-process" else 2)
            deployment.provision(max(ns), base_url)
            with deployment:
                # Warm up: imports, pooled upstream connections, database caches.
                asyncio.run(measure(deployment, min(5, max(ns)), _quick(args), base_url))
                baseline = sum(rss_mb(pid) for pid in deployment.pids)
                for n in ns:
                    run = measure(deployment, n, args, base_url, baseline)
                    row = asyncio.run(asyncio.wait_for(run, args.run_timeout))
                    rows.append(row)
                    print(report_line(row), flush=True)
    return rows


def _quick(args: argparse.Namespace) -> argparse.Namespace:
    quick = argparse.Namespace(**vars(args))
    quick.rounds = 1
    return quick


@contextmanager
def _backing_services(mode: str, args: argparse.Namespace) -> Iterator[dict[str, str] | None]:
    if mode == "one-process":
        yield {}  # the embedded defaults: SQLite in the data dir, in-memory channel layer
        return
    if shutil.which("redis-server") is None:
        yield None
        return
    try:
        import psycopg

        with psycopg.connect(args.postgres, connect_timeout=3):
            pass
    except Exception:
        yield None
        return
    with private_postgres(args.postgres) as database_url, private_redis() as redis_url:
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=list(DEFAULT_NS), help="open sockets per run")
    parser.add_argument("--modes", nargs="+", choices=["one", "two"], default=["one", "two"])
    parser.add_argument("--tokens", type=int, default=60, help="tokens per reply")
    parser.add_argument("--delay", type=float, default=0.03, help="seconds between tokens (a provider's pace)")
    parser.add_argument("--rounds", type=int, default=2, help="messages per user")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one handshake or stream may take")
    parser.add_argument("--run-timeout", type=float, default=300.0, help="seconds one N may take in all")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="KEY=VALUE", help="extra settings for the Daphne processes"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="where to write the figures (default bench/results/load.json)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("QTAP_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="an administrative PostgreSQL URL; a throwaway database is created beside it",
    )
    args = parser.parse_args(argv)
    limit = raise_open_files()
    needed = max(args.n) * 4 + 200
    if limit < needed:
        print(f"warning: open-files limit {limit} is below the {needed} this run may need", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    with provider_server(args.tokens, args.delay) as (base_url, server_pid):
        for mode in args.modes:
            rows += run_mode("one-process" if mode == "one" else "two-processes", sorted(args.n), args, base_url)
        server_cpu = cpu_seconds(server_pid)

    result = {
        "benchmark": "load",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "params": {
            "tokens_per_reply": args.tokens,
            "token_delay_s": args.delay,
            "rounds": args.rounds,
            "coalesce_ms": float(os.environ.get("QTAP_DELTA_COALESCE_MS", 5.0)),
            "one-process": "SQLite (WAL) + in-memory channel layer",
            "two-processes": "PostgreSQL + Redis channel layer (pub/sub)",
            "settings": dict(item.split("=", 1) for item in args.env),
        },
        "provider_server_cpu_s": round(server_cpu, 1),
        "targets": TARGETS,
        "runs": rows,
    }
    output = args.output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
