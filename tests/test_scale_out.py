"""N destinations x K worker processes (real spawned processes, the `work` runner) draining a backlog
through the real Azurite queue, with duplicate, lost and poison messages and workers killed mid-unit,
ending in the soak test's invariant check per destination: every call exactly once, positions
gapless per destination and type, nothing overwritten (docs/guarantees.md, "Plan, queue, work")."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.calltypes import CALL_TYPES
from shared.planning import plan
from shared.windows import WINDOW
from shared.work_queue import WorkQueue
from shared.work_runner import work
from tests.support.work import FILE_ENV, Fleet, from_file

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOWS = 3
NOW = W0 + WINDOWS * WINDOW + timedelta(seconds=61)
END = W0 + WINDOWS * WINDOW
LEASE = 3


@pytest.fixture
def fleet(azurite, tmp_path, monkeypatch):
    f = Fleet(azurite, tmp_path, ["default", "prod-us", "staging"], W0, windows=WINDOWS, lease=LEASE)
    f.write_file()
    monkeypatch.setenv(FILE_ENV, str(f.file))
    monkeypatch.delenv("EXPORTER_CRASH_AT", raising=False)
    yield f
    f.close()


def _all_done(fleet, names) -> bool:
    return all(
        (rows := fleet.rows(n)) and set(rows) == set(CALL_TYPES)
        and all(r.window_end == END and r.pending_start is None for r in rows.values())
        for n in names)


def test_n_destinations_and_k_workers_drain_a_backlog_through_duplicates_losses_kills_and_poison(
        fleet, monkeypatch):
    app = fleet.app
    queue = WorkQueue.of(app)
    try:
        first = plan(app, NOW, destinations=fleet.planned())
        assert len(first.items) == 3 * len(CALL_TYPES)
        for item in first.items[:4]:
            queue.send(item.to_text())  # duplicates
        for _ in range(3):  # lost messages: taken and deleted, never handled
            queue.delete(queue.receive(LEASE))
        queue.send("not a work item")  # poison

        # Round 1: every worker dies (exit 137, as if SIGKILLed) at its third file commit, mid-unit.
        monkeypatch.setenv("EXPORTER_CRASH_AT", "after_file_commit:3")
        exits = work(app, 3, idle_exit=1.5, destinations=from_file)
        monkeypatch.delenv("EXPORTER_CRASH_AT")
        assert any(e.exitcode == 137 for e in exits), exits
        assert not _all_done(fleet, fleet.dests)

        # Then plan + work until done: killed workers' messages come back within a lease; lost
        # chains are planned again once their markers are two leases old.
        for _ in range(8):
            plan(app, NOW, destinations=fleet.planned())
            exits = work(app, 3, idle_exit=1.5, destinations=from_file)
            assert all(e.exitcode == 0 for e in exits), exits
            if _all_done(fleet, fleet.dests) and queue.depth().messages == 0:
                break
            time.sleep(LEASE)
        for name in fleet.dests:
            fleet.check(name, END)
        depth = queue.depth()
        assert depth.messages == 0 and depth.poison == 1
        assert [m.content for m in queue.poison_messages()] == ["not a work item"]
    finally:
        queue.close()


def test_a_destination_added_while_workers_run_is_picked_up_at_the_next_plan_and_a_disabled_one_is_not(
        fleet, monkeypatch):
    app = fleet.app
    early = W0 + WINDOW + timedelta(seconds=61)  # one window due
    first = plan(app, early, destinations=fleet.planned())
    assert {i.destination for i in first.items} == {"default", "prod-us", "staging"}
    done: list = []
    runner = threading.Thread(target=lambda: done.append(work(app, 2, idle_exit=4, destinations=from_file)))
    runner.start()
    try:
        fleet.add("prod-eu", WINDOWS, seed=9000)
        fleet.enabled = (fleet.enabled | {"prod-eu"}) - {"staging"}
        fleet.write_file()
        second = plan(app, NOW, destinations=fleet.planned())
        assert "prod-eu" in {i.destination for i in second.items}
        assert "staging" not in {i.destination for i in second.items}
    finally:
        runner.join(timeout=120)
    assert done and all(e.exitcode == 0 for e in done[0])
    for _ in range(4):  # chains live at the second plan end at their horizon: the next plans go on
        if _all_done(fleet, ["default", "prod-us", "prod-eu"]):
            break
        plan(app, NOW, destinations=fleet.planned())
        work(app, 2, idle_exit=1.5, destinations=from_file)
    for name in ("default", "prod-us", "prod-eu"):
        fleet.check(name, END)
    staging = fleet.rows("staging")
    assert all(r.window_end <= W0 + WINDOW for r in staging.values())  # nothing after it was disabled
