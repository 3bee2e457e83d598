"""Backfills through the work queue (issue 14 item 3 with issue 13): ``backfill --queue`` records
the definition and enqueues its chains, the plan plans every unfinished one, real ``work``
processes drain them beside the live export; each sequence checked by the soak test's invariant
checker (tests/support/invariants.py), the live one untouched, a backfill's chain never past its
end, a worker killed mid-unit resumed exactly once. Real Azurite queue, table and blob; the
emulator."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import telemetry
from shared.backfill import Scope
from shared.backfill_chains import due_backfill_items
from shared.calltypes import CALL_TYPES
from shared.cli import main
from shared.planning import plan
from shared.sequence import Sequence
from shared.state_store import StateStore, TypeState, make_table_service
from shared.windows import WINDOW, format_rfc3339
from shared.work_item import BadWorkItem, WorkItem
from shared.work_markers import Marker
from shared.work_queue import WorkQueue
from shared.work_runner import work
from shared.worker import handle
from tests.conftest import ROOT
from tests.support.blobs import read_container
from tests.support.invariants import check_container, ids_of
from tests.support.runs import FAST_ETL
from tests.support.work import FILE_ENV, Fleet, from_file

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOWS = 5
NOW = W0 + WINDOWS * WINDOW + timedelta(seconds=61)
END = W0 + WINDOWS * WINDOW
BF_START, BF_END = W0 + WINDOW, W0 + 4 * WINDOW  # windows 12:10, 12:20, 12:30
BF_TYPES = ("track", "page")
LEASE = 3
#: The commit before backfill items existed: its work_item.py is the reader of an earlier worker.
OLD_COMMIT = "969f74d"


# --- the message (pure) ---------------------------------------------------------------------------

def _old_work_item() -> ModuleType | None:
    try:
        source = subprocess.run(["git", "show", f"{OLD_COMMIT}:shared/work_item.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = ModuleType("old_work_item")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, "old_work_item.py", "exec"), module.__dict__)
    sys.modules.pop(module.__name__)
    return module


def test_an_earlier_worker_reads_live_items_and_refuses_a_backfill_item_with_a_permanent_error():
    old = _old_work_item()
    if old is None:
        pytest.skip(f"the repository's history (commit {OLD_COMMIT}) is not here")
    live = WorkItem("default", "track", W0, NOW, "abc123")
    assert old.WorkItem.from_text(live.to_text()) == old.WorkItem("default", "track", W0, NOW, "abc123")
    backfill = WorkItem("default", "track", W0, NOW, "abc123", "bf-1")
    with pytest.raises(old.BadWorkItem) as caught:
        old.WorkItem.from_text(backfill.to_text())
    assert not caught.value.transient and "version 2" in str(caught.value) and "\n" not in str(caught.value)


def test_this_worker_reads_a_message_of_the_first_version():
    text = ('{"v":1,"destination":"prod-us","type":"page","window":"2026-11-28T12:00:00Z",'
            '"horizon":"2026-11-28T12:31:00Z","chain":"c0ffee"}')
    item = WorkItem.from_text(text)
    assert item == WorkItem("prod-us", "page", W0, datetime(2026, 11, 28, 12, 31, tzinfo=UTC), "c0ffee")
    assert item.backfill is None and item.to_text() == text


@given(st.sampled_from(CALL_TYPES), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True),
       st.integers(0, 10_000))
def test_a_backfill_item_round_trips_and_its_marker_key_is_never_a_live_one(call_type, backfill, n):
    item = WorkItem("default", call_type, W0 + n * WINDOW, NOW, "c0ffee", backfill)
    assert WorkItem.from_text(item.to_text()) == item
    assert json.loads(item.to_text())["v"] == 2
    live_keys = {WorkItem("default", t, W0, NOW, "c").key for t in CALL_TYPES}
    assert item.key not in live_keys and item.key == f"default~{backfill}~{call_type}"


@given(st.dictionaries(st.sampled_from(["backfill", "v"]),
                       st.one_of(st.none(), st.integers(-3, 5), st.text(max_size=70), st.booleans())))
def test_a_malformed_backfill_item_is_refused_permanently_in_one_line(extra):
    data = {"v": 2, "destination": "default", "type": "track", "window": "2026-11-28T12:00:00Z",
            "horizon": "2026-11-28T12:31:00Z", "chain": "c0ffee", "backfill": "bf-1", **extra}
    try:
        item = WorkItem.from_text(json.dumps(data))
    except BadWorkItem as exc:
        assert not exc.transient and "\n" not in str(exc)
    else:
        assert (data["v"] == 2 and item.backfill == data["backfill"]) or (data["v"] == 1 and item.backfill is None)


@given(st.integers(0, 20), st.integers(1, 12), st.integers(0, 20), st.integers(0, 30),
       st.sampled_from([None, "stale", "fresh"]))
def test_a_backfill_chain_is_planned_only_inside_its_scope(first, count, stands, late, marker):
    start = W0 + first * WINDOW
    scope = Scope(start, start + count * WINDOW, ("track",))
    row = TypeState("k", "track", 1, start + stands * WINDOW)
    marks = {"track": None if marker is None else Marker("k", "c", "w", "h", 0.0 if marker == "stale" else 100.0)}
    now = scope.end + late * WINDOW + timedelta(seconds=61)
    due = due_backfill_items({"track": row}, scope, marks, now, 60, 101.0, 10)
    inside = row.window_end + WINDOW <= scope.end  # never a window ending after the end
    if marker == "fresh" or not inside:
        assert due == []
    else:
        assert [(d.call_type, d.window_start) for d in due] == [("track", row.window_end)]
        assert (due[0].replacing is not None) == (marker == "stale")


# --- through the queue (Azurite, the emulator, real work processes) -------------------------------

@pytest.fixture
def fleet(azurite, tmp_path, monkeypatch):
    f = Fleet(azurite, tmp_path, ["default"], W0, windows=WINDOWS, lease=LEASE)
    f.write_file()
    monkeypatch.setenv(FILE_ENV, str(f.file))
    monkeypatch.delenv("EXPORTER_CRASH_AT", raising=False)
    for name, value in f.dests["default"].env.items():
        monkeypatch.setenv(name, value)
    yield f
    f.close()


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--no-settings", *argv], out=out)
    return code, out.getvalue()


def enqueue_backfill(bf_id: str) -> str:
    code, out = cli("backfill", "--start", format_rfc3339(BF_START), "--end", format_rfc3339(BF_END),
                    "--types", ",".join(BF_TYPES), "--id", bf_id, "--queue", "--now", format_rfc3339(NOW))
    assert code == 0, out
    return out


def rows(fleet, sequence: Sequence) -> dict[str, TypeState]:
    store = StateStore(make_table_service(fleet.azurite.connection_string), fleet.table)
    key = sequence.state_key("2184", "13699")
    try:
        return {t: r for t in CALL_TYPES if (r := store.get(key, t)) is not None}
    finally:
        store.service.close()


def blobs_of(fleet):
    with fleet.azurite.blob_service() as svc:
        return read_container(svc, fleet.dests["default"].container)


def in_range(calls, start, end, types):
    return {c["messageId"] for c in calls
            if c["type"] in types and start <= datetime.fromisoformat(c["receivedAt"].replace("Z", "+00:00")) < end}


def backfill_done(fleet, bf_id: str) -> bool:
    found = rows(fleet, Sequence("default", bf_id))
    return set(found) == set(BF_TYPES) and all(r.window_end == BF_END and r.pending_start is None
                                               for r in found.values())


def live_done(fleet) -> bool:
    found = fleet.rows("default")
    return set(found) == set(CALL_TYPES) and all(r.window_end == END and r.pending_start is None
                                                 for r in found.values())


def drain_until_done(fleet, bf_id: str, *, live: bool) -> None:
    app = fleet.app
    queue = WorkQueue.of(app)
    try:
        for _ in range(8):
            plan(app, NOW, destinations=fleet.planned())
            exits = work(app, 2, idle_exit=1.5, destinations=from_file)
            assert all(e.exitcode == 0 for e in exits), exits
            if backfill_done(fleet, bf_id) and (live_done(fleet) or not live) and queue.depth().messages == 0:
                return
            time.sleep(LEASE)
        raise AssertionError("the queue did not finish the backfill")
    finally:
        queue.close()


def check_both(fleet, bf_id: str) -> None:
    """Each sequence exactly once and gapless: the live one over every call, the backfill over its
    range and types and no window past its end."""
    calls = fleet.dests["default"].calls
    blobs = blobs_of(fleet)
    folder = f"exports/_backfill/{bf_id}"
    live = {n: b for n, b in blobs.items() if not n.startswith("exports/_backfill/")}
    mine = {n: b for n, b in blobs.items() if n.startswith(folder + "/")}
    assert set(blobs) == set(live) | set(mine)
    check_container(live, expected_ids=ids_of(calls), blob_path="exports", dest_key="2184.13699",
                    expected_rejected=0)
    check_container(mine, expected_ids=in_range(calls, BF_START, BF_END, BF_TYPES), blob_path=folder,
                    dest_key="2184.13699", expected_rejected=0)
    assert {t: (r.window_end, r.pending_start) for t, r in fleet.rows("default").items()} == {
        t: (END, None) for t in CALL_TYPES}
    assert {t: (r.window_end, r.pending_start) for t, r in rows(fleet, Sequence("default", bf_id)).items()} == {
        t: (BF_END, None) for t in BF_TYPES}


def test_a_queued_backfill_and_the_live_export_drain_together_through_two_work_processes(fleet):
    app = fleet.app
    live_items = plan(app, NOW, destinations=fleet.planned()).items  # pins the destination, starts the live chains
    assert {(i.call_type, i.backfill) for i in live_items} == {(t, None) for t in CALL_TYPES}
    out = enqueue_backfill("bfq")
    assert telemetry.current_log_context() == {}  # the command's ids are undone
    for t in BF_TYPES:
        assert f"enqueued default backfill bfq {t} {format_rfc3339(BF_START)}" in out
    assert "2 work item(s) enqueued" in out
    # planned again while its chains are live: nothing more (one live item per (sequence, type))
    assert "0 work item(s) enqueued" in enqueue_backfill("bfq")
    assert [i for i in plan(app, NOW, destinations=fleet.planned()).items] == []
    code, status = cli("status")
    assert "bfq" in status and "0/6" in status
    drain_until_done(fleet, "bfq", live=True)
    check_both(fleet, "bfq")
    code, status = cli("status")
    assert next(line for line in status.splitlines() if line.startswith("bfq")).split()[-2:] == ["6/6", "done"]
    code, audit = cli("verify", "--backfill", "bfq")
    assert code == 0, audit
    # a finished backfill is planned no more; the live export goes on with its next window alone
    later = plan(app, NOW + WINDOW, destinations=fleet.planned())
    assert later.ok and {(i.call_type, i.window_start, i.backfill) for i in later.items} == {
        (t, END, None) for t in CALL_TYPES}


def test_a_backfill_chain_never_passes_its_end(fleet):
    app = fleet.app
    plan(app, NOW, destinations=fleet.planned())
    enqueue_backfill("edge")
    drain_until_done(fleet, "edge", live=True)
    before = blobs_of(fleet)
    queue = WorkQueue.of(app)
    try:
        # a message for the window at its end (or past it), even one made live by hand, runs nothing
        from shared.planning import marker_store

        markers = marker_store(app)
        try:
            for window in (BF_END, BF_END + WINDOW):
                item = WorkItem("default", "track", window, NOW + 10 * WINDOW, "c0ffee", "edge")
                assert markers.start(item, time.time())
                outcome = handle(item.to_text(), app, queue=queue, destinations=fleet.planned(),
                                 clients_kwargs={"etl_kwargs": FAST_ETL})
                assert outcome.status == "done" and outcome.sent is None and outcome.window is None
                assert markers.get(item.key) is None  # the chain ended
        finally:
            markers.store.service.close()
        # an item of a backfill that is not recorded, or of a type it does not export, is dropped
        for item in (WorkItem("default", "track", BF_START, NOW, "c1", "nosuch"),
                     WorkItem("default", "alias", BF_START, NOW, "c2", "edge")):
            markers = marker_store(app)
            try:
                assert markers.start(item, time.time())
            finally:
                markers.store.service.close()
            assert handle(item.to_text(), app, queue=queue, destinations=fleet.planned()).status == "dropped"
        assert queue.depth().messages == 0
    finally:
        queue.close()
    assert blobs_of(fleet) == before
    check_both(fleet, "edge")


def test_a_worker_killed_mid_backfill_unit_is_resumed_exactly_once(fleet, monkeypatch):
    app = fleet.app
    plan(app, NOW, destinations=fleet.planned())
    drain = work(app, 2, idle_exit=1.5, destinations=from_file)  # the live export first: only backfill units left
    assert all(e.exitcode == 0 for e in drain) and live_done(fleet)
    live_before = {n: b for n, b in blobs_of(fleet).items()}
    enqueue_backfill("kill")
    monkeypatch.setenv("EXPORTER_CRASH_AT", "after_file_commit:2")
    exits = work(app, 2, idle_exit=1.5, destinations=from_file)
    monkeypatch.delenv("EXPORTER_CRASH_AT")
    assert any(e.exitcode == 137 for e in exits), exits
    assert not backfill_done(fleet, "kill")
    drain_until_done(fleet, "kill", live=False)
    check_both(fleet, "kill")
    assert {n: b for n, b in blobs_of(fleet).items() if not n.startswith("exports/_backfill/")} == live_before



def test_a_queued_replay_is_worked_through_its_windows_with_dead_letters_only(harness):
    from tests.test_replay import LIVE_PATH, _setup

    _, now = _setup(harness)  # dead letters: track 12:00 and 12:20, page 12:00; the live run done
    live_before = {n: b for n, b in harness.blobs().items() if "/_backfill/" not in n}
    harness.env.update(MAX_CALL_BYTES="200000", EXPORT_QUEUE=f"q{uuid.uuid4().hex[:20]}")
    proc = harness.cli("rejected", "replay", "--id", "rq", "--queue", "--now", now)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "enqueued default backfill rq track 2026-11-28T12:00:00Z" in proc.stdout
    assert "enqueued default backfill rq page 2026-11-28T12:00:00Z" in proc.stdout
    assert "2 work item(s) enqueued" in proc.stdout
    settings = harness.settings()
    queue = WorkQueue.of(settings)
    windows: dict[str, list[str]] = {}
    try:
        for _ in range(20):
            message = queue.receive(30)
            if message is None:
                break
            outcome = handle(message.content, settings, queue=queue, destinations=[("default", Sequence(), settings)],
                             clients_kwargs={"etl_kwargs": FAST_ETL})
            queue.delete(message)
            assert outcome.status in ("exported", "empty"), outcome
            windows.setdefault(outcome.item.call_type, []).append(
                format_rfc3339(outcome.window) + ("" if outcome.status == "exported" else " empty"))
        assert queue.depth().messages == 0
    finally:
        queue.close()
    # the replay's scope: only its windows with dead letters (12:10 skipped, using no position); every
    # type of the replay goes through each of them (page has none at 12:20: empty, so its manifest is written)
    assert windows == {"track": ["2026-11-28T12:00:00Z", "2026-11-28T12:20:00Z"],
                       "page": ["2026-11-28T12:00:00Z", "2026-11-28T12:20:00Z empty"]}
    blobs = harness.blobs()
    mine = {n: b for n, b in blobs.items() if n.startswith(f"{LIVE_PATH}/_backfill/rq/")}
    check_container(mine, expected_ids={"big-1", "big-2", "big-3"}, expected_rejected=1,
                    blob_path=f"{LIVE_PATH}/_backfill/rq")
    assert f"{LIVE_PATH}/_backfill/rq/2184.13699.2.track.csv" in mine
    assert {n: b for n, b in blobs.items() if "/_backfill/" not in n} == live_before
    status = harness.cli("status")
    assert any(ln.startswith("rq") and "replay" in ln and "done" in ln for ln in status.stdout.splitlines())
