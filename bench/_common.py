"""What the benchmarks share: percentiles, and the CPU time and memory of a process read from /proc.

CPU time is what makes figures taken on a busy machine comparable: CPU per token does not depend on
what else is running. A module of helpers, not a benchmark (``python -m bench`` skips names with ``_``).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, rounded to 0.01; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


class CPU:
    """CPU seconds spent by named processes and by this (client) process over one or more blocks."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.used: dict[str, float] = {**{name: 0.0 for name in pids}, "client": 0.0}

    def __enter__(self) -> CPU:  # blocks add up: one CPU may count several rounds
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.start_client = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        for name, pid in self.pids.items():
            self.used[name] += cpu_seconds(pid) - self.start[name]
        self.used["client"] += time.process_time() - self.start_client

    def per_token_us(self, tokens: int) -> dict[str, float]:
        return {name: round(seconds / max(tokens, 1) * 1e6, 1) for name, seconds in self.used.items()}
