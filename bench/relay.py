"""Relay overhead: a local OpenAI-dialect server streams tokens to N concurrent websocket clients
through one Daphne process, beside bare httpx clients reading the same server (and, when a LiteLLM
proxy is at hand, httpx clients reading it through that proxy: ``bench/_litellm.py``).

The scenarios are issue #16's: 1 stream of 200 tokens 5 ms apart, 50 such streams, and 200 streams
of 50 tokens 100 ms apart (``NxTOKENS@MS``); a bare ``N`` is N streams of 500 tokens at full speed.

Reports, per N: time to first token (p50, p99) through the site and directly, the difference ("added"),
tokens per second delivered both ways, and tokens lost (must be 0). Besides the bare httpx client the
issue names as "direct", a bare aiohttp client reads the same server too: qtap's own upstream calls go
through aiohttp, so that is the stricter limit. Time to first token through the
site is measured from the client's ``message.send`` to the first ``generation.delta`` it receives, so
the database work before the upstream call is included.

    .venv/bin/python -m bench relay                         # 1x200@5 50x200@5 200x50@100
    .venv/bin/python bench/relay.py 1 50 200                # full speed, 500 tokens each
    .venv/bin/python bench/relay.py 50x200@5 --out bench/results/relay_ab/b1.json
    .venv/bin/python bench/relay.py --warm-turn   # each measured send is its chat's second message

Writes bench/results/relay.json (or ``--out``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _litellm  # noqa: E402
from bench._common import CPU, percentile  # noqa: E402
from bench._relay_direct import release_all, run_direct, run_direct_aiohttp  # noqa: E402
from tests.chat.fake_openai import VALID_KEY  # noqa: E402
from tests.chat.live_site import Daphne, provision, site_env  # noqa: E402


class Uvicorn(Daphne):
    """The same site served by uvicorn (``--ws websockets``) instead of Daphne, for comparison."""

    def __enter__(self) -> Daphne:
        log = self.log_path.open("wb")
        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--ws", "websockets", "--log-level", "warning", "--no-access-log", "qtap_site.asgi:application"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start listening") from None
                time.sleep(0.05)


TOKENS = 500  # per stream at full speed (a bare N)
RESULTS = ROOT / "bench" / "results" / "relay.json"
DEFAULT_SCENARIOS = ("1x200@5", "50x200@5", "200x50@100")


@dataclass(frozen=True)
class Scenario:
    n: int
    tokens: int = TOKENS
    delay_ms: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Scenario:
        """``N`` (500 tokens, full speed) or ``NxTOKENS@MS``."""
        n, _, rest = spec.partition("x")
        tokens, _, delay = rest.partition("@")
        return cls(int(n), int(tokens) if tokens else TOKENS, float(delay) if delay else 0.0)

    @property
    def name(self) -> str:
        return f"{self.n}x{self.tokens}@{self.delay_ms:g}"


# The provider server runs in a process of its own, so that it competes with neither the site
# nor the clients for the interpreter. Each token is "w<i> " (one space per token: the count);
# POST /v1/script {"tokens", "delay"} sets the script of the streams that follow.
_SERVER = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from tests.fakes.server import respond
from tests.support.scripted_openai import Script, ScriptedOpenAI

class Server(ScriptedOpenAI):
    async def handle(self, request, send, receive):
        if request.path.endswith("/script"):
            body = request.json
            self.script = Script(tokens=int(body["tokens"]), delay=float(body["delay"]))
            await respond(send, 200, {{"ok": True}})
            return
        await super().handle(request, send, receive)

fake = Server()
fake.start()
print(fake.base_url, flush=True)
while True:
    fake.requests.clear()  # keep memory flat over a long run
    time.sleep(1)
"""


def set_script(base_url: str, scenario: Scenario) -> None:
    httpx.post(
        f"{base_url}/script", json={"tokens": scenario.tokens, "delay": scenario.delay_ms / 1000}, trust_env=False
    ).raise_for_status()


# ---- direct: httpx straight to the provider server -------------------------------------------------


# ---- through the site: websocket clients on one Daphne -------------------------------------------


async def ws_client(url: str, origin: str, cookie: str, ready: asyncio.Event, start: asyncio.Event) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with connect(
        url, origin=origin, additional_headers={"Cookie": f"sessionid={cookie}"}, max_size=2**22, open_timeout=60
    ) as ws:
        state = json.loads(await ws.recv())
        assert state["type"] == "chat.state", state
        if WARM_TURN:  # an ongoing chat: one turn before the measured one
            await ws.send(json.dumps({"type": "message.send", "content": "warm"}))
            while json.loads(await ws.recv())["type"] not in ("generation.finished", "generation.error"):
                pass
        ready.set()
        await start.wait()
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message.send", "content": "go"}))
        first: float | None = None
        tokens = 0
        last_seq = 0
        gaps = 0
        while True:
            frame = json.loads(await ws.recv())
            kind = frame["type"]
            if kind == "generation.delta":
                if first is None:
                    first = time.perf_counter()
                tokens += frame["text"].count(" ")
                gaps += frame["seq"] != last_seq + 1
                last_seq = frame["seq"]
            elif kind == "generation.finished":
                return {
                    "ttft_ms": ((first or time.perf_counter()) - sent) * 1000,
                    "tokens": tokens,
                    "gaps": gaps,
                    "frames": last_seq,
                    "server_ttft_ms": frame["ttft_ms"],
                }
            elif kind in ("generation.error", "error"):
                raise RuntimeError(f"generation failed: {frame}")


async def run_ws(
    daphne: Daphne, cookie: str, chat_ids: list[int], cpu: CPU | None = None
) -> tuple[list[dict[str, Any]], float]:
    start = asyncio.Event()
    readies = [asyncio.Event() for _ in chat_ids]
    tasks = [
        asyncio.create_task(ws_client(daphne.ws_url(chat_id), daphne.origin, cookie, ready, start))
        for chat_id, ready in zip(chat_ids, readies, strict=True)
    ]
    # Every socket is open (handshake, session lookup, chat.state) before the clock starts.
    all_ready = asyncio.create_task(asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120))
    await asyncio.wait([all_ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done():
            task.result()  # a client that failed before the start raises here
    await all_ready
    await asyncio.sleep(0.2)
    # CPU is counted from the start signal: opening the sockets is not part of the relay.
    results, wall = await release_all(start, tasks, cpu)
    return list(results), wall


def ws_summary(results: list[dict[str, Any]], wall: float, per_stream: int) -> dict[str, Any]:
    summary = _summary([r["ttft_ms"] for r in results], sum(r["tokens"] for r in results), wall, per_stream)
    summary["seq_gaps"] = sum(r["gaps"] for r in results)
    summary["frames_per_stream_mean"] = round(statistics.mean(r["frames"] for r in results), 1)
    summary["server_ttft_ms_p50"] = percentile([float(r["server_ttft_ms"]) for r in results], 50)
    return summary


MIN_SAMPLES = 20  # time-to-first-token samples per N: small N is repeated in rounds
# --warm-turn: every measured send is a chat's second message (its first reply done, unmeasured), as in
# an ongoing conversation; without it every send opens a new chat.
WARM_TURN = False


def rounds(n: int) -> int:
    return -(-MIN_SAMPLES // n)


def _summary(ttfts: list[float], tokens: int, wall: float, per_stream: int) -> dict[str, Any]:
    expected = per_stream * len(ttfts)
    return {
        "ttft_ms_p50": percentile(ttfts, 50),
        "ttft_ms_p99": percentile(ttfts, 99),
        "tokens_per_s": round(tokens / wall, 1),
        "tokens_received": tokens,
        "tokens_lost": expected - tokens,
        "wall_s": round(wall, 3),
    }


# ---- driver -------------------------------------------------------------------------------------


async def measure(
    scenarios: list[Scenario], base_url: str, daphne: Daphne, site: dict[str, Any], server_pid: int, litellm: str | None
) -> list[dict[str, Any]]:
    chat_ids = list(site["chat_ids"])
    rows = []
    assert daphne.process is not None
    for scenario in scenarios:
        n = scenario.n
        set_script(base_url, scenario)
        # Warm up both paths (imports, pooled upstream connections, the database file).
        await run_ws(daphne, site["cookie"], [chat_ids.pop()])
        await run_direct(base_url, 1)
        # Rounds alternate direct and relayed, so that both see the same background load.
        direct_results: list[tuple[float, int]] = []
        aiohttp_results: list[tuple[float, int]] = []
        litellm_results: list[tuple[float, int]] = []
        relayed_results: list[dict[str, Any]] = []
        direct_wall = relayed_wall = aiohttp_wall = litellm_wall = 0.0
        direct_cpu = CPU(site=daphne.process.pid, upstream=server_pid)
        relay_cpu = CPU(site=daphne.process.pid, upstream=server_pid)
        for _ in range(rounds(n)):
            ids, chat_ids = chat_ids[:n], chat_ids[n:]
            results, wall = await run_direct(base_url, n, direct_cpu)
            direct_results += results
            direct_wall += wall
            ws_results, wall = await run_ws(daphne, site["cookie"], ids, relay_cpu)
            relayed_results += ws_results
            relayed_wall += wall
            results, wall = await run_direct_aiohttp(base_url, n)
            aiohttp_results += results
            aiohttp_wall += wall
            if litellm is not None:
                results, wall = await run_direct(litellm, n)
                litellm_results += results
                litellm_wall += wall
        per = scenario.tokens
        direct = _summary([r[0] for r in direct_results], sum(r[1] for r in direct_results), direct_wall, per)
        relayed = ws_summary(relayed_results, relayed_wall, per)
        direct_aiohttp = _summary(
            [r[0] for r in aiohttp_results], sum(r[1] for r in aiohttp_results), aiohttp_wall, per
        )
        direct["cpu_us_per_token"] = direct_cpu.per_token_us(direct["tokens_received"])
        relayed["cpu_us_per_token"] = relay_cpu.per_token_us(relayed["tokens_received"])
        row = {
            "scenario": scenario.name,
            "n": n,
            "tokens_per_stream": scenario.tokens,
            "delay_ms": scenario.delay_ms,
            "rounds": rounds(n),
            "direct": direct,
            "websocket": relayed,
            "added_ttft_ms_p50": round(relayed["ttft_ms_p50"] - direct["ttft_ms_p50"], 2),
            "added_ttft_ms_p99": round(relayed["ttft_ms_p99"] - direct["ttft_ms_p99"], 2),
            "ttft_p50_ratio": round(relayed["ttft_ms_p50"] / max(direct["ttft_ms_p50"], 0.01), 3),
            "throughput_ratio": round(relayed["tokens_per_s"] / direct["tokens_per_s"], 3),
            # The same figures against a bare aiohttp client, the faster client qtap itself uses upstream.
            "direct_aiohttp": direct_aiohttp,
            "added_ttft_ms_p50_vs_aiohttp": round(relayed["ttft_ms_p50"] - direct_aiohttp["ttft_ms_p50"], 2),
            "added_ttft_ms_p99_vs_aiohttp": round(relayed["ttft_ms_p99"] - direct_aiohttp["ttft_ms_p99"], 2),
            "throughput_ratio_vs_aiohttp": round(relayed["tokens_per_s"] / direct_aiohttp["tokens_per_s"], 3),
        }
        if litellm is not None:
            row["litellm"] = _summary(
                [r[0] for r in litellm_results], sum(r[1] for r in litellm_results), litellm_wall, per
            )
        rows.append(row)
        print(
            f"{scenario.name:>10}  added TTFT p50 {row['added_ttft_ms_p50']:>7.2f} ms"
            f"  p99 {row['added_ttft_ms_p99']:>7.2f} ms"
            f"  | ws TTFT p50 {relayed['ttft_ms_p50']:>7.2f} p99 {relayed['ttft_ms_p99']:>7.2f}  "
            f"direct p50 {direct['ttft_ms_p50']:>6.2f} p99 {direct['ttft_ms_p99']:>6.2f}  "
            f"| tok/s ws {relayed['tokens_per_s']:>9.0f} direct {direct['tokens_per_s']:>9.0f} "
            f"({row['throughput_ratio'] * 100:.0f}%)  lost {relayed['tokens_lost']}  "
            f"frames/stream {relayed['frames_per_stream_mean']}\n"
            f"        CPU µs/token  relayed {relayed['cpu_us_per_token']}  direct {direct['cpu_us_per_token']}\n"
            f"        vs bare aiohttp: TTFT p50 {direct_aiohttp['ttft_ms_p50']:.2f}"
            f" p99 {direct_aiohttp['ttft_ms_p99']:.2f}"
            f"  tok/s {direct_aiohttp['tokens_per_s']:.0f}  added p50 {row['added_ttft_ms_p50_vs_aiohttp']:.2f} ms"
            f"  p99 {row['added_ttft_ms_p99_vs_aiohttp']:.2f} ms  ({row['throughput_ratio_vs_aiohttp'] * 100:.0f}%)"
            + (
                f"\n        LiteLLM proxy: TTFT p50 {row['litellm']['ttft_ms_p50']:.2f}"
                f" p99 {row['litellm']['ttft_ms_p99']:.2f}"
                f"  tok/s {row['litellm']['tokens_per_s']:.0f}  lost {row['litellm']['tokens_lost']}"
                if litellm is not None
                else ""
            ),
            flush=True,
        )
    return rows


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    global WARM_TURN
    args = list(argv if argv is not None else sys.argv[1:])
    WARM_TURN = "--warm-turn" in args
    out = RESULTS
    if "--out" in args:
        at = args.index("--out")
        out = Path(args[at + 1]).resolve()
        del args[at : at + 2]
    scenarios = [Scenario.parse(a) for a in args if a[:1].isdigit()] or [Scenario.parse(s) for s in DEFAULT_SCENARIOS]
    most = max(s.n for s in scenarios)
    with tempfile.TemporaryDirectory(prefix="qtap-relay-") as tmp, contextlib.ExitStack() as stack:
        tmp_path = Path(tmp)
        server_code = _SERVER.format(root=str(ROOT))
        server = subprocess.Popen([sys.executable, "-c", server_code], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            base_url = server.stdout.readline().strip()
            litellm = stack.enter_context(_litellm.proxy(base_url, tmp_path))
            env = site_env(
                tmp_path / "data",
                QTAP_MAX_CONCURRENT_GENERATIONS=str(most + 10),
                QTAP_LOG_LEVEL="WARNING",
            )
            chats = sum(s.n * rounds(s.n) + 1 for s in scenarios)
            site = provision(env, base_url=base_url, secret=VALID_KEY, chats=chats)
            server_class = Uvicorn if os.environ.get("QTAP_BENCH_SERVER") == "uvicorn" else Daphne
            with server_class(env, tmp_path / "server.log") as daphne:
                rows = asyncio.run(measure(scenarios, base_url, daphne, site, server.pid, litellm))
        finally:
            server.terminate()
            server.wait(timeout=10)
    result = {
        "benchmark": "relay",
        "coalesce_ms": float(os.environ.get("QTAP_DELTA_COALESCE_MS", 5.0)),
        "server": "uvicorn" if os.environ.get("QTAP_BENCH_SERVER") == "uvicorn" else "daphne",
        "commit": _commit(),
        "database": "sqlite (WAL)",  # site_env leaves DATABASE_URL and REDIS_URL out
        "channel_layer": "in-memory",
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "litellm": litellm is not None,
        "warm_turn": WARM_TURN,
        "targets": {
            "1x200@5": "added TTFT p50 <= 5 ms, p99 <= 20 ms",
            "50x200@5": "throughput_ratio >= 0.9, ttft_p50_ratio <= 1.5",
            "200x50@100": "added TTFT p50 <= 100 ms, throughput_ratio >= 0.95",
            "tokens_lost": 0,
        },
        "runs": rows,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    lost = sum(r["websocket"]["tokens_lost"] for r in rows)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
