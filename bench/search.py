"""Search latency over 100,000 messages on each engine: SQLite FTS5 and PostgreSQL full-text search.

Each engine is measured in a fresh interpreter (bench/_search_child.py) on a database made for the run
and removed after it: SQLite in a temporary data directory, PostgreSQL in a temporary database created on
the server of ``QTAP_BENCH_POSTGRES`` (default ``postgres://postgres@127.0.0.1:5432/postgres``) and dropped
at the end. The figure is the time of one ``qtap_site.search.services.search`` call (newest matches, scoping,
snippets, at most 50 results), p50 and p99 over ``--runs`` calls per kind of query, after three warm-up
calls. Results go to bench/results/search.json.

    python -m bench.search [--messages 100000] [--chats 500] [--runs 50] [--engines sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "search.json"
POSTGRES = os.environ.get("QTAP_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")


def _child(env_extra: dict[str, str], messages: int, chats: int, runs: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QTAP_", "DATABASE_URL", "REDIS_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="qtap_site.settings", **env_extra)
    result = subprocess.run(
        [sys.executable, "-m", "bench._search_child", str(messages), str(chats), str(runs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{result.stderr[-4000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("QTAP_BENCH "))
    return dict(json.loads(line.removeprefix("QTAP_BENCH ")))


def sqlite(messages: int, chats: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qtap-bench-search-") as data_dir:
        return _child({"QTAP_DATA_DIR": data_dir}, messages, chats, runs)


def postgresql(messages: int, chats: int, runs: int) -> dict[str, Any]:
    import psycopg

    name = f"qtap_bench_search_{os.getpid()}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        server = admin.execute("SHOW server_version").fetchone()
    try:
        base = POSTGRES.rsplit("/", 1)[0]
        with tempfile.TemporaryDirectory(prefix="qtap-bench-search-") as data_dir:
            figures = _child({"QTAP_DATA_DIR": data_dir, "DATABASE_URL": f"{base}/{name}"}, messages, chats, runs)
        figures["server_version"] = server[0] if server else None
        return figures
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


ENGINES = {"sqlite": sqlite, "postgresql": postgresql}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args(argv)

    import sqlite3

    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "sqlite": sqlite3.sqlite_version},
        "engines": {},
    }
    for engine in args.engines.split(","):
        print(f"search: {engine}, {args.messages} messages…", flush=True)
        try:
            figures = ENGINES[engine](args.messages, args.chats, args.runs)
        except Exception as exc:  # PostgreSQL may simply not be running here: say so, keep the other figures
            report["engines"][engine] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"  {engine}: not measured ({type(exc).__name__}: {exc})", flush=True)
            continue
        report["engines"][engine] = figures
        overall = figures["overall"]
        print(f"  {figures['engine']}: overall p50 {overall['p50_ms']} ms, p99 {overall['p99_ms']} ms")
        for kind, row in figures["queries"].items():
            print(f"    {kind:12} {row['results']:3} results  p50 {row['p50_ms']:7} ms  p99 {row['p99_ms']:7} ms")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
