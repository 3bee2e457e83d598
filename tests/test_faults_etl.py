"""ETL API faults (the emulator misbehaving) and bad calls (lines that are not valid calls).

Transient faults are retried within the run; when the retries are spent the window fails with a
clear error, nothing of it is committed, its state does not move, and the next run exports it
exactly once. Bad calls are quarantined in ``_rejected/`` and the rest of the window exports.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest

from emulator.faults import Fault
from tests.conftest import TOKEN
from tests.support.blobs import rows_of
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:11:01Z"
SMALL_PAGES = {"page_limit": 4}


def _load(harness):
    calls = make_window_calls(W0, per_type={"track": 11, "identify": 3}, seed=4)
    harness.source.add(calls)
    return calls


TRANSIENT = ["status503", "status429", "reset", "truncate", "no_final_newline", "html", "bad_gzip", "delay"]


def _fault(kind: str, times: int, after: int = 1) -> Fault:
    # after=1: the first page of track is fine, a later page breaks (mid-window).
    if kind.startswith("status"):
        return Fault("status", call_type="track", status=int(kind[6:]), times=times, after=after,
                     retry_after=0)
    if kind == "delay":
        return Fault("delay", call_type="track", delay=1.0, times=times, after=after)
    return Fault(kind, call_type="track", times=times, after=after)


@pytest.mark.parametrize("kind", TRANSIENT)
def test_a_transient_etl_fault_is_retried_and_the_window_exports_once(harness, kind):
    calls = _load(harness)
    harness.etl.add_fault(_fault(kind, times=2))  # two failures, the third attempt works
    summary = run_with(harness, NOW, etl_kwargs={**SMALL_PAGES, "read_timeout": 0.3}, **START)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    assert not harness.etl.pending_faults
    check_container(harness.blobs(), expected_ids=ids_of(calls))


@pytest.mark.parametrize("kind", TRANSIENT)
def test_when_retries_are_spent_the_window_fails_clearly_and_the_next_run_exports_it_once(harness, kind):
    calls = _load(harness)
    harness.etl.add_fault(_fault(kind, times=3))  # the three attempts of a page all fail
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs={**SMALL_PAGES, "read_timeout": 0.3}, **START)
    assert summary.error is None
    (failed,) = summary.failures
    assert failed.call_type == "track"
    assert "ETL API /v1/calls kept failing" in failed.error
    assert not [n for n in harness.data_blobs() if ".track." in n]  # nothing of it committed
    rows = state_rows(harness)
    assert rows["track"].position == 0 and rows["track"].window_end == W0
    assert before.get("track", (0, W0)) == (rows["track"].position, rows["track"].window_end)
    assert rows["identify"].position == 1  # other types are not held back
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls))
    assert state_rows(harness)["track"].position == 1


def test_retry_after_is_honoured(harness):
    calls = _load(harness)
    harness.etl.add_fault(Fault("status", call_type="track", status=429, retry_after=1))
    harness.etl.add_fault(Fault("status", call_type="identify", status=503, retry_after=1))
    started = time.monotonic()
    summary = run_with(harness, NOW, **START)
    elapsed = time.monotonic() - started
    assert summary.ok
    assert elapsed >= 2.0, elapsed  # two faults, each Retry-After: 1 (the retry backoff is 10 ms)
    for call_type in ("track", "identify"):
        tries = [r for r in harness.etl.request_log if r["query"].get("type") == call_type]
        assert tries[0]["status"] in (429, 503)
        assert tries[1]["at"] - tries[0]["at"] >= 1.0  # the retry waited Retry-After seconds
    check_container(harness.blobs(), expected_ids=ids_of(calls))


@pytest.mark.parametrize("after", [0, 1, 2])
def test_a_looping_cursor_fails_the_window_without_duplicates_and_the_next_run_exports_it(harness, after):
    calls = _load(harness)
    harness.etl.add_fault(Fault("loop_cursor", call_type="track", after=after))
    summary = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_FILE_ROWS="4", **START)
    (failed,) = summary.failures
    assert "pagination loop" in failed.error
    assert state_rows(harness)["track"].position == 0
    # Files of the window committed before the loop showed are resumed, never duplicated.
    check_container(harness.blobs(), expected_ids=None)
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_FILE_ROWS="4", **START)
    assert again.ok
    check_container(harness.blobs(), expected_ids=ids_of(calls))
    assert state_rows(harness)["track"].position == 3


@pytest.mark.parametrize("status, where", [(401, "/v1/calls"), (403, "/v1/calls"), (401, "/v1/destination")])
def test_a_refused_token_is_a_permanent_error_naming_the_setting_without_the_token(harness, status, where):
    _load(harness)
    harness.etl.add_fault(Fault("status", path=where, status=status, times=10))
    summary = run_with(harness, NOW, **START)
    assert summary.error is not None and "ETL_API_TOKEN" in summary.error
    assert TOKEN not in summary.error
    assert harness.data_blobs() == {}
    assert all(r.position == 0 for r in state_rows(harness).values())


def test_a_wrong_token_fails_at_once_naming_the_setting(harness):
    _load(harness)
    harness.env["ETL_API_TOKEN"] = "wrong-token-value-42"
    summary = run_with(harness, NOW, **START)
    assert "ETL_API_TOKEN" in summary.error and "wrong-token-value-42" not in summary.error
    assert harness.blobs() == {}


# ---------------------------------------------------------------------------------------------
# Bad calls

AT = "2026-11-28T12:04:00.000Z"


def _call(**fields) -> bytes:
    base = {"messageId": "m-" + str(len(fields)), "type": "track", "receivedAt": AT, "event": "E"}
    base.update(fields)
    return json.dumps(base).encode()


BAD_LINES = {
    "not an object": b"[1, 2, 3]",
    "not json": b"{not json",
    "unknown type": _call(messageId="bad-1", type="purchase"),
    "wrong type for the window": _call(messageId="bad-2", type="page"),
    "over the size cap": _call(messageId="bad-3", properties={"x": "y" * 70_000}),
    "nested too deep": b'{"messageId":"bad-4","type":"track","receivedAt":"' + AT.encode()
    + b'","properties":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
    "lone surrogate": b'{"messageId":"bad-5","type":"track","receivedAt":"' + AT.encode()
    + b'","event":"\\ud800x"}',
    "NaN": b'{"messageId":"bad-6","type":"track","receivedAt":"' + AT.encode() + b'","properties":{"v":NaN}}',
    "huge integer": b'{"messageId":"bad-7","type":"track","receivedAt":"' + AT.encode()
    + b'","properties":{"v":' + b"9" * 400 + b"}}",
    "invalid UTF-8": b'{"messageId":"bad-8","type":"track","receivedAt":"' + AT.encode()
    + b'","event":"\xff\xfe"}',
}


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_bad_calls_are_quarantined_with_a_reason_and_counted_and_the_rest_exports(harness, fmt):
    calls = _load(harness)
    harness.source.add([("track", AT, line) for line in BAD_LINES.values()])
    summary = run_with(harness, NOW, EXPORT_FORMAT=fmt, **START)
    assert summary.ok, summary.error
    assert summary.rejected == len(BAD_LINES)
    blobs = harness.blobs()
    dead = blobs["exports/segment/_rejected/2184.13699.20261128T1200Z.track.ndjson"]
    entries = [json.loads(line) for line in dead.data.decode().splitlines()]
    originals = {e["line"].encode("utf-8", "surrogatepass") if "line" in e else
                 base64.b64decode(e["line_base64"]) for e in entries}
    assert originals == set(BAD_LINES.values())  # every bad line kept losslessly
    assert all(e["reason"] for e in entries)
    check_container(blobs, expected_ids=ids_of(calls), expected_rejected=len(BAD_LINES))
    # A rerun of the same instant does nothing; the dead-letter file is not written twice.
    assert run_with(harness, NOW, EXPORT_FORMAT=fmt, **START).units == []


def test_hard_values_round_trip_end_to_end_in_json(harness):
    nasty = "U+2028 \u2028 NEL \u0085 \"quoted\" new\nline NUL \u0000 =formula +1 -1 @x"
    call = make_window_calls(W0, per_type={"track": 1}, seed=9)[0]
    call["properties"] = {"text": nasty, "n": 3.0}
    call["userId"] = nasty
    harness.source.add([call])
    assert run_with(harness, NOW, EXPORT_FORMAT="json", **START).ok
    (name, blob), = harness.data_blobs().items()
    (row,) = rows_of(name, blob.data)
    assert row["userId"] == nasty and row["properties"]["text"] == nasty
    assert b'"n":3.0' in blob.data
