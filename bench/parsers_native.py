"""Stream parsing speed of the three native-protocol plugins: Anthropic, Google Gemini, Ollama.

Each local provider API (tests/fakes: FakeAnthropic, FakeGemini, FakeOllama, in a process of its own so
the server does not share the client's interpreter) streams 2,000 wire events at full speed: Anthropic
SSE with ``event:`` names, Gemini ``alt=sse`` chunks, Ollama NDJSON lines. Each plugin, built through
providers.factory, reads the stream to the end (framing, JSON, events, usage, finish); beside it a
bare httpx loop reads the same bytes line by line, and the same loop with ``json.loads`` per event.
Figures are wire events per second (median of the runs) and each plugin relative to its bare loop.

    .venv/bin/python -m bench parsers_native
    .venv/bin/python bench/parsers_native.py --runs 30

Writes bench/results/parsers_native.json.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "parsers_native.json"
EVENTS = 2000


@dataclass(frozen=True)
class Target:
    provider: str  # providerName for the factory
    fake: str  # class in tests.fakes.<module>
    module: str
    key: str | None
    model: str
    tokens: int  # text deltas; the rest of the EVENTS are the protocol's framing events
    path: str  # the chat request, relative to the fake's base URL
    headers: dict[str, str]
    body: dict[str, Any]
    ndjson: bool = False


TARGETS = [
    # message_start, content_block_start, deltas, content_block_stop, message_delta, message_stop
    Target(
        "ANTHROPIC",
        "FakeAnthropic",
        "anthropic",
        "sk-ant-bench-key-000000000000",
        "claude-haiku-4-5-20251001",
        EVENTS - 5,
        "/v1/messages",
        {"x-api-key": "sk-ant-bench-key-000000000000", "anthropic-version": "2023-06-01"},
        {"model": "claude-haiku-4-5-20251001", "max_tokens": 8192, "messages": [{"role": "user", "content": "go"}]},
    ),
    # one chunk per text delta, the last with finishReason
    Target(
        "GOOGLE",
        "FakeGemini",
        "gemini",
        "AIzaBench-key-0000000000000000000",
        "gemini-2.5-flash",
        EVENTS,
        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"x-goog-api-key": "AIzaBench-key-0000000000000000000"},
        {"contents": [{"role": "user", "parts": [{"text": "go"}]}]},
    ),
    # one line per text delta, then the done line
    Target(
        "OLLAMA",
        "FakeOllama",
        "ollama",
        None,
        "llama3.2",
        EVENTS - 1,
        "/api/chat",
        {},
        {"model": "llama3.2", "messages": [{"role": "user", "content": "go"}], "stream": True},
        ndjson=True,
    ),
]

_SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.{module} import {fake}
fake = {fake}({key_arg}).start()
fake.long_tokens = {tokens}
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


def _serve(target: Target) -> tuple[subprocess.Popen[str], str]:
    key_arg = f"api_key={target.key!r}" if target.key else ""
    code = _SERVER.format(root=str(ROOT), module=target.module, fake=target.fake, key_arg=key_arg, tokens=target.tokens)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


async def _bare(client: httpx.AsyncClient, base_url: str, target: Target, *, parse: bool) -> int:
    """Wire events read by the plainest loop: ``data:`` lines (SSE) or non-empty lines (NDJSON)."""
    count = 0
    async with client.stream("POST", base_url + target.path, json=target.body, headers=target.headers) as response:
        async for line in response.aiter_lines():
            if target.ndjson:
                if not line:
                    continue
                payload = line
            elif line.startswith("data: "):
                payload = line[6:]
            else:
                continue
            if parse:
                json.loads(payload)
            count += 1
    return count


async def _plugin(provider: Any, target: Target) -> int:
    from providers.contract import ChatRequest, Finish, Message

    request = ChatRequest(model=target.model, messages=(Message("user", "go"),))
    finished = False
    async for event in provider.stream(request):
        finished = isinstance(event, Finish)
    assert finished, "the stream did not finish"
    return EVENTS  # wire events consumed, comparable with the bare loop


async def _time(runs: int, readers: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Median events/s of each reader. The readers take turns run by run, so a busy moment on a
    shared machine slows all of them alike instead of skewing one figure."""
    for name, once in readers.items():  # warm the connection pool and the code paths
        events = await once()
        assert events == EVENTS, f"{name}: expected {EVENTS} wire events, read {events}"
    samples: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(runs):
        for name, once in readers.items():
            started = time.perf_counter()
            events = await once()
            samples[name].append(events / (time.perf_counter() - started))
    return {
        name: {"events_per_s": round(statistics.median(values)), "best_events_per_s": round(max(values))}
        for name, values in samples.items()
    }


async def _measure(runs: int) -> dict[str, Any]:
    import django

    os.environ.setdefault("QTAP_DATA_DIR", tempfile.mkdtemp(prefix="qtap-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qtap_site.settings")
    django.setup()
    from providers.factory import create_llm_provider
    from providers.http import close_clients

    results: dict[str, Any] = {}
    for target in TARGETS:
        process, base_url = _serve(target)
        try:
            provider = create_llm_provider(target.provider, api_key=target.key, base_url=base_url)
            async with httpx.AsyncClient(timeout=30) as client:
                figures: dict[str, Any] = await _time(
                    runs,
                    {
                        "plugin": lambda p=provider, t=target: _plugin(p, t),
                        "bare_httpx_lines": lambda t=target, u=base_url: _bare(client, u, t, parse=False),
                        "bare_httpx_lines_json": lambda t=target, u=base_url: _bare(client, u, t, parse=True),
                    },
                )
            plugin_rate = figures["plugin"]["events_per_s"]
            figures["relative_to_bare"] = round(plugin_rate / figures["bare_httpx_lines"]["events_per_s"], 3)
            figures["relative_to_bare_json"] = round(plugin_rate / figures["bare_httpx_lines_json"]["events_per_s"], 3)
            results[target.provider] = figures
        finally:
            await close_clients()
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)
    return {
        "benchmark": "parsers_native",
        "events_per_stream": EVENTS,
        "runs": runs,
        "plugins": results,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.parsers_native", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="streams per reader (default 20)")
    args = parser.parse_args(argv)
    result = asyncio.run(_measure(args.runs))
    for name, figures in result["plugins"].items():
        print(
            f"{name:>10}: plugin {figures['plugin']['events_per_s']:>8,} events/s"
            f" | bare httpx lines {figures['bare_httpx_lines']['events_per_s']:>8,}"
            f" | bare + json {figures['bare_httpx_lines_json']['events_per_s']:>8,}"
            f" | plugin/bare {figures['relative_to_bare']:.2f}x"
            f", plugin/(bare+json) {figures['relative_to_bare_json']:.2f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
