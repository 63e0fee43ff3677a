"""Turn every bench/results/*.json into bench/results/REPORT.md, with tables and PNG plots.

The load and relay benchmarks get plots of time to first token and throughput against concurrency,
through qtap and straight to the provider, so a reader sees where qtap stands against the
direct-to-provider limit; the load benchmark's targets are checked one by one. Any other result file
is shown as tables of its figures. A ``<name>.notes.md`` beside a result file (the analysis of those
figures: where the time goes) is included after its section.

    .venv/bin/python -m bench report
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


# ---- tables ---------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def flatten(data: Any, prefix: str = "", depth: int = 3) -> dict[str, Any]:
    """Scalars of nested dicts under dotted keys (lists of scalars kept; deeper structures left out)."""
    flat: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and depth > 0:
                flat.update(flatten(value, f"{name}.", depth - 1))
            elif not isinstance(value, dict | list) or (
                isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)
            ):
                flat[name] = value
    return flat


def generic_section(data: dict[str, Any]) -> str:
    """Scalars as a two-column table; each dict-of-dicts or list-of-dicts as a table of its own."""
    parts = []
    scalars = [(k, v) for k, v in flatten(data, depth=2).items() if k not in ("benchmark",)]
    structured = {
        k: v
        for k, v in data.items()
        if (isinstance(v, list) and v and all(isinstance(i, dict) for i in v))
        or (isinstance(v, dict) and v and all(isinstance(i, dict) for i in v.values()))
    }
    scalars = [(k, v) for k, v in scalars if k.split(".", 1)[0] not in structured]
    if scalars:
        parts.append(table(["figure", "value"], scalars))
    for key, value in structured.items():
        rows = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        flats = [(name, flatten(item, depth=2)) for name, item in rows]
        columns: list[str] = []
        for _, flat in flats:
            columns += [c for c in flat if c not in columns]
        parts.append(
            f"**{key}**\n\n" + table([key, *columns], [[name, *(f.get(c) for c in columns)] for name, f in flats])
        )
    return "\n\n".join(parts)


# ---- plots ----------------------------------------------------------------------------------------


def _plot(
    path: Path,
    title: str,
    ylabel: str,
    series: dict[str, tuple[list[float], list[float | None]]],
    *,
    log: bool = False,
    hline: tuple[float, str] | None = None,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for label, (xs, ys) in series.items():
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            style = "--" if label.startswith("direct") else "-"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=label)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle=":", linewidth=1)
        ax.annotate(hline[1], (ax.get_xlim()[0], hline[0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("concurrent users (open sockets / streams)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


# ---- the load benchmark ---------------------------------------------------------------------------


def _by_mode(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    modes: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        modes.setdefault(run["mode"], []).append(run)
    for rows in modes.values():
        rows.sort(key=lambda r: r["n"])
    return modes


def _find(runs: list[dict[str, Any]], mode: str, n: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["mode"] == mode and r["n"] == n), None)


def load_targets(runs: list[dict[str, Any]]) -> list[list[Any]]:
    def check(run: dict[str, Any] | None, ok: Any, shown: Any) -> tuple[str, str]:
        if run is None:
            return "not measured", "-"
        return ("met" if ok else "**missed**"), fmt(shown)

    rows = []
    one_1000 = _find(runs, "one-process", 1000)
    if one_1000:
        rows.append(
            [
                "1,000 open sockets, one process: RSS < 512 MB",
                *check(
                    one_1000,
                    one_1000["sockets_open"] == 1000 and one_1000["rss_mb_open"] < 512,
                    f"{one_1000['rss_mb_open']} MB, {one_1000['sockets_open']} open",
                ),
            ]
        )
    else:
        rows.append(["1,000 open sockets, one process: RSS < 512 MB", "not measured", "-"])
    for mode, key in (("one process", "one-process"), ("two processes", "two-processes")):
        run = _find(runs, key, 200)
        if run is None:
            rows.append([f"200 streams, {mode}", "not measured", "-"])
            continue
        q = run["qtap"]
        # Added time over the provider's unloaded latency (direct p50 at the smallest N): the direct client
        # shares this machine, and its own percentiles at high N include its own queueing.
        base = unloaded_direct_ms(runs, key)
        for pct, limit in (("p50", 10), ("p99", 50)):
            own = q[f"ttft_ms_{pct}"]
            added = None if own is None or base is None else round(own - base, 2)
            shown = f"{fmt(added)} ms (qtap {fmt(own)} - unloaded direct {fmt(base)})"
            rows.append(
                [
                    f"200 streams, {mode}: added TTFT {pct} < {limit} ms",
                    *check(run, added is not None and added < limit, shown),
                ]
            )
        rows.append(
            [
                f"200 streams, {mode}: throughput ≥ 80% of direct",
                *check(run, (run["throughput_ratio"] or 0) >= 0.8, f"{(run['throughput_ratio'] or 0) * 100:.0f}%"),
            ]
        )
        rows.append(
            [
                f"200 streams, {mode}: zero tokens lost, no errors",
                *check(
                    run, q["tokens_lost"] == 0 and q["errors"] == 0, f"{q['tokens_lost']} lost, {q['errors']} errors"
                ),
            ]
        )
    return rows


def unloaded_direct_ms(runs: list[dict[str, Any]], mode: str) -> float | None:
    own = sorted((r for r in runs if r["mode"] == mode), key=lambda r: r["n"])
    return own[0]["direct"]["ttft_ms_p50"] if own else None


def per_socket_kb(run: dict[str, Any], runs: list[dict[str, Any]]) -> float:
    """RSS growth per open socket from the deployment's idle baseline."""
    baseline = run.get("rss_mb_baseline")
    if baseline is None:  # older files: the idle figure of the deployment's first run
        first = min((r for r in runs if r["mode"] == run["mode"]), key=lambda r: r["n"])
        baseline = first["rss_mb_idle"]
    return round((run["rss_mb_open"] - baseline) * 1024 / max(run["sockets_open"], 1), 1)


def load_section(data: dict[str, Any], out: Path, stem: str = "load") -> str:
    runs = data.get("runs", [])
    modes = _by_mode(runs)
    params = data.get("params", {})
    parts = [
        f"Recorded {data.get('recorded_at', '?')} on {data.get('machine', {}).get('cpus', '?')} CPUs "
        f"(Python {data.get('machine', {}).get('python', '?')}). Each user holds one websocket and sends "
        f"{params.get('rounds')} message(s); the provider streams {params.get('tokens_per_reply')} tokens "
        f"{params.get('token_delay_s')} s apart. Users start at random points of one reply's length, so about N "
        "streams overlap. *Direct* is the same users as bare httpx clients of the same provider server. "
        f"One process: {params.get('one-process')}. Two processes: {params.get('two-processes')}.",
        "**Targets**\n\n" + table(["target", "result", "measured"], load_targets(runs)),
    ]
    headers = [
        "deployment",
        "N",
        "open",
        "refused",
        "handshake p50/p99 ms",
        "RSS MB open",
        "KB/socket",
        "TTFT p50/p99 ms",
        "direct p50/p99 ms",
        "difference p50/p99 ms",
        "tok/s",
        "direct tok/s",
        "ratio",
        "errors",
        "lost",
        "CPU µs/token",
    ]
    rows = []
    for mode, mode_runs in modes.items():
        for r in mode_runs:
            q, d = r["qtap"], r["direct"]
            rows.append(
                [
                    mode,
                    r["n"],
                    r["sockets_open"],
                    r["sockets_refused"],
                    f"{fmt(r['handshake_ms_p50'])} / {fmt(r['handshake_ms_p99'])}",
                    r["rss_mb_open"],
                    per_socket_kb(r, runs),
                    f"{fmt(q['ttft_ms_p50'])} / {fmt(q['ttft_ms_p99'])}",
                    f"{fmt(d['ttft_ms_p50'])} / {fmt(d['ttft_ms_p99'])}",
                    f"{fmt(r['added_ttft_ms_p50'])} / {fmt(r['added_ttft_ms_p99'])}",
                    q["tokens_per_s"],
                    d["tokens_per_s"],
                    r["throughput_ratio"],
                    q["errors"],
                    q["tokens_lost"],
                    q["cpu_us_per_token"],
                ]
            )
    parts.append("**Runs**\n\n" + table(headers, rows))

    direct_mode = next(iter(modes.values()), [])
    ttft = {}
    tput = {}
    for mode, mode_runs in modes.items():
        ns = [r["n"] for r in mode_runs]
        # A run where most streams failed has percentiles of its few survivors only: left out of the plot.
        healthy = [r["qtap"]["errors"] <= 0.1 * max(r["qtap"]["streams"], 1) for r in mode_runs]
        for pct in ("p50", "p99"):
            values = [r["qtap"][f"ttft_ms_{pct}"] if ok else None for r, ok in zip(mode_runs, healthy, strict=True)]
            ttft[f"qtap {mode} {pct}"] = (ns, values)
        tput[f"qtap {mode}"] = (ns, [r["qtap"]["tokens_per_s"] for r in mode_runs])
    if direct_mode:
        ns = [r["n"] for r in direct_mode]
        ttft["direct p50"] = (ns, [r["direct"]["ttft_ms_p50"] for r in direct_mode])
        ttft["direct p99"] = (ns, [r["direct"]["ttft_ms_p99"] for r in direct_mode])
        tput["direct (provider limit)"] = (ns, [r["direct"]["tokens_per_s"] for r in direct_mode])
    if runs:
        a = _plot(out / f"{stem}_ttft.png", "Time to first token", "ms (log)", ttft, log=True, hline=(50, "p99 target"))
        b = _plot(out / f"{stem}_throughput.png", "Delivered tokens per second", "tokens/s", tput)
        mem = {f"{m}": ([r["n"] for r in rs], [r["rss_mb_open"] for r in rs]) for m, rs in modes.items()}
        c = _plot(
            out / f"{stem}_memory.png",
            "Resident memory with N sockets open (all processes)",
            "MB",
            mem,
            hline=(512, "512 MB"),
        )
        parts.append(
            "Plots leave out runs where more than 10% of the streams failed (their percentiles describe only "
            "the streams that got through)."
        )
        parts.append(f"![time to first token]({a})\n\n![throughput]({b})\n\n![memory]({c})")
    return "\n\n".join(parts)


def relay_section(data: dict[str, Any], out: Path, stem: str = "relay") -> str:
    runs = sorted(data.get("runs", []), key=lambda r: r["n"])
    scenarios = ", ".join(r.get("scenario", f"{r['n']}x{data.get('tokens_per_stream')}@0") for r in runs)
    parts = [
        f"Scenarios (N streams x tokens @ ms between tokens): {scenarios}; one process ({data.get('database')}, "
        f"{data.get('channel_layer')} layer); every client starts at once.",
        table(
            ["N", "TTFT p50/p99 ms", "direct p50/p99 ms", "added p50/p99 ms", "tok/s", "direct tok/s", "ratio", "lost"],
            [
                [
                    r["n"],
                    f"{fmt(r['websocket']['ttft_ms_p50'])} / {fmt(r['websocket']['ttft_ms_p99'])}",
                    f"{fmt(r['direct']['ttft_ms_p50'])} / {fmt(r['direct']['ttft_ms_p99'])}",
                    f"{fmt(r['added_ttft_ms_p50'])} / {fmt(r['added_ttft_ms_p99'])}",
                    r["websocket"]["tokens_per_s"],
                    r["direct"]["tokens_per_s"],
                    r["throughput_ratio"],
                    r["websocket"]["tokens_lost"],
                ]
                for r in runs
            ],
        ),
    ]
    if runs:
        ns = [r["n"] for r in runs]
        a = _plot(
            out / f"{stem}_ttft.png",
            "Relay: time to first token",
            "ms (log)",
            {
                "qtap p50": (ns, [r["websocket"]["ttft_ms_p50"] for r in runs]),
                "qtap p99": (ns, [r["websocket"]["ttft_ms_p99"] for r in runs]),
                "direct p50": (ns, [r["direct"]["ttft_ms_p50"] for r in runs]),
                "direct p99": (ns, [r["direct"]["ttft_ms_p99"] for r in runs]),
            },
            log=True,
        )
        b = _plot(
            out / f"{stem}_throughput.png",
            "Relay: tokens per second",
            "tokens/s",
            {
                "qtap": (ns, [r["websocket"]["tokens_per_s"] for r in runs]),
                "direct (provider limit)": (ns, [r["direct"]["tokens_per_s"] for r in runs]),
            },
        )
        parts.append(f"![relay time to first token]({a})\n\n![relay throughput]({b})")
    return "\n\n".join(parts)


SECTIONS = {"load": load_section, "relay": relay_section}


def build(results: Path = RESULTS) -> str:
    files = sorted(p for p in results.glob("*.json"))
    out = [
        "# qtap benchmark report",
        "",
        "Generated by `bench/report.py` from the figures in `bench/results/*.json`; rerun a benchmark "
        "(`make bench`, or `.venv/bin/python -m bench NAME`) and this report with it.",
        "",
    ]
    order = sorted(files, key=lambda p: (p.stem not in SECTIONS, p.stem))
    for path in order:
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            out += [f"## {path.stem}", "", f"Unreadable: {exc}", ""]
            continue
        name = data.get("benchmark", path.stem) if isinstance(data, dict) else path.stem
        render = SECTIONS.get(name)
        body = render(data, results, path.stem) if render else generic_section(data if isinstance(data, dict) else {})
        title = name if path.stem == name else f"{name}: {path.stem}"
        out += [f"## {title}", "", f"From `{path.name}`.", "", body, ""]
        notes = path.with_suffix(".notes.md")  # hand-written analysis kept beside the figures
        if notes.exists():
            out += [notes.read_text().strip(), ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    report = build()
    target = RESULTS / "REPORT.md"
    target.write_text(report)
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
