"""Export and import throughput (messages per second) and peak memory for a large account.

An account of 50,000 messages (500 chats of 100, every tenth message a regenerated sibling, a tool call
every twentieth, Markdown-sized texts) is seeded into a throwaway data directory (its own SQLite
database; PostgreSQL when ``--postgres URL`` is given). Then, each phase in a fresh interpreter so its
``ru_maxrss`` is its own:

- export: ``GET /export/`` through the full Django stack, the streamed body written to a file as it
  arrives (time to the first byte, chunks, bytes);
- import of that qtap archive for a new user (the service ``importing.import_file``, one transaction);
- import of the same trees as a ChatGPT ``conversations.json``;
- the write lock: a ChatGPT file of ``--repeat`` times those trees (3: 150,000 messages, the size of a
  big real export) imported while another user writes (a chat and a message every 0.1 s, its own
  thread and connection): how long the import's transaction stayed open, the longest wait of those
  writes and how many failed.

Each import phase reports ``transaction_open_s``, the longest its outermost transaction was open (on
SQLite, ``IMMEDIATE``: the time it held the write lock). Each phase but the last runs twice: once for
the speed, once under tracemalloc for the Python heap's peak (slower).

    .venv/bin/python -m bench transfer
    .venv/bin/python bench/transfer.py --messages 50000 [--postgres postgres://postgres@127.0.0.1:5432/qtap_bench]

Writes bench/results/transfer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "transfer.json"


def _phase(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench._transfer_child", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"phase {args[0]} failed:\n{result.stderr[-4000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("QTAP_BENCH "))
    return dict(json.loads(line.removeprefix("QTAP_BENCH ")))


def measure(messages: int, postgres: str | None, repeat: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qtap-bench-transfer-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QTAP_", "DATABASE_URL", "REDIS_URL"))}
        env.update(DJANGO_SETTINGS_MODULE="qtap_site.settings", QTAP_DATA_DIR=data_dir, QTAP_ALLOWED_HOSTS="testserver")
        if postgres:
            env["DATABASE_URL"] = postgres
        archive, chatgpt = f"{data_dir}/archive.json", f"{data_dir}/conversations.json"
        big = f"{data_dir}/big_conversations.json"
        seeded = _phase(env, "seed", "--messages", str(messages))
        export = _phase(env, "export", "--out", archive)
        export_traced = _phase(env, "export", "--out", archive, "--trace")
        _phase(env, "to_chatgpt", "--file", archive, "--out", chatgpt)
        imports = {
            "qtap": _phase(env, "import", "--file", archive, "--user", "qtap1"),
            "qtap_traced": _phase(env, "import", "--file", archive, "--user", "qtap2", "--trace"),
            "chatgpt": _phase(env, "import", "--file", chatgpt, "--user", "gpt1"),
            "chatgpt_traced": _phase(env, "import", "--file", chatgpt, "--user", "gpt2", "--trace"),
        }
        _phase(env, "to_chatgpt", "--file", archive, "--out", big, "--repeat", str(repeat))
        lock = _phase(env, "import", "--file", big, "--user", "big", "--probe")
    return {
        "database": "postgresql" if postgres else "sqlite",
        "seeded": seeded,
        "export": {**export, "tracemalloc_peak_mib": export_traced["tracemalloc_peak_mib"]},
        "import_qtap": {**imports["qtap"], "tracemalloc_peak_mib": imports["qtap_traced"]["tracemalloc_peak_mib"]},
        "import_chatgpt": {
            **imports["chatgpt"],
            "tracemalloc_peak_mib": imports["chatgpt_traced"]["tracemalloc_peak_mib"],
        },
        "write_lock": lock,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (a database this run may create)")
    parser.add_argument("--repeat", type=int, default=3, help="the write-lock file: this many times the trees")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    figures = measure(args.messages, args.postgres, args.repeat)
    result = {
        "benchmark": "transfer",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        **figures,
    }
    e, q, g, w = figures["export"], figures["import_qtap"], figures["import_chatgpt"], figures["write_lock"]
    print(
        f"{figures['database']}, {figures['seeded']['messages']} messages in {figures['seeded']['chats']} chats\n"
        f"export: {e['messages_per_s']} msg/s ({e['seconds']} s, {e['bytes']} B in {e['chunks']} chunks, first byte "
        f"{e['first_byte_ms']} ms), rss {e['rss_before_mib']} → {e['rss_peak_mib']} MiB, heap peak "
        f"{e['tracemalloc_peak_mib']} MiB\n"
        f"import qtap: {q['messages_per_s']} msg/s ({q['seconds']} s), rss {q['rss_before_mib']} → "
        f"{q['rss_peak_mib']} MiB, heap peak {q['tracemalloc_peak_mib']} MiB\n"
        f"import ChatGPT: {g['messages_per_s']} msg/s ({g['seconds']} s), rss {g['rss_before_mib']} → "
        f"{g['rss_peak_mib']} MiB, heap peak {g['tracemalloc_peak_mib']} MiB\n"
        f"transaction open: qtap {q['transaction_open_s']} s, ChatGPT {g['transaction_open_s']} s\n"
        f"write lock, {w['messages']} messages ({w['file_bytes']} B) in {w['seconds']} s: transaction open "
        f"{w['transaction_open_s']} s; another user's writes {w['probe_writes']}, longest "
        f"{w['probe_wait_max_s']} s, failed {w['probe_failures']}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main(sys.argv[1:])
