"""The core export, end to end: emulator -> exporter -> Azurite, files read back and compared."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from shared.calltypes import CALL_TYPES, COLUMNS
from tests.support.blobs import csv_rows_via_arrow, rows_of
from tests.support.calls import make_window_calls
from tests.support.expected import expected_json_doc, expected_row, normalize_row

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def after(window_start: datetime, windows: int = 1) -> datetime:
    """An instant at which ``windows`` windows from ``window_start`` are closed and settled."""
    return window_start + timedelta(minutes=10 * windows, seconds=61)


def _empty_as_none(row):
    return {k: (None if v == "" else v) for k, v in row.items()}


def by_id(calls):
    return {c["messageId"]: c for c in calls}


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_every_type_round_trips_exactly_in_every_format(harness, fmt):
    calls = make_window_calls(W0, per_type={t: 12 for t in CALL_TYPES})
    harness.source.add(calls)
    summary = harness.run(after(W0), EXPORT_FORMAT=fmt, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok, summary.error
    blobs = harness.data_blobs()
    expected_names = {f"exports/segment/2184.13699.1.{t}.{fmt}" for t in CALL_TYPES}
    assert set(blobs) == expected_names
    sent = by_id(calls)
    for name, blob in blobs.items():
        call_type = name.split(".")[-2]
        rows = rows_of(name, blob.data)
        assert len(rows) == 12
        assert blob.metadata["call_type"] == call_type
        assert blob.metadata["rows"] == "12"
        assert blob.metadata["window_start"] == "2026-11-28T12:00:00Z"
        for row in rows:
            call = sent[row["messageId"]]
            if fmt == "json":
                assert row == expected_json_doc(call)
                assert list(row) == list(expected_json_doc(call))  # field order as sent
            elif fmt == "csv":
                # Python's csv module reads both an empty cell (null) and "" as "": compare so;
                # the pyarrow test below tells them apart.
                assert list(row) == list(COLUMNS[call_type])
                assert normalize_row(row, call_type) == _empty_as_none(expected_row(call))
            else:
                assert list(row) == list(COLUMNS[call_type])
                assert normalize_row(row, call_type) == expected_row(call)


def test_csv_is_rfc4180_and_reads_the_same_with_pyarrow(harness):
    calls = make_window_calls(W0, per_type={"track": 20, "identify": 5})
    harness.source.add(calls)
    assert harness.run(after(W0), EXPORT_START="2026-11-28T12:00:00Z").ok
    blob = harness.data_blobs()["exports/segment/2184.13699.1.track.csv"]
    assert not blob.data.startswith(b"\xef\xbb\xbf")  # no BOM
    assert blob.data.endswith(b"\r\n")
    header = blob.data.split(b"\r\n", 1)[0].decode()
    assert header.replace('"', "").split(",") == list(COLUMNS["track"])
    via_csv = rows_of("x.csv", blob.data)
    via_arrow = csv_rows_via_arrow(blob.data, list(COLUMNS["track"]))
    assert [normalize_row(r, "track") for r in via_csv] == [
        normalize_row(_empty_as_none(r), "track") for r in via_arrow
    ]
    sent = by_id(calls)
    for row in via_arrow:
        assert normalize_row(row, "track") == expected_row(sent[row["messageId"]])


def test_calls_are_written_in_the_order_the_api_returns_them(harness):
    calls = make_window_calls(W0, per_type={"page": 30})
    harness.source.add(calls)
    assert harness.run(after(W0), EXPORT_FORMAT="parquet", EXPORT_START="2026-11-28T12:00:00Z").ok
    blob = harness.data_blobs()["exports/segment/2184.13699.1.page.parquet"]
    ids = pq.read_table(io.BytesIO(blob.data)).column("messageId").to_pylist()
    expected = [c["messageId"] for c in sorted(calls, key=lambda c: (c["receivedAt"], c["messageId"]))]
    assert ids == expected


def test_positions_count_per_type_across_windows_and_skip_empty_types(harness):
    w1, w2, w3 = W0, W0 + timedelta(minutes=10), W0 + timedelta(minutes=20)
    harness.source.add(make_window_calls(w1, per_type={"identify": 2, "track": 3}, seed=1))
    harness.source.add(make_window_calls(w2, per_type={"track": 4}, seed=2))  # no identify
    harness.source.add(make_window_calls(w3, per_type={"identify": 1, "track": 1}, seed=3))
    summary = harness.run(after(w3), EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok
    names = sorted(harness.data_blobs())
    assert names == sorted([
        "exports/segment/2184.13699.1.identify.csv",
        "exports/segment/2184.13699.2.identify.csv",
        "exports/segment/2184.13699.1.track.csv",
        "exports/segment/2184.13699.2.track.csv",
        "exports/segment/2184.13699.3.track.csv",
    ])
    blobs = harness.data_blobs()
    assert blobs["exports/segment/2184.13699.2.identify.csv"].metadata["window_start"] == "2026-11-28T12:20:00Z"
    assert blobs["exports/segment/2184.13699.2.track.csv"].metadata["window_start"] == "2026-11-28T12:10:00Z"


def test_catch_up_exports_missed_windows_in_order_bounded_per_run(harness):
    starts = [W0 + timedelta(minutes=10 * i) for i in range(5)]
    for i, s in enumerate(starts):
        harness.source.add(make_window_calls(s, per_type={"track": 2}, seed=10 + i))
    now = after(starts[-1])
    first = harness.run(now, MAX_WINDOWS_PER_RUN="2", EXPORT_START="2026-11-28T12:00:00Z")
    assert [u.window.start for u in first.units if u.call_type == "track"] == starts[:2]
    second = harness.run(now, MAX_WINDOWS_PER_RUN="2", EXPORT_START="2026-11-28T12:00:00Z")
    assert [u.window.start for u in second.units if u.call_type == "track"] == starts[2:4]
    third = harness.run(now, MAX_WINDOWS_PER_RUN="2", EXPORT_START="2026-11-28T12:00:00Z")
    assert [u.window.start for u in third.units if u.call_type == "track"] == starts[4:]
    blobs = harness.data_blobs()
    for position, s in enumerate(starts, start=1):
        blob = blobs[f"exports/segment/2184.13699.{position}.track.csv"]
        assert blob.metadata["window_start"] == s.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_second_run_at_the_same_instant_writes_nothing_new(harness):
    harness.source.add(make_window_calls(W0))
    assert harness.run(after(W0), EXPORT_START="2026-11-28T12:00:00Z").ok
    before = {n: (b.etag, b.data) for n, b in harness.blobs().items()}
    again = harness.run(after(W0), EXPORT_START="2026-11-28T12:00:00Z")
    assert again.ok and again.units == []
    assert {n: (b.etag, b.data) for n, b in harness.blobs().items()} == before


def test_a_window_that_is_open_or_unsettled_is_not_exported(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 3}))
    still_settling = W0 + timedelta(minutes=10, seconds=59)  # settle delay is 60 s
    summary = harness.run(still_settling, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok and summary.units == []
    assert harness.data_blobs() == {}
    summary = harness.run(W0 + timedelta(minutes=11), EXPORT_START="2026-11-28T12:00:00Z")
    assert [f.name for f in summary.files] == ["exports/segment/2184.13699.1.track.csv"]


def test_a_new_destination_without_export_start_begins_at_the_latest_due_window(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 1}, seed=1))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=2))
    summary = harness.run(after(W0, 2))
    assert [(u.window.start, u.rows) for u in summary.units if u.call_type == "track"] == [
        (W0 + timedelta(minutes=10), 2)
    ]


def test_gzip_option_writes_csv_gz_and_json_gz(harness):
    calls = make_window_calls(W0, per_type={"track": 5})
    harness.source.add(calls)
    assert harness.run(after(W0), EXPORT_FORMAT="json", EXPORT_COMPRESSION="gzip",
                       EXPORT_START="2026-11-28T12:00:00Z").ok
    (name, blob), = harness.data_blobs().items()
    assert name == "exports/segment/2184.13699.1.track.json.gz"
    rows = rows_of(name, blob.data)
    assert sorted(r["messageId"] for r in rows) == sorted(c["messageId"] for c in calls)


def test_size_cap_splits_a_window_into_consecutive_positions_deterministically(harness):
    calls = make_window_calls(W0, per_type={"track": 23, "page": 2})
    harness.source.add(calls)
    summary = harness.run(after(W0), MAX_FILE_ROWS="10", EXPORT_FORMAT="parquet",
                          EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok
    blobs = harness.data_blobs()
    track = [blobs[f"exports/segment/2184.13699.{p}.track.parquet"] for p in (1, 2, 3)]
    assert [len(rows_of("x.parquet", b.data)) for b in track] == [10, 10, 3]
    assert "exports/segment/2184.13699.4.track.parquet" not in blobs
    ids = [r["messageId"] for b in track for r in rows_of("x.parquet", b.data)]
    assert sorted(ids) == sorted(c["messageId"] for c in calls if c["type"] == "track")
    assert len(set(ids)) == len(ids)


def test_rejected_calls_go_to_the_dead_letter_blob_and_the_rest_exports(harness):
    good = make_window_calls(W0, per_type={"track": 3})
    harness.source.add(good)
    at = "2026-11-28T12:05:00.000Z"
    harness.source.add([
        ("track", at, b"this is not json"),
        ("track", at, b'{"type":"track","receivedAt":"' + at.encode() + b'","x":NaN}'),
        ("track", at, b'{"type":"page","receivedAt":"' + at.encode() + b'"}'),
    ])
    summary = harness.run(after(W0), EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok and summary.rejected == 3
    blobs = harness.blobs()
    dead = blobs["exports/segment/_rejected/2184.13699.20261128T1200Z.track.ndjson"]
    entries = [json.loads(line) for line in dead.data.decode().splitlines()]
    assert sorted(e["line"] for e in entries) == sorted([
        "this is not json",
        '{"type":"track","receivedAt":"' + at + '","x":NaN}',
        '{"type":"page","receivedAt":"' + at + '"}',
    ])
    assert all(e["reason"] for e in entries)
    rows = rows_of("x.csv", blobs["exports/segment/2184.13699.1.track.csv"].data)
    assert sorted(r["messageId"] for r in rows) == sorted(c["messageId"] for c in good)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_lines_that_are_not_one_object_each_are_rejected_in_every_format(harness, fmt):
    # An object broken over two lines and two objects on a third line: three bad lines, never
    # three calls (CSV and Parquet read them as m1 with anonymousId a1, m2 and m3).
    at = "2026-11-28T12:05:00.000Z"
    good = [{"type": "track", "messageId": f"ok{i}", "receivedAt": at} for i in range(2)]
    broken = [
        b'{"type":"track","messageId":"m1","userId":"u1"',
        b'"anonymousId":"a1"}',
        b'{"type":"track","messageId":"m2"},{"type":"track","messageId":"m3"}',
    ]
    harness.source.add([good[0], ("track", at, b"\n".join(broken)), good[1]])
    summary = harness.run(after(W0), EXPORT_FORMAT=fmt, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok and summary.rejected == 3
    blobs = harness.blobs()
    dead = blobs["exports/segment/_rejected/2184.13699.20261128T1200Z.track.ndjson"]
    entries = [json.loads(line) for line in dead.data.decode().splitlines()]
    assert [e["line"].encode() for e in entries] == broken
    assert all(e["reason"].startswith("not valid JSON: ") for e in entries)
    name = f"exports/segment/2184.13699.1.track.{fmt}"
    assert set(harness.data_blobs()) == {name}
    assert [r["messageId"] for r in rows_of(name, blobs[name].data)] == ["ok0", "ok1"]
    assert blobs[name].metadata["rows"] == "2"


def _at_the_sdk_limit_with_platform_fields(at: str) -> bytes:
    """A track call as segment-analytics-python 2.4.0 sends it at its limit (32,768 bytes by its
    own measure, json.dumps with spaces; one byte more and it refuses the call), then stamped by
    the platform as the ETL API serves it."""
    message = {
        "integrations": {}, "anonymousId": None, "properties": {"blob": ""},
        "timestamp": "2026-11-28T12:04:59.123+00:00",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
        "userId": "user-1", "type": "track", "event": "Big Event", "messageId": "sdk-limit",
    }
    message["properties"]["blob"] = "x" * (32768 - len(json.dumps(message).encode()))
    assert len(json.dumps(message).encode()) == 32768  # what the SDK measures
    stamped = {
        **message,
        "context": {**message["context"], "ip": "2001:0db8:85a3:0000:0000:8a2e:0370:7334"},
        "originalTimestamp": message["timestamp"], "sentAt": "2026-11-28T12:04:59.500+00:00",
        "receivedAt": at, "channel": "server", "version": 2, "projectId": "p" * 22,
        "writeKey": "w" * 32, "request_id": "00000000-0000-0000-0000-000000000000",
        "_metadata": {"bundled": ["Segment.io", "Mixpanel", "Google Analytics 4"], "unbundled": []},
    }
    return json.dumps(stamped, separators=(",", ":")).encode()


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_call_at_the_sdk_limit_with_the_platforms_fields_is_exported_by_default(harness, fmt):
    at = "2026-11-28T12:05:00.000Z"
    at_limit = _at_the_sdk_limit_with_platform_fields(at)
    assert 32768 < len(at_limit) < 34000  # the old default quarantined it
    too_big = b'{"type":"track","messageId":"too-big","receivedAt":"' + at.encode() + b'","p":"'
    too_big += b"x" * (70000 - len(too_big) - 2) + b'"}'
    harness.source.add([("track", at, at_limit), ("track", at, too_big)])
    summary = harness.run(after(W0), EXPORT_FORMAT=fmt, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok and summary.rejected == 1
    blobs = harness.blobs()
    name = f"exports/segment/2184.13699.1.track.{fmt}"
    [row] = rows_of(name, blobs[name].data)
    assert row["messageId"] == "sdk-limit"
    sent = json.loads(at_limit)
    properties = row["properties"] if fmt == "json" else json.loads(row["properties"])
    assert properties == sent["properties"]
    dead = blobs["exports/segment/_rejected/2184.13699.20261128T1200Z.track.ndjson"]
    [entry] = [json.loads(line) for line in dead.data.decode().splitlines()]
    assert entry == {"reason": "call is 70000 bytes, over the 65536-byte cap", "line": too_big.decode()}


def test_gzip_from_the_etl_api_gives_the_same_files(harness):
    calls = make_window_calls(W0, per_type={"track": 30, "page": 5})
    harness.source.add(calls)
    assert harness.run(after(W0), etl_kwargs={"gzip": True}, EXPORT_START="2026-11-28T12:00:00Z").ok
    assert any("gzip" in (r.get("accept_encoding") or "") for r in harness.etl.request_log)
    rows = rows_of("x.csv", harness.data_blobs()["exports/segment/2184.13699.1.track.csv"].data)
    sent = by_id(calls)
    assert [normalize_row(r, "track") for r in rows] == [
        _empty_as_none(expected_row(sent[r["messageId"]])) for r in rows
    ]
    assert len(rows) == 30


def test_the_etl_client_asks_for_gzip_except_on_loopback():
    from shared.etl_client import EtlClient

    assert EtlClient("https://etl.example.com", "t")._headers["Accept-Encoding"] == "gzip"
    assert EtlClient("http://127.0.0.1:7071", "t")._headers["Accept-Encoding"] == "identity"
