"""The destination's ids are pinned on first use (issue 9, item 5).

State rows are keyed by the ids the first run was given, recorded in a pin row; an ETL API that
later names another destination is refused with one permanent line, before anything is read or
written. Deployments from before the pin are adopted without exporting anything again. The ids
themselves must be 1-64 ASCII letters, digits, '-' or '_'.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calltypes import CALL_TYPES
from shared.errors import EtlApiError
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PINS = "destinations"  # the pin rows' PartitionKey (shared.state_store.PINS_PARTITION)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


def _load(harness, windows: int = 3) -> list[dict]:
    calls = []
    for i in range(windows):
        calls += make_window_calls(W0 + timedelta(minutes=10 * i), per_type={"track": 3, "alias": 1}, seed=i)
    harness.source.add(calls)
    return calls


def _table(harness):
    return TableServiceClient.from_connection_string(harness.azurite.connection_string).get_table_client(
        harness.table)


def _write_rows_as_before_the_pin(harness, key: str, position: int, window_end: datetime) -> None:
    """The rows an earlier version left: keyed by the ids, Int32 positions, no pin row."""
    table = _table(harness)
    table.create_table()
    for t in CALL_TYPES:
        table.create_entity({
            "PartitionKey": key, "RowKey": t, "position": position,
            "window_end": window_end.strftime("%Y-%m-%dT%H:%M:%SZ"), "pending_start": "",
            "pending_position": -1, "pending_run": "", "pending_recipe": "", "last_run": "old",
        })


def _names(harness) -> list[str]:
    return sorted(harness.blobs())


@pytest.mark.parametrize("start", [START, {}], ids=["with EXPORT_START", "without EXPORT_START"])
def test_a_destination_id_that_changes_is_refused_with_one_permanent_line_and_nothing_moves(harness, start):
    calls = _load(harness)
    first = run_with(harness, "2026-11-28T12:11:01Z", **START)
    assert first.ok and next(f.name for f in first.files).startswith("exports/segment/2184.13699.1.")
    before_rows, before_blobs = state_rows(harness), _names(harness)

    harness.etl.integration_id = "9999"
    refused = run_with(harness, "2026-11-28T12:31:01Z", **start)
    assert refused.error is not None and not refused.units
    assert "\n" not in refused.error
    assert "now returns 9999.13699" in refused.error and "pinned to 2184.13699" in refused.error
    assert "new STATE_TABLE" in refused.error  # what to do
    assert _names(harness) == before_blobs  # nothing under 9999 (a duplicate of 12:00) or 2184
    assert state_rows(harness) == before_rows
    assert state_rows(harness, "9999.13699") == {}

    # The ETL API is fixed: the export goes on where it stood, nothing lost, nothing twice.
    harness.etl.integration_id = "2184"
    assert run_with(harness, "2026-11-28T12:31:01Z", **start).ok
    check_container(harness.blobs(), expected_ids=ids_of(calls))
    assert committed(state_rows(harness))["track"] == (3, W0 + timedelta(minutes=30))


def test_the_cli_reports_a_changed_destination_as_one_error_line_and_exit_1(harness):
    _load(harness, 1)
    harness.env.update(START)
    assert harness.cli("run", "--now", "2026-11-28T12:11:01Z").returncode == 0
    harness.etl.action_id = "1"
    proc = harness.cli("run", "--now", "2026-11-28T12:21:01Z")
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "pinned to 2184.13699" in errors[0], proc.stderr
    status = harness.cli("status")
    assert "pinned to 2184.13699" in status.stdout and "destination 2184.13699" in status.stdout


def test_a_deployment_from_before_the_pin_is_adopted_and_nothing_is_exported_again(harness):
    calls = _load(harness)
    _write_rows_as_before_the_pin(harness, "2184.13699", position=4, window_end=W0 + timedelta(minutes=20))
    summary = run_with(harness, "2026-11-28T12:31:01Z", **START)  # EXPORT_START is not read again
    assert summary.ok, summary.error
    assert {u.window.start for u in summary.units} == {W0 + timedelta(minutes=20)}
    names = sorted(n.rsplit("/", 1)[1] for n in harness.data_blobs())
    assert names == ["2184.13699.5.alias.csv", "2184.13699.5.track.csv"]
    last = {c["messageId"] for c in calls if c["receivedAt"] >= "2026-11-28T12:20"}
    assert {r["messageId"] for b in harness.data_blobs().values() for r in _rows(b)} == last
    pin = _table(harness).get_entity(PINS, "default")
    assert (pin["integration_id"], pin["action_id"]) == ("2184", "13699")
    assert committed(state_rows(harness))["track"] == (5, W0 + timedelta(minutes=30))


def test_at_the_upgrade_an_id_that_changed_meanwhile_is_refused_not_adopted(harness):
    _load(harness)
    _write_rows_as_before_the_pin(harness, "2184.13699", position=4, window_end=W0 + timedelta(minutes=20))
    harness.etl.integration_id = "9999"
    summary = run_with(harness, "2026-11-28T12:31:01Z", **START)
    assert summary.error is not None and "\n" not in summary.error
    assert "holds the positions of 2184.13699" in summary.error and "returns 9999.13699" in summary.error
    assert harness.blobs() == {}
    assert state_rows(harness, "9999.13699") == {}
    with pytest.raises(Exception, match=r"ResourceNotFound|does not exist|not found"):
        _table(harness).get_entity(PINS, "default")


@pytest.mark.parametrize("bad", ["٢١٨٤", "x" * 65, "x" * 600, "21.84", "a b", "", "2184\n"])
def test_an_id_that_is_not_short_ascii_stops_the_run_before_any_state_or_file(harness, bad):
    _load(harness, 1)
    harness.etl.integration_id = bad
    summary = run_with(harness, "2026-11-28T12:11:01Z", **START)
    assert summary.error is not None and "cannot be used in file names" in summary.error
    assert "\n" not in summary.error and len(summary.error) < 400
    assert harness.blobs() == {}
    rows = list(_table(harness).list_entities()) if _table_exists(harness) else []
    assert rows == []


def _table_exists(harness) -> bool:
    return any(t.name == harness.table for t in TableServiceClient.from_connection_string(
        harness.azurite.connection_string).list_tables())


def _rows(blob):
    from tests.support.blobs import rows_of

    return rows_of(blob.name, blob.data)


VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(alphabet="abcXYZ019_-", max_size=70),
                 st.integers(min_value=-(10**70), max_value=10**70)))
def test_destination_ids_are_exactly_1_to_64_ascii_letters_digits_dash_underscore(value):
    from shared.etl_client import destination_id

    text = str(value)
    if VALID.fullmatch(text) and text.isascii():
        assert destination_id(value) == text
    else:
        with pytest.raises(EtlApiError, match="1-64 ASCII"):
            destination_id(value)


@pytest.mark.parametrize("value", [True, None, 21.84, ["2184"], {"id": 1}])
def test_a_destination_id_that_is_not_a_string_or_a_whole_number_is_refused(value):
    from shared.etl_client import destination_id

    with pytest.raises(EtlApiError):
        destination_id(value)
