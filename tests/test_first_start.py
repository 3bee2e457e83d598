"""Where a destination's export starts (shared/start.py, shared/pinning.py), what `status` says
about a type standing in the future, and a resumed window that shrank to nothing.

Against Azurite, the ETL API emulator (on the real clock) and, for the shrinking window, a real
HTTP server that answers what the test says (tests/support/hostile_etl.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.data.tables import TableServiceClient, UpdateMode

from shared.calltypes import CALL_TYPES
from shared.windows import WINDOW, floor_window, format_rfc3339, latest_due_end
from tests.support.calls import make_window_calls
from tests.support.hostile_etl import HostileEtl
from tests.support.runs import at, run_with, state_rows
from tests.test_attack_etl import call, paged

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DEST = "2184.13699"


def _table(harness):
    return TableServiceClient.from_connection_string(harness.azurite.connection_string).get_table_client(
        harness.table)


def _pin(harness) -> dict:
    return dict(_table(harness).get_entity("destinations", "default"))


def test_a_new_pin_records_the_start_before_the_rows_and_a_start_over_with_export_start_wins(harness):
    harness.source.add(make_window_calls(W0, minutes=30, per_type={"track": 3, "page": 2}, seed=5))
    assert harness.run("2026-11-28T12:11:01Z").ok
    assert _pin(harness)["start"] == "2026-11-28T12:00:00Z"
    # The screen row (no calls) is deleted, as a type started over, while the clock has moved on:
    # without EXPORT_START it starts at the pin's start again; with it, at EXPORT_START.
    _table(harness).delete_entity(DEST, "screen")
    summary = harness.run("2026-11-28T12:31:01Z")
    assert summary.ok and [u.window.start for u in summary.units if u.call_type == "screen"] == [
        W0, W0 + WINDOW, W0 + 2 * WINDOW]
    _table(harness).delete_entity(DEST, "screen")
    summary = harness.run("2026-11-28T12:31:01Z", EXPORT_START="2026-11-28T12:20:00Z")
    assert summary.ok and [u.window.start for u in summary.units if u.call_type == "screen"] == [W0 + 2 * WINDOW]


def test_a_pin_of_an_earlier_version_has_no_start_and_its_missing_rows_start_at_the_window_due_now(harness):
    harness.source.add(make_window_calls(W0, minutes=30, per_type={"alias": 2}, seed=6))
    assert harness.run("2026-11-28T12:11:01Z").ok
    table = _table(harness)
    table.update_entity({**_pin(harness), "start": ""}, mode=UpdateMode.REPLACE)  # as earlier versions wrote it
    table.delete_entity(DEST, "screen")
    summary = harness.run("2026-11-28T12:31:01Z")
    assert summary.ok, summary.error
    # started at 12:20, the window due then, as before pins recorded a start
    assert [u.window.start for u in summary.units if u.call_type == "screen"] == [W0 + 2 * WINDOW]


def test_a_first_window_that_closes_soon_is_still_the_start(harness):
    """The clock is a little ahead of the ETL API (its window closes within the day): the export
    starts there, and the window is exported once closed."""
    now = datetime.now(UTC) + timedelta(minutes=30)
    summary = harness.run(now)
    start = latest_due_end(now, harness.settings().settle_seconds) - WINDOW
    assert {u.status for u in summary.units} == {"not_closed"} and summary.error is None
    assert {r.window_end for r in state_rows(harness).values()} == {start}
    assert _pin(harness)["start"] == format_rfc3339(start)


def test_a_first_run_with_the_clock_a_year_ahead_records_nothing_and_says_so(harness):
    summary = harness.run("2027-12-01T00:00:00Z")
    (unit,) = summary.units
    assert unit.status == "not_closed" and "clock" in unit.error and "EXPORT_START" in unit.error
    assert state_rows(harness) == {}
    assert not any(e["PartitionKey"] == "destinations" for e in _table(harness).list_entities())


def test_status_warns_when_a_type_stands_in_the_future(harness):
    ahead = floor_window(datetime.now(UTC) + timedelta(days=2))
    assert harness.cli("run", extra_env={"EXPORT_START": format_rfc3339(ahead)}).returncode == 0
    result = harness.cli("status")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stdout.splitlines() if line.startswith("WARNING:")]
    assert len(warning) == 1 and all(t in warning[0] for t in CALL_TYPES) and "negative lag" in warning[0]


def test_status_says_nothing_of_a_negative_lag_when_there_is_none(harness):
    assert harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"EXPORT_START": "2026-11-28T12:00:00Z"}).returncode == 0
    assert "WARNING" not in harness.cli("status").stdout


def test_a_resumed_window_that_now_has_no_calls_is_not_committed_over_its_files(harness):
    """A crash after the window's first file; the ETL API then serves the window empty. The resumed
    claim finds file 1 of that window after position 0: a permanent error, nothing moves."""
    w0 = format_rfc3339(W0)
    served = {w0: [[call(f"c{i}", f"2026-11-28T12:0{i}:00Z") for i in range(3)]]}
    with HostileEtl(paged(served), token=harness.env["ETL_API_TOKEN"]) as srv:
        harness.env.update(EXPORT_START=w0, ETL_API_ENDPOINT=srv.url, MAX_FILE_ROWS="2")
        proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                           extra_env={"EXPORTER_CRASH_AT": "after_file_commit:1"})
        assert proc.returncode == 137, (proc.stdout, proc.stderr)
        before = state_rows(harness)["track"]
        served[w0] = []
        summary = run_with(harness, at("2026-11-28T12:11:01Z"))
    assert summary.error and "fewer calls for the closed window" in summary.error
    assert "2184.13699.1.track.csv" in summary.error
    after = state_rows(harness)["track"]
    assert (after.position, after.window_end, after.pending_start) == (0, W0, before.pending_start)
