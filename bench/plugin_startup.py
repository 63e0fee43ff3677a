"""How much loading the eight bundled plugins adds to ``django.setup()``.

Each sample is a fresh interpreter running ``django.setup()`` under ``python -X importtime``, with
QTAP_PLUGINS_DIR pointing either at the real plugins folder or at an empty one; the two variants
alternate so drift on the machine hits both alike. The difference of the medians is the cost of
discovering, validating, importing and registering the plugins (including the modules only the
plugins import, such as the shared HTTP layer). ``-X importtime`` also gives each plugin's own
cumulative import time. Target: under 150 ms.

    python -m bench.plugin_startup [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "plugin_startup.json"
TARGET_MS = 150.0

CHILD = """
import time
started = time.perf_counter()
import django
import providers.loader as loader

loader_seconds = []
_load = loader.load_plugins

def timed_load(*args, **kwargs):
    begun = time.perf_counter()
    try:
        return _load(*args, **kwargs)
    finally:
        loader_seconds.append(time.perf_counter() - begun)

loader.load_plugins = timed_load  # ready() imports it by name at call time
django.setup()
elapsed = time.perf_counter() - started
from providers.registry import registry
print("QTAP_BENCH", elapsed * 1000, sum(loader_seconds) * 1000, len(registry), len(registry.failures()))
"""

_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def sample(plugins_dir: Path, data_dir: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QTAP_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="qtap_site.settings",
        QTAP_PLUGINS_DIR=str(plugins_dir),
        QTAP_DATA_DIR=str(data_dir),
        PYTHONDONTWRITEBYTECODE="",  # use the compiled bytecode a deployed site would have
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    marker = next(line for line in result.stdout.splitlines() if line.startswith("QTAP_BENCH"))
    _, setup_ms, loader_ms, loaded, failed = marker.split()
    return {
        "setup_ms": float(setup_ms),
        "loader_ms": float(loader_ms),
        "loaded": int(loaded),
        "failed": int(failed),
        "imports": plugin_import_times(result.stderr),
    }


def plugin_import_times(importtime_log: str) -> dict[str, float]:
    """Milliseconds each plugin's modules took to import, with what they imported first.

    The loader runs a plugin's ``__init__.py`` itself, so -X importtime sees the plugin's own
    submodules (``qtap_plugins.<plugin>.provider``…), not the package: add up their outermost entries.
    """
    totals: dict[str, float] = {}
    outermost: dict[str, int] = {}
    for line in importtime_log.splitlines():
        match = _IMPORTTIME.match(line)
        if not match or not match.group(4).startswith("qtap_plugins."):
            continue
        plugin, depth = match.group(4).split(".")[1], len(match.group(3))
        if depth < outermost.get(plugin, depth + 1):
            outermost[plugin], totals[plugin] = depth, 0.0
        if depth == outermost[plugin]:
            totals[plugin] += int(match.group(2)) / 1000
    return totals


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def measure(runs: int) -> dict[str, object]:
    plugins_dir = ROOT / "plugins"
    with tempfile.TemporaryDirectory(prefix="qtap-bench-") as tmp:
        empty, data = Path(tmp, "no-plugins"), Path(tmp, "data")
        empty.mkdir()
        # warm-up: the first start writes the generated secret and fills the OS file cache
        sample(plugins_dir, data)
        sample(empty, data)
        with_plugins, without = [], []
        for _ in range(runs):
            with_plugins.append(sample(plugins_dir, data))
            without.append(sample(empty, data))
    loaded = {int(s["loaded"]) for s in with_plugins}  # type: ignore[call-overload]
    if loaded != {8} or any(s["failed"] for s in with_plugins) or any(s["loaded"] for s in without):
        raise RuntimeError(f"unexpected plugin counts: {loaded}")
    with_ms = [float(s["setup_ms"]) for s in with_plugins]  # type: ignore[arg-type]
    without_ms = [float(s["setup_ms"]) for s in without]  # type: ignore[arg-type]
    per_plugin = {
        name: round(statistics.median(float(s["imports"].get(name, 0.0)) for s in with_plugins), 1)  # type: ignore[attr-defined]
        for name in sorted(with_plugins[0]["imports"])  # type: ignore[call-overload]
    }
    loader_ms = [float(s["loader_ms"]) for s in with_plugins]  # type: ignore[arg-type]
    added = statistics.median(with_ms) - statistics.median(without_ms)
    return {
        "benchmark": "plugin_startup",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "runs": runs,
        "setup_with_plugins_ms": summary(with_ms),
        "setup_without_plugins_ms": summary(without_ms),
        "added_by_plugins_ms": round(added, 1),
        "loader_ms": summary(loader_ms),
        "loader_ms_without_plugins": summary([float(s["loader_ms"]) for s in without]),  # type: ignore[arg-type]
        "plugin_import_cumulative_ms_median": per_plugin,
        "target_ms": TARGET_MS,
        "within_target": added < TARGET_MS,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench.plugin_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="samples per variant (default 15)")
    args = parser.parse_args(argv)
    result = measure(args.runs)
    with_ms, without_ms = result["setup_with_plugins_ms"], result["setup_without_plugins_ms"]
    print(f"django.setup() with the eight plugins: median {with_ms['median']} ms (min {with_ms['min']})")  # type: ignore[index]
    print(f"django.setup() with no plugins:        median {without_ms['median']} ms (min {without_ms['min']})")  # type: ignore[index]
    print(
        f"added by the plugins: {result['added_by_plugins_ms']} ms "
        f"(target < {TARGET_MS:.0f} ms: {'met' if result['within_target'] else 'MISSED'}), {args.runs} runs each"
    )
    loader = result["loader_ms"]
    print(f"load_plugins() itself (discover, validate, import, register): median {loader['median']} ms")  # type: ignore[index]
    for name, ms in result["plugin_import_cumulative_ms_median"].items():  # type: ignore[attr-defined]
        print(f"  import {name}: {ms} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
