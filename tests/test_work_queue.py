"""Plan, queue, work in one process and through the Functions entry points: the planner's items,
the handler's chain, what a stale, duplicate, ahead or poison message does, lease renewal and a
killed worker's message (real Azurite queue and table, real emulators)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.calltypes import CALL_TYPES
from shared.planning import plan
from shared.windows import WINDOW, format_rfc3339, latest_due_end
from shared.work_item import BadWorkItem, WorkItem
from shared.work_queue import WorkQueue
from shared.worker import handle
from tests.support.runs import FAST_ETL
from tests.support.work import Fleet

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = W0 + 3 * WINDOW + timedelta(seconds=61)  # windows 12:00, 12:10, 12:20 due
END = W0 + 3 * WINDOW


@pytest.fixture
def fleet(azurite, tmp_path):
    f = Fleet(azurite, tmp_path, ["default", "prod-us"], W0, windows=3)
    yield f
    f.close()


@pytest.fixture
def queue(fleet):
    q = WorkQueue.of(fleet.app)
    q.ensure()
    yield q
    q.close()


def drain(fleet, queue, *, destinations=None, limit=200):
    """Handle messages in this process until the queue is empty; the outcomes."""
    outcomes = []
    for _ in range(limit):
        message = queue.receive(30)
        if message is None:
            return outcomes
        outcomes.append(handle(message.content, fleet.app, queue=queue,
                               destinations=destinations if destinations is not None else fleet.planned(),
                               clients_kwargs={"etl_kwargs": FAST_ETL}))
        queue.delete(message)
    raise AssertionError("the queue did not drain")


def test_a_plan_sends_one_item_per_due_destination_and_type_and_the_chains_drain_the_backlog(fleet, queue):
    planned = plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
    assert planned.ok
    assert sorted((i.destination, i.call_type, i.window_start) for i in planned.items) == sorted(
        (d, t, W0) for d in ("default", "prod-us") for t in CALL_TYPES)
    assert planned.depth is not None and planned.depth.messages == 12
    # a second plan while the chains are live sends nothing (at most one live item per (destination, type))
    assert plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue).items == []
    outcomes = drain(fleet, queue)
    assert len(outcomes) == 36  # 2 destinations x 6 types x 3 windows, each once
    for name in fleet.dests:
        fleet.check(name, END)
    # every chain ended at its horizon and released its marker: the next plan plans nothing until due
    assert plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue).items == []
    later = plan(fleet.app, NOW + WINDOW, destinations=fleet.planned(), queue=queue)
    assert {(i.destination, i.window_start) for i in later.items} == {(d, END) for d in fleet.dests}


def test_duplicate_and_stale_messages_are_dropped_and_never_repeat_a_file(fleet, queue):
    planned = plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
    for item in planned.items:
        queue.send(item.to_text())  # every message twice
    outcomes = drain(fleet, queue)
    assert sum(o.status == "dropped" for o in outcomes) == 12  # one of each pair
    # a message of an ended chain, delivered late, is dropped too
    late = handle(planned.items[0].to_text(), fleet.app, queue=queue, destinations=fleet.planned())
    assert late.status == "dropped"
    for name in fleet.dests:
        fleet.check(name, END)


def test_once_planned_a_chain_runs_without_asking_the_etl_api_for_its_destination_again(fleet, queue):
    """The plan checks the pin against GET /v1/destination and its items carry the pinned ids: a
    worker reads the type's row directly (one request less per unit)."""
    from emulator.faults import Fault

    planned = plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
    assert all(i.ids == ("2184", "13699") for i in planned.items)
    for dest in fleet.dests.values():
        dest.etl.add_fault(Fault("status", path="/v1/destination", status=503, times=10**6))
    outcomes = drain(fleet, queue)
    assert {o.status for o in outcomes} <= {"exported", "empty"}, outcomes
    for name in fleet.dests:
        fleet.check(name, END)


def test_an_item_whose_marker_was_touched_since_it_was_sent_still_runs(fleet, queue):
    """The ETag a message carries only saves the marker's read: when it is stale (a heartbeat or a
    duplicate wrote the marker since), the marker is read and decides."""
    from shared.planning import marker_store

    markers = marker_store(fleet.app)
    only = [d for d in fleet.planned() if d[0] == "default"]
    plan(fleet.app, NOW, destinations=only, queue=queue)
    message = queue.receive(30)
    item = WorkItem.from_text(message.content)
    assert item.marker
    assert markers.touch(item, time.time()) is not None  # the ETag the message carries is stale now
    first = handle(message.content, fleet.app, queue=queue, destinations=only, clients_kwargs={"etl_kwargs": FAST_ETL})
    queue.delete(message)
    assert first.status in ("exported", "empty") and first.window == W0
    drain(fleet, queue, destinations=only)
    fleet.check("default", END)
    markers.store.service.close()


def test_an_item_behind_or_ahead_of_the_state_row_goes_on_from_the_row_and_skips_nothing(fleet, queue):
    from shared.planning import marker_store
    from shared.work_markers import MarkerStore

    markers: MarkerStore = marker_store(fleet.app)
    ahead = WorkItem("default", "track", W0 + 2 * WINDOW, NOW, "ahead1")  # the row is not started: W0
    fleet_rows = fleet.rows("default")
    assert fleet_rows == {}
    assert markers.start(ahead, time.time())
    first = handle(ahead.to_text(), fleet.app, queue=queue, destinations=fleet.planned())
    assert first.window == W0  # the row's window, not the item's
    drain(fleet, queue)
    assert fleet.rows("default")["track"].window_end == END
    markers.store.service.close()


def test_a_destination_no_longer_planned_gets_no_unit_from_its_queued_item(fleet, queue):
    plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
    only_default = [d for d in fleet.planned() if d[0] == "default"]
    outcomes = drain(fleet, queue, destinations=only_default)
    assert {o.status for o in outcomes if o.item.destination == "prod-us"} == {"dropped"}
    assert fleet.blob_names("prod-us") == set()
    fleet.check("default", END)


def test_an_unreadable_message_raises_a_permanent_error_for_the_poison_queue(fleet, queue):
    with pytest.raises(BadWorkItem) as bad:
        handle("not a work item", fleet.app, queue=queue, destinations=fleet.planned())
    assert not bad.value.transient


def test_the_lease_is_renewed_while_a_long_unit_runs_and_a_dead_workers_message_comes_back(fleet, queue):
    from emulator.faults import Fault

    dest = fleet.dests["default"]
    only = [dest.planned]
    plan(fleet.app, W0 + WINDOW + timedelta(seconds=61), destinations=only, queue=queue)
    # the track unit's ETL page takes 2.5 leases (lease 3 s: renewed every second)
    dest.etl.add_fault(Fault("delay", call_type="track", delay=7.5))
    lease = fleet.app.work_lease_seconds
    taken = []
    for _ in range(6):
        message = queue.receive(lease)
        if WorkItem.from_text(message.content).call_type == "track":
            break
        taken.append(message)  # other types: held (invisible) while we work on track
    import threading

    box = [message]
    seen_again = []
    done = threading.Event()

    def watch():  # another "instance" polling while the unit runs
        while not done.is_set():
            got = queue.receive(1)
            if got is not None and WorkItem.from_text(got.content).call_type == "track":
                seen_again.append(got)
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()

    def renew():
        box[0] = queue.renew(box[0], lease)

    try:
        outcome = handle(message.content, fleet.app, queue=queue, destinations=only, renew=renew)
    finally:
        done.set()
        watcher.join()
    queue.delete(box[0])
    assert outcome.status == "exported"
    assert seen_again == [], "the message was delivered again while its unit ran"

    # a worker that dies with a message in hand: the message comes back once its lease lapsed
    dead = queue.receive(lease)
    assert dead is not None
    deadline = time.monotonic() + 4 * lease
    back = None
    while back is None and time.monotonic() < deadline:
        time.sleep(0.2)
        got = queue.receive(lease)  # others (their leases lapsed too) are passed over
        back = got if got is not None and got.id == dead.id else None
    assert back is not None and back.dequeue_count == dead.dequeue_count + 1


def test_in_queue_mode_the_timer_plans_and_the_queue_trigger_runs_the_units(fleet, queue, monkeypatch):
    import azure.functions as func
    from azure.functions.timer import TimerRequest

    from tests.test_function_app import _functions

    functions = {f.get_function_name(): f.get_user_function() for f in _functions()}
    dest = fleet.dests["default"]
    due_now = datetime.now(UTC).replace(second=0, microsecond=0)
    for name, value in {**dest.env, "EXPORT_START": format_rfc3339(latest_due_end(due_now, 60) - WINDOW)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    functions["export_calls"](TimerRequest(past_due=False))
    assert fleet.blob_names("default") == set()  # the tick only planned
    assert queue.depth().messages == len(CALL_TYPES)
    for _ in range(20):
        message = queue.receive(30)
        if message is None:
            break
        functions["export_unit"](func.QueueMessage(body=message.content.encode()))
        queue.delete(message)
    rows = fleet.rows("default")
    assert {r.window_end for r in rows.values()} == {latest_due_end(due_now, 60)}
    assert all(r.pending_start is None for r in rows.values())
    # an unreadable message fails the invocation (the host retries it, then poisons it)
    with pytest.raises(BadWorkItem):
        functions["export_unit"](func.QueueMessage(body=b"garbage"))


def test_the_plan_and_work_commands_export_what_run_would_and_work_exits_once_the_queue_is_idle(harness):
    from tests.support.calls import make_window_calls
    from tests.support.invariants import check_container, ids_of

    calls = make_window_calls(W0, per_type={"track": 4, "alias": 1}, seed=3)
    calls += make_window_calls(W0 + WINDOW, per_type={"track": 2}, seed=4)
    harness.source.add(calls)
    harness.env.update({"EXPORT_START": "2026-11-28T12:00:00Z", "EXPORT_QUEUE": "q" + harness.table[1:],
                        "WORK_LEASE_SECONDS": "3"})
    planned = harness.cli("plan", "--now", "2026-11-28T12:21:01Z")
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert sum(ln.startswith("enqueued default ") for ln in lines) == len(CALL_TYPES)
    assert "enqueued default track 2026-11-28T12:00:00Z (horizon 2026-11-28T12:21:01Z)" in lines
    # A second plan before any work enqueues nothing and says why: every type has a live item.
    again = harness.cli("plan", "--now", "2026-11-28T12:21:01Z")
    assert again.returncode == 0, again.stderr
    (held,) = [ln for ln in again.stdout.splitlines() if ln.startswith("held ")]
    assert held.startswith(f"held default: {', '.join(CALL_TYPES)} due, each with a live work item"), held
    assert "0 work item(s) enqueued" in again.stdout
    worked = harness.cli("work", "--processes", "2", "--idle-exit", "1")
    assert worked.returncode == 0, worked.stderr
    assert "2 of 2 worker(s) finished" in worked.stdout
    # a summary per destination, and each unit's log line names its destination
    assert f"default: {2 * len(CALL_TYPES)} unit(s) committed, 3 file(s), 7 call(s)" in worked.stdout.splitlines()
    assert re.search(r" work-\d default shared\.unit: track 2026-11-28T12:00:00Z/\S+: 4 call\(s\)", worked.stderr), \
        worked.stderr
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=0)
    status = harness.cli("status", extra_env={"EXPORT_MODE": "queue"})
    assert status.returncode == 0, status.stderr
    assert f"queue {harness.env['EXPORT_QUEUE']}: 0 message(s), oldest visible 0s; poison 0" in status.stdout


@pytest.mark.parametrize("args", [["work", "--processes", "0"], ["work", "--processes", "two"],
                                  ["plan", "--now", "soon"]])
def test_bad_work_and_plan_arguments_are_usage_errors(harness, args):
    proc = harness.cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(("usage:", "error:", "python -m shared.cli"))


def test_host_json_queue_settings_are_the_ones_work_emulates():
    import json
    from pathlib import Path

    from shared.work_queue import MAX_DEQUEUE_COUNT
    from shared.work_runner import RETRY_DELAY_SECONDS

    host = json.loads((Path(__file__).resolve().parent.parent / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == MAX_DEQUEUE_COUNT
    assert queues["messageEncoding"] == "base64"  # what WorkQueue sends
    h, m, s = (int(x) for x in queues["visibilityTimeout"].split(":"))
    assert h * 3600 + m * 60 + s == RETRY_DELAY_SECONDS


def test_a_transient_unit_failure_completes_its_item_moves_nothing_and_the_next_plan_plans_it_again(fleet, queue):
    from emulator.faults import Fault

    dest = fleet.dests["default"]
    only = [dest.planned]
    plan(fleet.app, W0 + WINDOW + timedelta(seconds=61), destinations=only, queue=queue)
    dest.etl.add_fault(Fault("status", call_type="track", status=503, times=1000))
    outcomes = drain(fleet, queue, destinations=only)
    (track,) = [o for o in outcomes if o.item.call_type == "track"]
    assert track.status == "failed" and track.sent is None
    assert fleet.rows("default")["track"].window_end == W0  # nothing advanced past what did not land
    assert queue.depth().messages == 0  # completed, not retried by the host, never poisoned
    dest.etl.clear_faults()
    again = plan(fleet.app, W0 + WINDOW + timedelta(seconds=61), destinations=only, queue=queue)
    assert [(i.call_type, i.window_start) for i in again.items] == [("track", W0)]
    drain(fleet, queue, destinations=only)
    assert fleet.rows("default")["track"].window_end == W0 + WINDOW


def test_a_refused_token_poisons_the_item_after_the_host_retries_and_no_output_holds_the_token(harness):
    from tests.support.leaks import assert_no_leak

    harness.source.add([])
    harness.env.update({"EXPORT_START": "2026-11-28T12:00:00Z", "EXPORT_QUEUE": "q" + harness.table[1:],
                        "WORK_LEASE_SECONDS": "3"})
    planned = harness.cli("plan", "--now", "2026-11-28T12:11:01Z")
    assert planned.returncode == 0, planned.stderr
    wrong = "a-wrong-token-0123456789abcdef"
    worked = harness.cli("work", "--processes", "2", "--idle-exit", "1", extra_env={"ETL_API_TOKEN": wrong})
    # Items that went to the poison queue fail the command, and every line says whose they were.
    assert worked.returncode == 1, (worked.stdout, worked.stderr)
    assert "moved to" in worked.stderr and "ETL_API_TOKEN" in worked.stderr
    moved = [line for line in worked.stderr.splitlines() if "moved to" in line]
    assert len(moved) == len(CALL_TYPES) and all("(default " in line for line in moved), moved
    assert {line.split("(default ", 1)[1].split()[0] for line in moved} == set(CALL_TYPES)
    assert (f"default: 0 unit(s) committed, 0 file(s), 0 call(s); {len(CALL_TYPES)} work item(s) failed 5 times "
            "and went to") in worked.stdout, worked.stdout
    assert_no_leak([worked.stdout, worked.stderr], [wrong])
    status = harness.cli("status", extra_env={"EXPORT_MODE": "queue"})
    assert f"poison {len(CALL_TYPES)} - WARNING" in status.stdout
    assert harness.blobs() == {}
    # the plan itself refuses the wrong token in one line, naming the setting, not the value
    refused = harness.cli("plan", "--now", "2026-11-28T12:11:01Z", extra_env={"ETL_API_TOKEN": wrong})
    assert refused.returncode == 1 and "ETL_API_TOKEN" in refused.stderr
    assert_no_leak([refused.stdout, refused.stderr], [wrong])


def test_a_plan_and_a_work_item_leave_no_log_context_behind(fleet, queue):
    from shared import telemetry

    plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
    assert telemetry.current_log_context() == {}
    message = queue.receive(30)
    handle(message.content, fleet.app, queue=queue, destinations=fleet.planned())
    assert telemetry.current_log_context() == {}
