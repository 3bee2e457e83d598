"""Runs over time: two exports at once (docs/design.md, invariant 5), downtime and catch-up, open windows (6).

Overlap: two real processes (the CLI) started together against the same Azurite, table and
container with the same ``--now``; both must exit 0 and together write every file exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from emulator.faults import Fault
from shared.calltypes import CALL_TYPES
from tests.conftest import ROOT
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


def _popen(harness, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")}
    env.update(harness.env)
    env.update(extra_env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "--no-settings", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _windows(harness, count: int, per_type: dict[str, int], seed: int = 0) -> list[dict]:
    calls = []
    for i in range(count):
        calls += make_window_calls(W0 + timedelta(minutes=10 * i), per_type=per_type, seed=seed + i)
    harness.source.add(calls)
    return calls


@pytest.mark.parametrize("max_rows", ["1000000", "3"])
def test_two_exports_at_once_write_every_file_exactly_once_and_both_exit_0(harness, max_rows):
    calls = _windows(harness, 18, {t: 4 for t in CALL_TYPES}, seed=50)
    harness.source.add([("page", "2026-11-28T12:05:00.000Z", b"<bad line>")])
    harness.env.update(START, MAX_FILE_ROWS=max_rows)
    # Every page takes 30 ms more, so a run lasts seconds, far longer than the two processes'
    # start-up skew: the race below is real however fast the export itself has become.
    harness.etl.add_fault(Fault("delay", delay=0.03, times=10_000))
    now = (W0 + timedelta(minutes=180, seconds=61)).strftime("%Y-%m-%dT%H:%M:%SZ")
    procs = [_popen(harness, "run", "--now", now) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out, err)
    # One manifest per window, one chain, although both runs completed windows.
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1,
                    manifest_windows=[W0 + timedelta(minutes=10 * i) for i in range(18)])
    rows = state_rows(harness)
    per_file = 1 if max_rows != "3" else 2
    assert {t: r.position for t, r in rows.items()} == {t: 18 * per_file for t in CALL_TYPES}
    assert all(r.window_end == W0 + timedelta(minutes=180) and r.pending_start is None
               for r in rows.values())
    # Each file was created by exactly one of the two; the other either left it ("busy") or found
    # it in place ("already there"). The race must have been real: both did some of the work.
    created = [
        [ln.split()[3] for ln in out.splitlines() if ln.startswith("2026-") and ".csv" in ln
         and "(already there)" not in ln]
        for out, _ in outs
    ]
    assert all(created), "one process did everything: the two runs did not overlap"
    assert not set(created[0]) & set(created[1])
    assert len(set(created[0]) | set(created[1])) == len(harness.data_blobs())


def test_a_run_beside_a_run_that_died_mid_window_takes_the_claim_over_and_finishes(harness):
    calls = _windows(harness, 2, {"track": 9}, seed=60)
    harness.env.update(START, MAX_FILE_ROWS="4")
    now = "2026-11-28T12:21:01Z"
    crashed = harness.cli("run", "--now", now, extra_env={"EXPORTER_CRASH_AT": "after_file_commit:2"})
    assert crashed.returncode == 137
    before = snapshot(harness.blobs())
    procs = [_popen(harness, "run", "--now", now) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, (out, err)
    check_container(harness.blobs(), expected_ids=ids_of(calls), before=before,
                    manifest_windows=[W0, W0 + timedelta(minutes=10)])
    assert state_rows(harness)["track"].position == 6


# ---------------------------------------------------------------------------------------------
# Downtime and catch-up


def test_after_six_hours_down_ticks_drain_the_backlog_in_order_bounded_per_run(harness):
    calls = _windows(harness, 36, {"track": 1, "alias": 1}, seed=70)
    harness.env.update(START, MAX_WINDOWS_PER_RUN="10")
    now = W0 + timedelta(hours=6, seconds=61)
    seen: list[datetime] = []
    for tick in range(4):
        summary = run_with(harness, now + timedelta(seconds=tick))  # ticks within one window
        starts = sorted({u.window.start for u in summary.units})
        assert len(starts) == (10 if tick < 3 else 6)
        assert starts == sorted(starts) and (not seen or starts[0] == seen[-1] + timedelta(minutes=10))
        seen += starts
    assert seen == [W0 + timedelta(minutes=10 * i) for i in range(36)]
    assert run_with(harness, now + timedelta(seconds=5)).units == []
    report = check_container(harness.blobs(), expected_ids=ids_of(calls),
                             manifest_windows=[W0 + timedelta(minutes=10 * i) for i in range(36)])
    for call_type in ("track", "alias"):
        assert [w for _, w in sorted(report.files[call_type])] == [
            (W0 + timedelta(minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(36)]


def test_a_tick_inside_an_open_or_unsettled_window_exports_nothing_for_it(harness):
    calls = _windows(harness, 3, {"track": 2}, seed=80)
    harness.env.update(START)
    # 12:30:59: 12:20-12:30 is closed but not settled (60 s); 12:30-12:40 is open.
    summary = run_with(harness, "2026-11-28T12:30:59Z")
    assert sorted({u.window.start for u in summary.units}) == [W0, W0 + timedelta(minutes=10)]
    assert state_rows(harness)["track"].window_end == W0 + timedelta(minutes=20)
    assert run_with(harness, "2026-11-28T12:30:59.999Z").units == []
    summary = run_with(harness, "2026-11-28T12:31:00Z")
    assert [u.window.start for u in summary.units if u.call_type == "track"] == [W0 + timedelta(minutes=20)]
    check_container(harness.blobs(), expected_ids=ids_of(calls))


def test_windows_come_from_the_stored_state_in_utc_not_from_a_local_or_unaligned_tick(harness):
    calls = _windows(harness, 4, {"identify": 2}, seed=90)
    harness.env.update(START)
    # 14:27:13+02:00 is 12:27:13Z: windows 12:00 and 12:10 are due (12:20 is still open).
    proc = harness.cli("run", "--now", "2026-11-28T14:27:13.456+02:00")
    assert proc.returncode == 0, proc.stderr
    assert committed(state_rows(harness))["identify"] == (2, W0 + timedelta(minutes=20))
    # A tick at a non-aligned instant west of UTC: 07:41:07-05:00 is 12:41:07Z.
    proc = harness.cli("run", "--now", "2026-11-28T07:41:07-05:00")
    assert proc.returncode == 0, proc.stderr
    report = check_container(harness.blobs(), expected_ids=ids_of(calls))
    assert sorted(report.files["identify"]) == [
        (i + 1, (W0 + timedelta(minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")) for i in range(4)]
    # The in-process entry point given a non-UTC aware datetime behaves the same.
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 28, 13, 51, 1, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:51:01Z
    summary = run_with(harness, local)
    assert [u.window.start for u in summary.units if u.call_type == "identify"] == [W0 + timedelta(minutes=40)]
