"""The tool-loop benchmark's measurement, run once with a handful of replies: every reply completes, every
call reaches the tool and comes back, and every gap from the model's call to the next request is measured
(the benchmark itself runs with ``python -m bench tool_loop``). Shapes only, never timing thresholds."""

from __future__ import annotations

import pytest

from bench.tool_loop import measure, schedule

REPLIES = 3


def test_the_call_counts_alternate_in_batches():
    assert schedule(3, (1, 4), 2) == [1, 1, 4, 4, 1, 4]
    assert schedule(2, (1,), 20) == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_a_short_run_measures_every_reply(user):
    summaries = measure(user, replies=REPLIES, call_counts=(1, 4), batch=2, warmup=1)
    assert [s["calls_per_turn"] for s in summaries] == [1, 4]
    for summary in summaries:
        calls = summary["calls_per_turn"]
        assert summary["replies"] == summary["replies_complete"] == REPLIES
        assert summary["replies_lost"] == 0
        assert summary["upstream_requests"] == 2 * REPLIES  # the tool-call turn, then the one with results
        assert summary["tool_call_frames"] == summary["tool_result_frames"] == calls * REPLIES
        assert summary["tool_runs"] == calls * REPLIES
        assert summary["tool_errors"] == 0
        overheads = summary["overheads_ms"]
        assert len(overheads) == REPLIES and all(value > 0 for value in overheads)
        figures, cpu = summary["overhead_ms"], summary["overhead_cpu_ms"]
        assert 0 < figures["min"] <= figures["p50"] <= figures["p99"] <= figures["max"]
        assert figures["mean"] > 0 and cpu["min"] > 0
        assert summary["reply_ms"]["min"] > figures["min"]  # a whole reply holds its gap
