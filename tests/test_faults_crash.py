"""Invariant 4 (docs/design.md): a process killed at any step is repaired by the next run, exactly once.

Each test runs the real CLI (``python -m shared.cli run --now ...``) as a subprocess that dies
with status 137 at a named crash point (``EXPORTER_CRASH_AT``), then runs it again without the
crash and checks the whole container.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import committed, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:31:01Z"  # three windows (12:00, 12:10, 12:20) due


def _load(harness, per_type=None):
    calls = []
    for i in range(3):
        window = make_window_calls(W0 + timedelta(minutes=10 * i), per_type=per_type or
                                   {"track": 7, "identify": 3, "page": 2}, seed=100 + i)
        calls += window
    # one bad line in the first window, so the dead-letter file is part of every crash scenario
    at = "2026-11-28T12:03:00.000Z"
    harness.source.add([*calls, ("track", at, b"not json at all")])
    return calls


def _crash(harness, point, **env):
    harness.env.update(START)
    harness.env.update(env)
    proc = harness.cli("run", "--now", NOW, extra_env={"EXPORTER_CRASH_AT": point})
    assert proc.returncode == 137, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def _rerun(harness):
    proc = harness.cli("run", "--now", NOW)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


@pytest.mark.parametrize("point", [
    "after_claim", "after_claim:4", "after_stage", "after_stage:3", "after_file_commit",
    "after_file_commit:2", "before_state_commit", "before_state_commit:5", "after_state_commit",
    "after_state_commit:2",
])
def test_a_run_killed_at_any_step_is_repaired_by_the_next_run_exactly_once(harness, point):
    calls = _load(harness)
    _crash(harness, point)
    before = snapshot(harness.blobs())
    rows_after_crash = state_rows(harness)
    proc = _rerun(harness)
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, before=before,
                    manifest_windows=[W0 + timedelta(minutes=10 * i) for i in range(3)])
    final = state_rows(harness)
    assert {t: r.position for t, r in final.items() if r.position} == {"track": 3, "identify": 3, "page": 3}
    assert all(r.pending_start is None for r in final.values())
    assert all(r.window_end == W0 + timedelta(minutes=30) for r in final.values())
    # Whatever the crashed run committed, the rerun found it (by name and metadata) and kept it.
    for name in before:
        if "/_rejected/" not in name:
            assert name + " (already there)" in proc.stdout or name not in proc.stdout, proc.stdout
    if point.startswith("after_file_commit") or point == "before_state_commit":  # a file is in place
        pending = [r for r in rows_after_crash.values() if r.pending_start is not None]
        assert pending, "the crash must leave a pending claim"
        assert "(already there)" in proc.stdout


def test_a_window_split_into_files_killed_after_its_first_file_resumes_at_the_next_position(harness):
    calls = make_window_calls(W0, per_type={"track": 25, "alias": 4}, seed=5)
    harness.source.add(calls)
    harness.env.update(START)
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"EXPORTER_CRASH_AT": "after_file_commit:1", "MAX_FILE_ROWS": "10"})
    assert proc.returncode == 137, proc.stderr
    first = harness.data_blobs()
    assert len(first) == 1
    (name, blob), = first.items()
    pending = state_rows(harness)[blob.metadata["call_type"]]
    assert pending.pending_position == 1 and pending.position == 0
    before = snapshot(harness.blobs())
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env={"MAX_FILE_ROWS": "10"})
    assert proc.returncode == 0, proc.stderr
    assert f"{name} (already there)" in proc.stdout
    report = check_container(harness.blobs(), expected_ids=ids_of(calls), before=before)
    assert sorted(report.files["track"]) == [(p, "2026-11-28T12:00:00Z") for p in (1, 2, 3)]
    assert state_rows(harness)["track"].position == 3


def test_repeated_crashes_at_every_point_in_turn_still_end_exactly_once(harness):
    calls = _load(harness, per_type={"track": 12, "screen": 3})
    harness.env.update(START)
    snapshots = []
    for point in ("after_file_commit:2", "after_claim:3", "before_state_commit:2", "after_stage:4",
                  "after_state_commit:3"):
        proc = harness.cli("run", "--now", NOW, extra_env={"EXPORTER_CRASH_AT": point,
                                                           "MAX_FILE_ROWS": "5"})
        assert proc.returncode in (0, 137), proc.stderr
        snapshots.append(snapshot(harness.blobs()))
        check_container(harness.blobs(), expected_ids=None, before=snapshots[-2] if len(snapshots) > 1 else None)
    assert _rerun_with(harness, MAX_FILE_ROWS="5").returncode == 0
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, before=snapshots[-1],
                    manifest_windows=[W0 + timedelta(minutes=10 * i) for i in range(3)])
    assert committed(state_rows(harness))["track"] == (9, W0 + timedelta(minutes=30))


def _rerun_with(harness, **env):
    proc = harness.cli("run", "--now", NOW, extra_env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_window_resumed_after_the_settings_changed_is_finished_as_it_was_started(harness):
    """A crash mid-window, then a new format and file cap: the pending window keeps its recipe
    (one extension, the same split), and only the next window uses the new settings."""
    first = make_window_calls(W0, per_type={"track": 25}, seed=8)
    second = make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 4}, seed=9)
    harness.source.add(first + second)
    harness.env.update(START)
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"EXPORTER_CRASH_AT": "after_file_commit:1", "MAX_FILE_ROWS": "10"})
    assert proc.returncode == 137
    harness.env.update({"EXPORT_FORMAT": "json", "MAX_FILE_ROWS": "1000"})
    _rerun_at = harness.cli("run", "--now", "2026-11-28T12:21:01Z")
    assert _rerun_at.returncode == 0, _rerun_at.stderr
    names = sorted(n.rsplit("/", 1)[1] for n in harness.data_blobs())
    assert names == [
        "2184.13699.1.track.csv",  # the crashed run's first file
        "2184.13699.2.track.csv",  # the same window, finished as csv with 10 rows a file
        "2184.13699.3.track.csv",
        "2184.13699.4.track.json",  # the next window, with the new settings
    ]
    check_container(harness.blobs(), expected_ids=ids_of(first + second))
    assert all(r.pending_recipe is None for r in state_rows(harness).values())
