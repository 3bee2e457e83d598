"""Backfill (issue 14, item 3): a closed range exported again as its own sequence, through the
same units, never touching the live sequence's rows, pin or files; resumed after kills.

Against a real Azurite and the ETL API emulator; the whole-container invariant check of the soak
test (tests/support/invariants.py) proves each sequence exactly-once and gapless."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.backfill import (
    BACKFILLS_PARTITION,
    Definition,
    Scope,
    UsageError,
    derived_id,
    lineage,
    parse_boundary,
    parse_id,
    parse_range,
    parse_types,
    progress,
)
from shared.calltypes import CALL_TYPES
from shared.clients import build_clients, close_clients
from shared.errors import StateConflictError
from shared.export import run_export
from shared.sequence import Sequence, check_backfill, parse_state_key
from shared.state_store import BACKFILLS_PARTITION as STORE_PARTITION
from shared.state_store import StateStore, make_table_service
from shared.windows import WINDOW, format_rfc3339
from tests.conftest import ROOT
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIVE_PATH = "exports/segment"
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


def t(moment: datetime) -> str:
    return format_rfc3339(moment)


def _windows(harness, count: int, per_type: dict[str, int], seed: int = 0) -> list[dict]:
    calls = []
    for i in range(count):
        calls += make_window_calls(W0 + timedelta(minutes=10 * i), per_type=per_type, seed=seed + i)
    harness.source.add(calls)
    return calls


def live_blobs(blobs):
    return {n: b for n, b in blobs.items() if "/_backfill/" not in n}


def folder_blobs(blobs, backfill_id: str):
    prefix = f"{LIVE_PATH}/_backfill/{backfill_id}/"
    return {n: b for n, b in blobs.items() if n.startswith(prefix)}


def in_window(calls, start: datetime, end: datetime, types=CALL_TYPES) -> set[str]:
    out = set()
    for c in calls:
        at = datetime.fromisoformat(c["receivedAt"].replace("Z", "+00:00"))
        if start <= at < end and c["type"] in types:
            out.add(c["messageId"])
    return out


def store_of(harness) -> StateStore:
    return StateStore(make_table_service(harness.azurite.connection_string), harness.table)


def backfill_rows(harness, backfill_id: str):
    return state_rows(harness, f"2184.13699~default~{backfill_id}")


# --- the command line's values (pure) -------------------------------------------------------------

NOW = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


@given(st.text(max_size=60))
def test_a_boundary_is_parsed_or_refused_with_one_line_naming_the_option(text):
    try:
        moment = parse_boundary("--start", text)
    except UsageError as exc:
        assert "--start" in str(exc) and "\n" not in str(exc)
    else:
        assert moment.tzinfo is not None and moment.minute % 10 == 0 and moment.second == 0


@given(st.integers(0, 10_000), st.integers(1, 500), st.integers(0, 9), st.integers(0, 3600))
def test_a_range_is_window_boundaries_before_a_closed_end(first, count, offset, settle):
    start = W0 - timedelta(days=30) + first * WINDOW
    end = start + count * WINDOW
    now = NOW + timedelta(minutes=offset)
    if end + timedelta(seconds=settle) <= now:
        assert parse_range(t(start), t(end), now, settle) == (start, end)
    else:
        with pytest.raises(UsageError, match=r"--end .* is not closed yet"):
            parse_range(t(start), t(end), now, settle)
    with pytest.raises(UsageError, match="is not after --start"):
        parse_range(t(end), t(start), now + timedelta(days=400), settle)
    with pytest.raises(UsageError, match="not a window boundary"):
        parse_range(t(start + timedelta(minutes=3)), t(end), now, settle)


@given(st.lists(st.sampled_from(CALL_TYPES), min_size=1, unique=True))
def test_types_come_back_in_their_canonical_order(picked):
    assert parse_types(",".join(picked)) == tuple(c for c in CALL_TYPES if c in picked)
    assert parse_types(None) == parse_types("") == CALL_TYPES


@given(st.text(max_size=30).filter(lambda s: s.strip() and s.strip() not in CALL_TYPES and "," not in s))
def test_an_unknown_type_is_refused_with_the_list_of_types(name):
    with pytest.raises(UsageError, match="is not a call type; pass some of identify"):
        parse_types(f"track,{name}")


@given(st.text(max_size=80))
def test_an_id_is_checked_like_a_sequence_id(text):
    try:
        got = parse_id(text)
    except UsageError as exc:
        assert str(exc).startswith("--id: backfill id") and "\n" not in str(exc)
    else:
        assert Sequence("default", got).backfill == text


ranges = st.tuples(st.integers(0, 5000), st.integers(1, 5000),
                   st.lists(st.sampled_from(CALL_TYPES), min_size=1, unique=True))


@given(ranges, ranges)
def test_derived_ids_are_valid_the_same_for_the_same_range_and_different_otherwise(a, b):
    def make(r):
        start = W0 + r[0] * WINDOW
        return start, start + r[1] * WINDOW, parse_types(",".join(r[2]))

    ida, idb = derived_id("backfill", *make(a)), derived_id("backfill", *make(b))
    assert check_backfill(ida) == ida and ida == derived_id("backfill", *make(a))
    assert (ida == idb) == (make(a) == make(b))


@given(st.integers(0, 50), st.integers(1, 50), st.integers(0, 60), st.integers(1, 40))
def test_a_scope_never_plans_a_window_past_its_end(first, count, stands, limit):
    start = W0 + first * WINDOW
    end = start + count * WINDOW
    scope = Scope(start, end, ("track", "page"))
    ends = {"track": start + stands * WINDOW, "page": start}
    plan = scope.plan(ends, NOW, 60, limit)
    assert len(plan) <= limit and plan == sorted(set(plan))
    assert all(w >= start and w + WINDOW <= end for w in plan)
    nxt = scope.next_start("track", ends["track"])
    assert nxt is None if ends["track"] + WINDOW > end else nxt == ends["track"]


def test_a_replay_scope_goes_only_through_its_windows():
    windows = {"track": frozenset({W0, W0 + 3 * WINDOW}), "page": frozenset({W0 + WINDOW})}
    scope = Scope(W0, W0 + 4 * WINDOW, ("track", "page"), windows)
    assert scope.plan({"track": W0, "page": W0}, NOW, 60, 36) == [W0, W0 + WINDOW, W0 + 3 * WINDOW]
    assert scope.next_start("track", W0 + WINDOW) == W0 + 3 * WINDOW
    assert scope.next_start("page", W0 + 2 * WINDOW) is None


def test_the_definition_row_round_trips_and_a_hand_edit_is_refused():
    d = Definition("bf-x", "backfill", W0, W0 + 6 * WINDOW, ("track",), '{"r":1}')
    assert Definition.from_entity(d.to_entity(), "tbl") == d
    assert BACKFILLS_PARTITION == STORE_PARTITION and parse_state_key(BACKFILLS_PARTITION) is None
    for field, value in [("start", "2026-11-28T12:03:00Z"), ("types", "track,bogus"), ("kind", "x"),
                         ("end", "2026-11-28T11:00:00Z")]:
        with pytest.raises(StateConflictError, match=f"row backfills/default~bf-x: {field}"):
            Definition.from_entity({**d.to_entity(), field: value}, "tbl")


def test_a_replays_source_round_trips_and_a_bad_one_is_refused():
    r = Definition("r2", "replay", W0, W0 + WINDOW, ("track",), "{}", "eu", "r1")
    assert Definition.from_entity(r.to_entity(), "tbl") == r
    plain = Definition("r1", "replay", W0, W0 + WINDOW, ("track",), "{}", "eu")
    assert "source" not in plain.to_entity()  # rows of earlier versions read as the live export's
    assert Definition.from_entity(plain.to_entity(), "tbl").source == ""
    assert r.same_as(plain) == "source the live export's dead letters (recorded: the dead letters of r1)"
    backfill = Definition("bf-x", "backfill", W0, W0 + WINDOW, ("track",), "{}")
    for entity in ({**r.to_entity(), "source": "a/b"}, {**r.to_entity(), "source": 3},
                   {**r.to_entity(), "source": "r2"}, {**backfill.to_entity(), "source": "r1"}):
        with pytest.raises(StateConflictError, match="source is not what the exporter writes"):
            Definition.from_entity(entity, "tbl")


def test_a_replays_lineage_runs_to_the_live_export_or_a_backfill_and_is_conservative_on_odd_rows():
    def replay(rid: str, source: str = "") -> Definition:
        return Definition(rid, "replay", W0, W0 + WINDOW, ("track",), "{}", "default", source)

    rows = {d.id: d for d in (replay("r1"), replay("r2", "r1"), replay("r3", "r2"),
                              Definition("bf", "backfill", W0, W0 + WINDOW, ("track",), "{}"), replay("s1", "bf"),
                              replay("loop-a", "loop-b"), replay("loop-b", "loop-a"))}
    assert lineage("", rows) == ((), "")
    assert lineage("r3", rows) == (("r3", "r2", "r1"), "")
    assert lineage("s1", rows) == (("s1", "bf"), "bf")  # a backfill's copy is a family of its own
    assert lineage("gone", rows) == (("gone",), "")  # a deleted row: the live export's family
    assert lineage("loop-a", rows) == (("loop-a", "loop-b"), "")


def test_progress_counts_the_windows_of_each_type():
    d = Definition("bf-x", "backfill", W0, W0 + 6 * WINDOW, ("track", "page"), "{}")
    p = progress(d, {"track": (W0 + 6 * WINDOW, False), "page": (W0 + 2 * WINDOW, True)})
    assert (p.done, p.total, p.through, p.pending, p.finished) == (8, 12, W0 + 2 * WINDOW, True, False)
    assert progress(d, {"track": (d.end, False), "page": (d.end, False)}).finished


# --- against Azurite and the emulator -----------------------------------------------------------


def test_a_backfill_exports_its_range_into_its_folder_and_the_live_sequence_is_untouched(harness):
    calls = _windows(harness, 6, {c: 3 for c in CALL_TYPES}, seed=10)
    harness.env.update(START, MAX_FILE_ROWS="2")
    now = t(W0 + 6 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", now).returncode == 0
    live_before = state_rows(harness)
    blobs_before = harness.blobs()
    store = store_of(harness)
    pin_before = store.get_pin("default")

    proc = harness.cli("backfill", "--start", t(W0 + WINDOW), "--end", t(W0 + 4 * WINDOW),
                       "--types", "track,page", "--now", now)
    assert proc.returncode == 0, proc.stderr
    bid = derived_id("backfill", W0 + WINDOW, W0 + 4 * WINDOW, ("track", "page"))
    assert f"backfill {bid} done: 6 of 6" in proc.stdout
    blobs = harness.blobs()
    mine = folder_blobs(blobs, bid)
    check_container(mine, expected_ids=in_window(calls, W0 + WINDOW, W0 + 4 * WINDOW, ("track", "page")),
                    blob_path=f"{LIVE_PATH}/_backfill/{bid}",
                    manifest_windows=[W0 + i * WINDOW for i in (1, 2, 3)])  # its own chain, its types
    assert {n.rsplit(".", 2)[-2] for n in mine if "/_manifests/" not in n} == {"track", "page"}
    audit = harness.cli("verify", "--backfill", bid)
    assert audit.returncode == 0 and "3 manifest(s)" in audit.stdout and "no problem" in audit.stdout, audit.stdout
    assert f"{LIVE_PATH}/_backfill/{bid}/2184.13699.1.track.csv" in mine  # positions from 1
    # The live sequence: its rows, its pin and its files exactly as before.
    assert state_rows(harness) == live_before
    after_pin = store.get_pin("default")
    assert (after_pin.blob_path, after_pin.container, after_pin.start) == \
        (pin_before.blob_path, pin_before.container, pin_before.start)
    check_container(live_blobs(blobs), expected_ids=ids_of(calls), before=snapshot(blobs_before))
    assert set(backfill_rows(harness, bid)) == {"track", "page"}  # only its types get rows
    assert all(r.window_end == W0 + 4 * WINDOW for r in backfill_rows(harness, bid).values())

    # The same command again: recognised as done, nothing written; the status lists it.
    again = harness.cli("backfill", "--start", t(W0 + WINDOW), "--end", t(W0 + 4 * WINDOW),
                        "--types", "page,track", "--now", now)
    assert again.returncode == 0 and "done: 6 of 6" in again.stdout, again.stderr
    assert snapshot(harness.blobs()) == snapshot(blobs)
    status = harness.cli("status")
    assert status.returncode == 0, status.stderr
    line = next(ln for ln in status.stdout.splitlines() if ln.startswith(bid))
    assert "backfill" in line and "track,page" in line and "6/6" in line and "done" in line
    store.service.close()


def test_the_same_id_with_another_range_or_types_is_refused_and_bad_values_are_usage_errors(harness):
    _windows(harness, 3, {"track": 2}, seed=20)
    harness.env.update(START)
    now = t(W0 + 3 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", now).returncode == 0
    ok = harness.cli("backfill", "--start", t(W0), "--end", t(W0 + WINDOW), "--id", "day1", "--now", now)
    assert ok.returncode == 0, ok.stderr
    before = snapshot(harness.blobs())
    for extra in (["--start", t(W0), "--end", t(W0 + 2 * WINDOW)],
                  ["--start", t(W0), "--end", t(W0 + WINDOW), "--types", "track"]):
        proc = harness.cli("backfill", *extra, "--id", "day1", "--now", now)
        assert proc.returncode == 1
        assert "backfill day1 was started with 2026-11-28T12:00:00Z..2026-11-28T12:10:00Z" in proc.stderr
        assert "give the new one its own --id" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    for args, needle in ((["--start", t(W0), "--end", t(W0 + 4 * WINDOW)], "is not closed yet"),
                         (["--start", "2026-11-28T12:05:00Z", "--end", t(W0 + WINDOW)], "not a window boundary"),
                         (["--start", t(W0), "--end", t(W0 + WINDOW), "--types", "purchase"], "not a call type"),
                         (["--start", t(W0), "--end", t(W0 + WINDOW), "--id", "a/b"], "--id: backfill id")):
        proc = harness.cli("backfill", *args, "--now", now)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert snapshot(harness.blobs()) == before


def test_a_backfill_before_the_first_live_run_is_refused_and_pins_nothing(harness):
    _windows(harness, 1, {"track": 1})
    now = t(W0 + WINDOW + timedelta(seconds=61))
    proc = harness.cli("backfill", "--start", t(W0), "--end", t(W0 + WINDOW), "--now", now)
    assert proc.returncode == 1 and "has no pin in STATE_TABLE" in proc.stderr
    assert "run `python -m shared.cli run` once" in proc.stderr
    store = store_of(harness)
    assert store.get_pin("default") is None and not harness.blobs()
    assert store.rows(BACKFILLS_PARTITION) == []  # nothing recorded either: the same command works later
    store.service.close()


def test_run_export_refuses_a_backfill_sequence_without_its_scope(harness):
    settings = harness.settings()
    clients = build_clients(settings)
    try:
        with pytest.raises(ValueError, match="runs with its scope"):
            run_export(settings, clients, NOW, sequence=Sequence("default", "x"))
    finally:
        close_clients(clients)


def _popen(harness, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")}
    env.update(harness.env)
    env.update(extra_env or {})
    return subprocess.Popen([sys.executable, "-m", "shared.cli", "--no-settings", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _logged_span(stderr: str) -> tuple[datetime, datetime]:
    """The first and last time a CLI process logged (its log lines start with the time)."""
    stamps = []
    for line in stderr.splitlines():
        try:
            stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
        except ValueError:
            continue
    return stamps[0], stamps[-1]


def test_live_export_and_an_overlapping_backfill_at_once_are_both_exactly_once(harness):
    from emulator.faults import Fault

    calls = _windows(harness, 12, {c: 3 for c in CALL_TYPES}, seed=30)
    harness.source.add([("page", "2026-11-28T12:25:00.000Z", b"<bad line>")])
    harness.env.update(START, MAX_FILE_ROWS="2")
    # The live export has done the first 4 windows; then it catches up on the rest while a
    # backfill of windows 2..10 runs beside it (every page slowed, so the two really overlap).
    assert harness.cli("run", "--now", t(W0 + 4 * WINDOW + timedelta(seconds=61))).returncode == 0
    live_done = snapshot(harness.blobs())
    harness.etl.add_fault(Fault("delay", delay=0.05, times=100_000))
    now = t(W0 + 12 * WINDOW + timedelta(seconds=61))
    live = _popen(harness, "run", "--now", now)
    fill = _popen(harness, "backfill", "--start", t(W0 + 2 * WINDOW), "--end", t(W0 + 10 * WINDOW),
                  "--id", "overlap", "--now", now)
    (lout, lerr), (fout, ferr) = live.communicate(timeout=180), fill.communicate(timeout=180)
    assert live.returncode == 0, (lout, lerr)
    assert fill.returncode == 0, (fout, ferr)
    # The two really ran at the same time: their logged spans of time overlap.
    (lfirst, llast), (ffirst, flast) = _logged_span(lerr), _logged_span(ferr)
    assert lfirst < flast and ffirst < llast, (lfirst, llast, ffirst, flast)
    blobs = harness.blobs()
    check_container(live_blobs(blobs), expected_ids=ids_of(calls), expected_rejected=1, before=live_done)
    check_container(folder_blobs(blobs, "overlap"), expected_ids=in_window(calls, W0 + 2 * WINDOW, W0 + 10 * WINDOW),
                    blob_path=f"{LIVE_PATH}/_backfill/overlap", expected_rejected=1)
    rows = state_rows(harness)
    assert all(r.window_end == W0 + 12 * WINDOW and r.pending_start is None for r in rows.values())
    assert {c: r.position for c, r in rows.items()} == {c: 24 for c in CALL_TYPES}  # 12 windows x 2 files
    filled = backfill_rows(harness, "overlap")
    assert {c: r.position for c, r in filled.items()} == {c: 16 for c in CALL_TYPES}


@pytest.mark.parametrize("point", ["after_claim", "after_stage:2", "after_file_commit:3",
                                   "before_state_commit:2", "after_state_commit:4"])
def test_a_backfill_killed_at_a_crash_point_and_run_again_ends_exactly_once(harness, point):
    calls = _windows(harness, 5, {"track": 5, "identify": 2}, seed=40)
    harness.env.update(START, MAX_FILE_ROWS="2")
    now = t(W0 + 5 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", now).returncode == 0
    live_rows, live = state_rows(harness), snapshot(harness.blobs())
    args = ("backfill", "--start", t(W0), "--end", t(W0 + 5 * WINDOW), "--types", "track,identify",
            "--id", "crash", "--now", now)
    crashed = harness.cli(*args, extra_env={"EXPORTER_CRASH_AT": point})
    assert crashed.returncode == 137, (crashed.stdout, crashed.stderr)
    mid = harness.blobs()
    check_container(folder_blobs(mid, "crash"), expected_ids=None, blob_path=f"{LIVE_PATH}/_backfill/crash")
    resumed = harness.cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "backfill crash done: 10 of 10" in resumed.stdout
    blobs = harness.blobs()
    check_container(folder_blobs(blobs, "crash"), expected_ids=ids_of(calls),
                    blob_path=f"{LIVE_PATH}/_backfill/crash", before=snapshot(folder_blobs(mid, "crash")))
    assert state_rows(harness) == live_rows
    assert snapshot(live_blobs(blobs)) == live
    assert all(r.window_end == W0 + 5 * WINDOW and r.pending_start is None
               for r in backfill_rows(harness, "crash").values())


def test_a_backfill_runs_in_process_through_the_same_units_with_its_definition(harness):
    """What a work queue message would carry: the recorded definition, run by run_backfill."""
    from shared.backfill_run import recipe_of, record, run_backfill

    calls = _windows(harness, 3, {"alias": 2}, seed=70)
    harness.env.update(START)
    assert harness.run(W0 + 3 * WINDOW + timedelta(seconds=61)).ok
    settings = harness.settings(MAX_WINDOWS_PER_RUN="2")
    clients = build_clients(settings)
    try:
        seq = Sequence("default", "queued")
        d = record(clients.state, Definition("queued", "backfill", W0, W0 + 3 * WINDOW, ("alias",),
                                             recipe_of(settings, seq)))
        runs = []
        for _ in range(3):  # each run with its own clients, as each queue message would be
            fresh = build_clients(settings)
            try:
                runs.append(run_backfill(settings, fresh, NOW, d))
            finally:
                close_clients(fresh)
        assert all(r.ok for r in runs)
        assert [u.window.start for u in runs[0].units] == [W0, W0 + WINDOW]  # MAX_WINDOWS_PER_RUN holds
        assert [u.window.start for u in runs[1].units] == [W0 + 2 * WINDOW]
        assert not runs[2].units  # done: nothing past its end is ever claimed
        assert store_of(harness).get_row(BACKFILLS_PARTITION, "default~queued")["end"] == t(W0 + 3 * WINDOW)
    finally:
        close_clients(clients)
    check_container(folder_blobs(harness.blobs(), "queued"), expected_ids=ids_of(calls),
                    blob_path=f"{LIVE_PATH}/_backfill/queued")


def test_a_deleted_backfill_run_again_exports_its_range_again_with_its_own_chain(harness):
    """docs/operations.md, "Delete a backfill": its folder, its type rows and its definition row,
    and (it is a row of the sequence too) its manifest cursor. Left in place, that cursor said the
    chain stood at the range's end, so the same command again wrote the files and not one manifest
    (the chain waited for windows past the end, which a backfill never has). A row is not created
    under a chain: the run stops naming the cursor row; deleted too, the range gets its chain."""
    calls = _windows(harness, 4, {"track": 3}, seed=40)
    harness.env.update(START)
    now = t(W0 + 4 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", now).returncode == 0
    command = ("backfill", "--start", t(W0), "--end", t(W0 + 3 * WINDOW), "--types", "track", "--now", now)
    assert harness.cli(*command).returncode == 0
    bid = derived_id("backfill", W0, W0 + 3 * WINDOW, ("track",))
    key = f"2184.13699~default~{bid}"
    with harness.azurite.blob_service() as svc:
        for name in folder_blobs(harness.blobs(), bid):
            svc.get_blob_client(harness.container, name).delete_blob()
    store = store_of(harness)
    try:
        store.table.delete_entity(key, "track")
        store.table.delete_entity(BACKFILLS_PARTITION, f"default~{bid}")
        stopped = harness.cli(*command)
        assert stopped.returncode == 1 and f"manifests/{key}" in stopped.stdout + stopped.stderr
        assert not backfill_rows(harness, bid) and not folder_blobs(harness.blobs(), bid)
        store.table.delete_entity("manifests", key)
    finally:
        store.service.close()
    proc = harness.cli(*command)
    assert proc.returncode == 0 and "done: 3 of 3" in proc.stdout, (proc.stdout, proc.stderr)
    check_container(folder_blobs(harness.blobs(), bid), expected_ids=in_window(calls, W0, W0 + 3 * WINDOW),
                    blob_path=f"{LIVE_PATH}/_backfill/{bid}", manifest_windows=[W0 + i * WINDOW for i in range(3)])
