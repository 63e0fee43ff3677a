"""Stream parsing speed of the five OpenAI-dialect plugins.

A local OpenAI-dialect server (tests/fakes/openai_dialect.FakeOpenAI, in its own process) streams
2,000 one-token chunks (plus the role, finish and usage chunks) written at once, so the reader is
the bottleneck. Each plugin, built through providers.factory, reads the
stream to the end (SSE framing, JSON, events, usage, finish); beside it a bare httpx loop reads the
same bytes line by line, and the same loop with ``json.loads`` per chunk. Figures are stream events
per second (SSE data events, median of the runs), and each plugin's cost relative to the bare loop.

    .venv/bin/python -m bench parsers
    .venv/bin/python bench/parsers.py --runs 30

Writes bench/results/parsers.json.
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
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "parsers.json"
EVENTS = 2000

# plugin providerName → the fake's flavour
PLUGINS = {
    "OPENAI": "openai",
    "GROK": "xai",
    "GAB_AI": "gab",
    "OPENROUTER": "openrouter",
    "OPENAI_COMPATIBLE": "compatible",
}

_SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.openai_dialect import FakeOpenAI
fake = FakeOpenAI({flavour!r}).start()
fake.synthetic({events})
# One write of the whole body: the server's write loop must not be what the readers wait for.
fake.chunks = [b"".join(fake.chunks)]
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


def _serve(flavour: str) -> tuple[subprocess.Popen[str], str]:
    code = _SERVER.format(root=str(ROOT), flavour=flavour, events=EVENTS)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _body() -> dict[str, Any]:
    return {"model": "bench", "messages": [{"role": "user", "content": "go"}], "stream": True}


async def _bare(client: httpx.AsyncClient, base_url: str, *, parse: bool) -> int:
    count = 0
    async with client.stream("POST", f"{base_url}/chat/completions", json=_body()) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                if parse:
                    json.loads(line[6:])
                count += 1
    return count


async def _plugin(provider: Any) -> int:
    from providers.contract import ChatRequest, Message

    request = ChatRequest(model="bench", messages=(Message("user", "go"),))
    count = 0
    async for _ in provider.stream(request):
        count += 1
    return count


STREAM_EVENTS = EVENTS + 3  # the role chunk, 2,000 tokens, the finish chunk, the usage chunk


async def _time(runs: int, once: Any) -> dict[str, float]:
    await once()  # warm the connection pool and the code paths
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        samples.append(STREAM_EVENTS / (time.perf_counter() - started))
    return {"events_per_s": round(statistics.median(samples)), "best_events_per_s": round(max(samples))}


async def _baselines(runs: int, base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        return {
            "bare_httpx_lines": await _time(runs, lambda: _bare(client, base_url, parse=False)),
            "bare_httpx_lines_json": await _time(runs, lambda: _bare(client, base_url, parse=True)),
        }


async def _measure(runs: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qtap_site.settings")
    django.setup()
    from providers.factory import create_llm_provider
    from providers.http import close_clients

    plugins: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for name, flavour in PLUGINS.items():
        process, base_url = _serve(flavour)
        try:
            provider = create_llm_provider(name, api_key="bench-key", base_url=base_url)
            plugins[name] = await _time(runs, lambda p=provider: _plugin(p))
            if not baselines:
                baselines = await _baselines(runs, base_url)
        finally:
            await close_clients()
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)
    bare = baselines["bare_httpx_lines"]["events_per_s"]
    bare_json = baselines["bare_httpx_lines_json"]["events_per_s"]
    for figures in plugins.values():
        figures["relative_to_bare"] = round(figures["events_per_s"] / bare, 3)
        figures["relative_to_bare_json"] = round(figures["events_per_s"] / bare_json, 3)
    return {
        "benchmark": "parsers",
        "events_per_stream": EVENTS,
        "runs": runs,
        "baselines": baselines,
        "plugins": plugins,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.parsers", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="streams per reader (default 20)")
    args = parser.parse_args(argv)
    result = asyncio.run(_measure(args.runs))
    for name, figures in result["baselines"].items():
        print(f"{name:>24}: {figures['events_per_s']:>9,} events/s")
    for name, figures in result["plugins"].items():
        print(
            f"{name:>24}: {figures['events_per_s']:>9,} events/s  ({figures['relative_to_bare']:.2f}x bare lines, "
            f"{figures['relative_to_bare_json']:.2f}x bare lines + json)"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
