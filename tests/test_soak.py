"""A seeded randomized soak: many windows, faults at random, then the whole-container check.

Each round picks one fault at random: ETL API misbehaviour (emulator faults), a lost storage
response or 503s (SDK transports), or a process killed at a random crash point (the CLI as a
subprocess), and runs the export. After every round the container must already satisfy the
invariants for what it holds (nothing modified, no duplicate, no gap); at the end every call of
every window is in exactly one file and every bad line is in ``_rejected/``.

Default: ~10 windows, bounded to well under a minute. ``--soak-long``: more windows, more rounds.
``SOAK_SEED=<n>`` replays a run.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import ExponentialRetry

from emulator.faults import Fault
from shared.calltypes import CALL_TYPES
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import (
    FailingTransport,
    LosingTransport,
    is_any_write,
    is_blob_commit,
    is_rejected_commit,
    is_table_conditional_write,
)
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import run_with, state_rows
from tests.test_faults_etl import BAD_LINES

W0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
ETL_KINDS = ["status", "reset", "delay", "truncate", "no_final_newline", "html", "loop_cursor", "bad_gzip"]
POINTS = ["after_claim", "after_stage", "after_file_commit", "before_state_commit", "after_state_commit"]
FAST_BLOB_RETRY = {"retry_policy": ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=3,
                                                    random_jitter_range=0)}
ETL = {"page_limit": 3, "read_timeout": 0.3}


@pytest.mark.soak
def test_random_faults_over_many_windows_end_with_every_call_exactly_once(harness, request):
    long = request.config.getoption("--soak-long")
    seed = int(os.environ.get("SOAK_SEED", "20261128"))
    rng = random.Random(seed)
    windows = 30 if long else 10
    budget = 600.0 if long else 45.0
    max_crashes = 1000 if long else 3
    calls: list[dict] = []
    bad = 0
    for i in range(windows):
        start = W0 + timedelta(minutes=10 * i)
        per_type = {t: rng.choice([0, 0, 1, 2, 4, 7]) for t in CALL_TYPES}
        calls += make_window_calls(start, per_type=per_type, seed=seed + i)
        lines = rng.sample(list(BAD_LINES.values()), rng.choice([0, 0, 1, 3]))
        harness.source.add([("track", (start + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), ln)
                            for ln in lines])
        bad += len(lines)
    harness.source.add(calls)
    end = W0 + timedelta(minutes=10 * windows)
    now = end + timedelta(seconds=61)
    now_text = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    harness.env.update(EXPORT_START=W0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       MAX_FILE_ROWS=rng.choice(["2", "3", "1000000"]),
                       MAX_WINDOWS_PER_RUN=str(rng.choice([3, 4, 6])))
    started = time.monotonic()
    before = snapshot(harness.blobs())
    crashes = 0
    log: list[str] = []
    while time.monotonic() - started < budget:
        rows = state_rows(harness)
        if rows and all(r.window_end == end and r.pending_start is None for r in rows.values()) \
                and len(rows) == len(CALL_TYPES):
            break
        action = rng.choice(["etl", "etl", "lost", "fail", "crash", "clean"])
        if action == "crash" and crashes >= max_crashes:
            action = "etl"
        harness.etl.clear_faults()
        if action == "etl":
            for _ in range(rng.randint(1, 2)):
                kind = rng.choice(ETL_KINDS)
                harness.etl.add_fault(Fault(kind, call_type=rng.choice(CALL_TYPES), times=rng.randint(1, 3),
                                            after=rng.randint(0, 3), status=rng.choice([429, 500, 503]),
                                            retry_after=0, delay=0.5))
            log.append(f"etl {[(f.kind, f.call_type, f.times) for f in harness.etl.pending_faults]}")
            run_with(harness, now, etl_kwargs=ETL, blob_kwargs=FAST_BLOB_RETRY)
        elif action == "lost":
            matcher = rng.choice([is_blob_commit, is_rejected_commit, is_table_conditional_write])
            lose = LosingTransport(matcher, times=rng.randint(1, 2), after=rng.randint(0, 6))
            side = {"table_transport": lose} if matcher is is_table_conditional_write else {"blob_transport": lose}
            log.append(f"lost {matcher.__name__}")
            run_with(harness, now, etl_kwargs=ETL, blob_kwargs=FAST_BLOB_RETRY, **side)
        elif action == "fail":
            fail = FailingTransport(is_any_write, times=rng.randint(1, 3), after=rng.randint(0, 10))
            side = {rng.choice(["blob_transport", "table_transport"]): fail}
            log.append(f"503 {list(side)}")
            run_with(harness, now, etl_kwargs=ETL, blob_kwargs=FAST_BLOB_RETRY, **side)
        elif action == "crash":
            crashes += 1
            point = f"{rng.choice(POINTS)}:{rng.randint(1, 6)}"
            log.append(f"crash {point}")
            proc = harness.cli("run", "--now", now_text, extra_env={"EXPORTER_CRASH_AT": point})
            assert proc.returncode in (0, 137), proc.stderr
        else:
            log.append("clean")
            run_with(harness, now, etl_kwargs=ETL, blob_kwargs=FAST_BLOB_RETRY)
        blobs = harness.blobs()
        check_container(blobs, expected_ids=None, before=before)
        before = snapshot(blobs)
    harness.etl.clear_faults()
    for _ in range(windows):  # drain what the faults left (each run takes MAX_WINDOWS_PER_RUN)
        summary = run_with(harness, now)
        assert summary.ok, (seed, summary.error, log)
        if not summary.units:
            break
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=bad, before=before)
    rows = state_rows(harness)
    assert all(r.window_end == end and r.pending_start is None for r in rows.values()), (seed, log)
