"""Stream parsing speed of the five OpenAI-dialect plugins.

A local OpenAI-dialect server (tests/fakes/openai_dialect.FakeOpenAI, in its own process) streams
2,000 one-token chunks (plus the role, finish and usage chunks) written at once, so the reader is
the bottleneck. Each plugin, built through providers.factory, reads the
stream to the end (SSE framing, JSON, events, usage, finish); beside it a bare httpx loop reads the
same bytes line by line, and the same loop with ``json.loads`` per chunk. Figures are stream events
per second (SSE data events, median of the runs), and each plugin's cost relative to the bare loop.

Beside them, a thinking stream: the local Anthropic API (tests/fakes/anthropic.FakeAnthropic, its own
process) serves the recorded thinking stream's shape (anthropic_stream_thinking.sse) at length: 1,000
``thinking_delta`` events, a ``signature_delta``, 1,000 ``text_delta`` events and the framing events, written
at once. The Anthropic plugin reads it with a thinking budget set (reasoning deltas, the signed block kept
for the provider state, usage with thinking tokens), beside the same two bare loops over the same bytes.

And a Responses API stream: the local Responses API (tests/fakes/openai_responses.FakeResponses, its own
process) serves the recorded stream's shape (openai_responses_stream_reasoning_summary.sse) at length: a
reasoning item with one summary part and its encrypted content, then 2,000 ``response.output_text.delta``
events, the part and item boundaries and ``response.completed`` with usage, written at once. The OpenAI and
Grok plugins read it on their default API (reasoning, text, the reasoning items kept for the provider state,
usage with cached and reasoning tokens), beside the same two bare loops over the same bytes. (The five
plugins above are measured on Chat Completions: OpenAI and Grok with the profile's ``api: chat_completions``.)

    .venv/bin/python -m bench parsers
    .venv/bin/python bench/parsers.py --runs 30
    .venv/bin/python bench/parsers.py --thinking-only
    .venv/bin/python bench/parsers.py --responses-only

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

    # OpenAI and Grok default to the Responses API; this server speaks Chat Completions (the others ignore it).
    request = ChatRequest(model="bench", messages=(Message("user", "go"),), options={"api": "chat_completions"})
    count = 0
    async for _ in provider.stream(request):
        count += 1
    return count


STREAM_EVENTS = EVENTS + 3  # the role chunk, 2,000 tokens, the finish chunk, the usage chunk

THINKING_DELTAS = EVENTS // 2  # thinking deltas, and as many text deltas
# message_start, content_block_start and _stop for each of the two blocks, the signature, message_delta, message_stop
THINKING_STREAM_EVENTS = 2 * THINKING_DELTAS + 8
THINKING_KEY = "sk-ant-bench-key-000000000000"
THINKING_MODEL = "claude-haiku-4-5-20251001"

_THINKING_SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.anthropic import FakeAnthropic, thinking_stream
fake = FakeAnthropic(api_key={key!r}).start()
# One write of the whole body, as above.
whole = [b"".join(thinking_stream({deltas}))]
fake.chunks = lambda: whole
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


async def _time(runs: int, once: Any, events: int = STREAM_EVENTS) -> dict[str, float]:
    await once()  # warm the connection pool and the code paths
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        samples.append(events / (time.perf_counter() - started))
    return {"events_per_s": round(statistics.median(samples)), "best_events_per_s": round(max(samples))}


async def _bare_thinking(client: httpx.AsyncClient, base_url: str, *, parse: bool) -> int:
    body = {"model": THINKING_MODEL, "max_tokens": 8192, "messages": [{"role": "user", "content": "go"}]}
    headers = {"x-api-key": THINKING_KEY, "anthropic-version": "2023-06-01"}
    count = 0
    async with client.stream("POST", f"{base_url}/v1/messages", json=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                if parse:
                    json.loads(line[6:])
                count += 1
    assert count == THINKING_STREAM_EVENTS, count
    return count


async def _plugin_thinking(provider: Any) -> int:
    from providers.contract import ChatRequest, Message, ProviderState, ReasoningOptions

    request = ChatRequest(
        model=THINKING_MODEL, messages=(Message("user", "go"),), reasoning=ReasoningOptions(budget_tokens=1024)
    )
    count = 0
    async for event in provider.stream(request):
        count += 1
        if isinstance(event, ProviderState):
            assert event.value[0]["type"] == "thinking"
    return count


async def _measure_thinking(runs: int) -> dict[str, Any]:
    """The Anthropic plugin on the long thinking stream, beside the bare loops over the same bytes."""
    from providers.factory import create_llm_provider
    from providers.http import close_clients

    code = _THINKING_SERVER.format(root=str(ROOT), key=THINKING_KEY, deltas=THINKING_DELTAS)
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    try:
        provider = create_llm_provider("ANTHROPIC", api_key=THINKING_KEY, base_url=base_url)
        plugin = await _time(runs, lambda: _plugin_thinking(provider), THINKING_STREAM_EVENTS)
        async with httpx.AsyncClient(timeout=30) as client:
            bare = await _time(runs, lambda: _bare_thinking(client, base_url, parse=False), THINKING_STREAM_EVENTS)
            bare_json = await _time(runs, lambda: _bare_thinking(client, base_url, parse=True), THINKING_STREAM_EVENTS)
    finally:
        await close_clients()
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
    plugin["relative_to_bare"] = round(plugin["events_per_s"] / bare["events_per_s"], 3)
    plugin["relative_to_bare_json"] = round(plugin["events_per_s"] / bare_json["events_per_s"], 3)
    return {
        "stream": "anthropic_stream_thinking.sse's shape at length",
        "events_per_stream": THINKING_STREAM_EVENTS,
        "baselines": {"bare_httpx_lines": bare, "bare_httpx_lines_json": bare_json},
        "plugins": {"ANTHROPIC": plugin},
    }


# plugin providerName → the fake's flavour and a reasoning model that takes an effort
RESPONSES_PLUGINS = {"OPENAI": ("openai", "o3-mini"), "GROK": ("xai", "grok-4.3")}
# created, in_progress; the reasoning item: added, summary part added, one delta, text done, part done, item done;
# the message: added, content part added, 2,000 deltas, text done, part done, item done; completed
RESPONSES_STREAM_EVENTS = EVENTS + 14

_RESPONSES_SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.openai_responses import FakeResponses, event
fake = FakeResponses({flavour!r}).start()
fake.reply(["tok "] * {events}, reasoning=["**Thinking**\\n\\nabout it."], usage=(10, {events}), cached=0)
# One write of the whole body, as above.
fake.chunks = [b"".join(event({{**e, "sequence_number": n}}) for n, e in enumerate(fake.events))]
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""


async def _bare_responses(client: httpx.AsyncClient, base_url: str, *, parse: bool) -> int:
    body = {"model": "bench", "input": [{"role": "user", "content": "go"}], "stream": True}
    count = 0
    async with client.stream("POST", f"{base_url}/responses", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                if parse:
                    json.loads(line[6:])
                count += 1
    assert count == RESPONSES_STREAM_EVENTS, count
    return count


async def _plugin_responses(provider: Any, model: str) -> int:
    from providers.contract import ChatRequest, Message, ProviderState, ReasoningOptions

    request = ChatRequest(model=model, messages=(Message("user", "go"),), reasoning=ReasoningOptions(effort="low"))
    count = 0
    async for event in provider.stream(request):
        count += 1
        if isinstance(event, ProviderState):
            assert event.value["items"][0]["type"] == "reasoning"
    return count


async def _measure_responses(runs: int) -> dict[str, Any]:
    """The OpenAI and Grok plugins on the long Responses stream, beside the bare loops over the same bytes."""
    from providers.factory import create_llm_provider
    from providers.http import close_clients

    plugins: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    for name, (flavour, model) in RESPONSES_PLUGINS.items():
        code = _RESPONSES_SERVER.format(root=str(ROOT), flavour=flavour, events=EVENTS)
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        try:
            provider = create_llm_provider(name, api_key="bench-key", base_url=base_url)
            plugins[name] = await _time(
                runs, lambda p=provider, m=model: _plugin_responses(p, m), RESPONSES_STREAM_EVENTS
            )
            if not baselines:
                async with httpx.AsyncClient(timeout=30) as client:
                    for key, parse in (("bare_httpx_lines", False), ("bare_httpx_lines_json", True)):
                        baselines[key] = await _time(
                            runs,
                            lambda p=parse, u=base_url: _bare_responses(client, u, parse=p),
                            RESPONSES_STREAM_EVENTS,
                        )
        finally:
            await close_clients()
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=10)
    for figures in plugins.values():
        figures["relative_to_bare"] = round(figures["events_per_s"] / baselines["bare_httpx_lines"]["events_per_s"], 3)
        figures["relative_to_bare_json"] = round(
            figures["events_per_s"] / baselines["bare_httpx_lines_json"]["events_per_s"], 3
        )
    return {
        "stream": "openai_responses_stream_reasoning_summary.sse's shape at length",
        "events_per_stream": RESPONSES_STREAM_EVENTS,
        "baselines": baselines,
        "plugins": plugins,
    }


async def _baselines(runs: int, base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        return {
            "bare_httpx_lines": await _time(runs, lambda: _bare(client, base_url, parse=False)),
            "bare_httpx_lines_json": await _time(runs, lambda: _bare(client, base_url, parse=True)),
        }


async def _measure(runs: int, *, thinking_only: bool = False, responses_only: bool = False) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qtap_site.settings")
    django.setup()
    if thinking_only:
        return {"thinking": await _measure_thinking(runs)}
    if responses_only:
        return {"responses": await _measure_responses(runs)}
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
    thinking = await _measure_thinking(runs)
    responses = await _measure_responses(runs)
    return {
        "benchmark": "parsers",
        "events_per_stream": EVENTS,
        "runs": runs,
        "baselines": baselines,
        "plugins": plugins,
        "thinking": thinking,
        "responses": responses,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _print(figures_of: dict[str, Any]) -> None:
    for name, figures in figures_of["baselines"].items():
        print(f"{name:>24}: {figures['events_per_s']:>9,} events/s")
    for name, figures in figures_of["plugins"].items():
        print(
            f"{name:>24}: {figures['events_per_s']:>9,} events/s  ({figures['relative_to_bare']:.2f}x bare lines, "
            f"{figures['relative_to_bare_json']:.2f}x bare lines + json)"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.parsers", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="streams per reader (default 20)")
    parser.add_argument(
        "--thinking-only",
        action="store_true",
        help="measure the thinking stream alone and update its figures in the results file",
    )
    parser.add_argument(
        "--responses-only",
        action="store_true",
        help="measure the Responses API stream alone and update its figures in the results file",
    )
    args = parser.parse_args(argv)
    result = asyncio.run(_measure(args.runs, thinking_only=args.thinking_only, responses_only=args.responses_only))
    only = "thinking" if args.thinking_only else "responses" if args.responses_only else None
    if only is not None:
        recorded = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "parsers"}
        result = {**recorded, only: {**result[only], "runs": args.runs}}
        result[only]["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    else:
        _print(result)
    for section, label in (("thinking", "thinking stream"), ("responses", "Responses API stream")):
        if section in result:
            print(f"{label} ({result[section]['events_per_stream']:,} events):")
            _print(result[section])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
