"""The event loop's CPU for opening a burst of streamed provider calls: N calls released together, each
read to its first event and closed, through qtap's own path (a plugin's ``stream``: the httpx client on
the aiohttp transport, the retry loop, the SSE reader) and through a bare aiohttp client posting the
same kind of request to the same local upstream.

This is the part of a 200-send burst that issue #16's traced runs put first on the event loop (opening
the upstream calls); the difference between the two arms is what a leaner opening could save at most.
Rounds alternate the two arms (qtap, bare, qtap, bare, ...) so that both see the same background load.

    .venv/bin/python bench/open_calls.py                  # N = 200
    .venv/bin/python bench/open_calls.py 50 200 --out /tmp/open_calls.json

Writes bench/results/open_calls.json (or ``--out``). The upstream runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
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

from bench.relay import _SERVER  # noqa: E402
from tests.chat.fake_openai import VALID_KEY  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "open_calls.json"
ROUNDS = 9  # per arm
PLUGIN = "qtap-plugin-openai-compatible"  # the Chat Completions dialect the relay benchmark speaks
BARE_BODY = json.dumps({"model": "bench-model", "stream": True, "messages": [{"role": "user", "content": "go"}]})


async def _measure(base_url: str, n: int) -> dict[str, Any]:
    import aiohttp

    from providers import contract
    from providers.factory import create_llm_provider

    request = contract.ChatRequest(model="bench-model", messages=(contract.Message(role="user", content="go"),))
    headers = {"Authorization": f"Bearer {VALID_KEY}", "Content-Type": "application/json"}

    async def qtap_call() -> None:
        provider = create_llm_provider(PLUGIN, api_key=VALID_KEY, base_url=base_url)
        events = provider.stream(request)
        try:
            await anext(events)
        finally:
            await events.aclose()

    async def bare_call(session: aiohttp.ClientSession) -> None:
        async with session.post(f"{base_url}/chat/completions", data=BARE_BODY, headers=headers) as response:
            await response.content.readany()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        arms = {"qtap": qtap_call, "bare_aiohttp": lambda: bare_call(session)}
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
        for one in arms.values():  # warm both pools to N connections
            await asyncio.gather(*(one() for _ in range(n)))
        for _ in range(ROUNDS):
            for name, one in arms.items():
                cpu, wall = time.process_time(), time.perf_counter()
                await asyncio.gather(*(one() for _ in range(n)))
                figures[name].append(((time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))
    row: dict[str, Any] = {"n": n}
    for name, pairs in figures.items():
        cpu_ms = [c for c, _ in pairs]
        row[name] = {
            "cpu_ms_p50": round(statistics.median(cpu_ms), 1),
            "cpu_ms_min": round(min(cpu_ms), 1),
            "cpu_us_per_call_p50": round(statistics.median(cpu_ms) / n * 1000),
            "wall_ms_p50": round(statistics.median(w for _, w in pairs), 1),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    out = RESULTS
    if "--out" in args:
        at = args.index("--out")
        out = Path(args[at + 1]).resolve()
        del args[at : at + 2]
    sizes = [int(a) for a in args if a.isdigit()] or [200]
    server = subprocess.Popen([sys.executable, "-c", _SERVER.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        import httpx

        httpx.post(f"{base_url}/script", json={"tokens": 5, "delay": 0.0}, trust_env=False)
        with tempfile.TemporaryDirectory(prefix="qtap-open-calls-") as tmp:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qtap_site.settings")
            os.environ["QTAP_DATA_DIR"] = str(Path(tmp) / "data")
            os.environ["QTAP_LOG_LEVEL"] = "WARNING"
            import django

            django.setup()
            for n in sizes:
                row = asyncio.run(_measure(base_url, n))
                rows.append(row)
                qtap, bare = row["qtap"], row["bare_aiohttp"]
                print(
                    f"{n:>5} calls  qtap {qtap['cpu_ms_p50']:>6.1f} ms CPU ({qtap['cpu_us_per_call_p50']} µs a call)"
                    f"  bare aiohttp {bare['cpu_ms_p50']:>6.1f} ms ({bare['cpu_us_per_call_p50']} µs a call)"
                    f"  wall {qtap['wall_ms_p50']:.1f} / {bare['wall_ms_p50']:.1f} ms",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {
        "benchmark": "open_calls",
        "rounds_per_arm": ROUNDS,
        "arms_interleaved": True,
        "runs": rows,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
