"""The database side of a burst of planned sends: ``plans.prepare_all`` writing N sends (each the second
message of its chat) in one transaction, alone and beside a thread that keeps the interpreter busy, as
the event loop does while a burst arrives (the database thread then waits for the interpreter after
every trip into the database driver).

Reports, per N, the batch's wall time and the database statements it ran (median of the rounds; each
round's writes are rolled back, so every round sees the same rows).

    .venv/bin/python bench/send_batch.py                 # N = 200
    .venv/bin/python bench/send_batch.py 50 200 --out /tmp/send_batch.json

Writes bench/results/send_batch.json (or ``--out``). SQLite in a temporary folder.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.chat.live_site import provision, site_env  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "send_batch.json"
ROUNDS = 15


def _busy(stop: threading.Event) -> None:
    """Pure Python work that never sleeps: the event loop's share of a burst."""
    while not stop.is_set():
        sum(i * i for i in range(2000))


def _setup(chat_ids: list[int]) -> list[Any]:
    from qtap_site.chat.models import Chat, Message

    chats = list(Chat.objects.filter(pk__in=chat_ids))
    for chat in chats:  # one exchange in each chat: the measured send is its second message
        user = Message.objects.create(chat=chat, role=Message.Role.USER, content="warm")
        Message.objects.create(chat=chat, parent=user, role=Message.Role.ASSISTANT, content="w0 w1 w2")
    return chats


def _round(chats: list[Any], contended: bool) -> tuple[float, int]:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from qtap_site.chat import plans
    from qtap_site.chat.sending import SendRequest

    for chat in chats:
        plan = plans.plan_of(user_id=chat.user_id, chat_id=chat.pk)
        assert plan is not None, chat.pk
        plans.plans[chat.pk] = plan
    sends = [SendRequest(user_id=c.user_id, chat_id=c.pk, content="go", planned=True) for c in chats]
    stop = threading.Event()
    worker = threading.Thread(target=_busy, args=(stop,), daemon=True)
    if contended:
        worker.start()
        time.sleep(0.01)
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            outcomes = plans.prepare_all(sends)
            elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
    finally:
        stop.set()
        if contended:
            worker.join()
    written = sum(1 for o in outcomes if o is not None and not isinstance(o, Exception) and hasattr(o, "request"))
    assert written == len(sends), f"{written} of {len(sends)} sends were written the short way"
    return elapsed * 1000, len(queries)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    out = RESULTS
    if "--out" in args:
        at = args.index("--out")
        out = Path(args[at + 1]).resolve()
        del args[at : at + 2]
    sizes = [int(a) for a in args if a.isdigit()] or [200]
    rows = []
    with tempfile.TemporaryDirectory(prefix="qtap-send-batch-") as tmp:
        env = site_env(Path(tmp) / "data", QTAP_MAX_CONCURRENT_GENERATIONS=str(max(sizes) + 10))
        site = provision(env, base_url="http://127.0.0.1:9/v1", secret="sk-bench", chats=max(sizes))
        os.environ.update(env)
        import django

        django.setup()
        chats = _setup(list(site["chat_ids"]))
        for n in sizes:
            row: dict[str, Any] = {"n": n}
            for contended in (False, True):
                # Alternate nothing else: both modes run the same rounds on the same rows.
                figures = [_round(chats[:n], contended) for _ in range(ROUNDS)]
                key = "beside_busy_thread" if contended else "alone"
                times = [ms for ms, _ in figures]
                row[key] = {
                    "ms_p50": round(statistics.median(times), 2),
                    "ms_min": round(min(times), 2),
                    "ms_per_send_p50": round(statistics.median(times) / n, 3),
                    "statements": figures[0][1],
                }
            rows.append(row)
            print(
                f"{n:>5} sends  alone {row['alone']['ms_p50']:>7.2f} ms (min {row['alone']['ms_min']:.2f})"
                f"  beside a busy thread {row['beside_busy_thread']['ms_p50']:>7.2f} ms"
                f"  statements {row['alone']['statements']}",
                flush=True,
            )
    result = {
        "benchmark": "send_batch",
        "database": "sqlite (WAL)",
        "rounds": ROUNDS,
        "runs": rows,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
