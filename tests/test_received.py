"""A call lands in a window's file only if its ``receivedAt`` is inside that window.

The rule and its column check against a plain-datetime reference (hypothesis), then the whole
export against an ETL API that ignores ``start``/``end`` (a real HTTP server on loopback, Azurite),
in every format: no wrong rows, no call in two windows' files, every other call dead-lettered
with its reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.received import (
    MISSING,
    NOT_RFC3339,
    inside_by_column,
    outside_reason,
    received_reason,
    window_rejections,
)
from shared.windows import Window
from tests.support.blobs import rows_of
from tests.support.hostile_etl import HostileEtl, Reply
from tests.support.instants import ODD, plain_reason, received_values, windows
from tests.support.invariants import check_container
from tests.support.runs import run_with

W = Window.starting(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(("value", "reason"), [
    ("2026-11-28T12:00:00Z", None),  # the start is inside
    ("2026-11-28T12:00:00.000Z", None),
    ("2026-11-28T12:09:59.999999999Z", None),
    ("2026-11-28t12:05:00.5z", None),  # RFC 3339 allows either case
    ("2026-11-28T13:05:00.123+01:00", None),  # 12:05:00.123Z
    ("2026-11-28T07:05:00-05:00", None),
    ("2026-11-28T12:05:00-00:00", None),
    ("2026-11-28T12:10:00Z", outside_reason(W)),  # the end is not
    ("2026-11-28T12:10:00.000Z", outside_reason(W)),
    ("2026-11-28T11:59:59.999999Z", outside_reason(W)),
    ("2026-11-28T12:05:00+01:00", outside_reason(W)),  # 11:05Z
    ("2026-11-29T12:05:00Z", outside_reason(W)),
    ("0001-01-01T00:30:00+01:00", outside_reason(W)),  # before year 1 in UTC: outside, no crash
    (None, MISSING),
    ("2026-11-28 12:05:00Z", NOT_RFC3339),
    ("2026-11-28T12:05:00", NOT_RFC3339),  # no offset: which instant?
    ("2026-11-28T12:05:60Z", NOT_RFC3339),
    ("2026-02-29T12:05:00Z", NOT_RFC3339),
    ("1764331500000", NOT_RFC3339),  # epoch milliseconds (a number's cell is its JSON text)
])
def test_the_rule(value, reason):
    assert received_reason(value, W) == reason
    assert plain_reason(value, W) == reason


def test_the_reasons_say_what_is_wrong_and_name_the_window():
    assert outside_reason(W) == (
        "receivedAt is outside the window 2026-11-28T12:00:00Z/2026-11-28T12:10:00Z "
        "the ETL API served the call for"
    )
    assert "missing" in MISSING and "RFC 3339" in NOT_RFC3339


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_rule_and_the_column_check_are_the_plain_datetime_reference(data):
    window = data.draw(windows(), label="window")
    values = data.draw(st.lists(received_values(window), min_size=1, max_size=12), label="values")
    expected = [plain_reason(v, window) for v in values]
    assert [received_reason(v, window) for v in values] == expected
    assert window_rejections(values, window) == [(i, r) for i, r in enumerate(expected) if r is not None]
    # The column check only ever vouches for values inside the window.
    proved = inside_by_column(pa.array(values, pa.string()), window)
    assert all(expected[i] is None for i in range(len(values)) if proved[i])


@settings(max_examples=200, deadline=None)
@given(window=windows().filter(lambda w: w.end - w.start == timedelta(minutes=10)), data=st.data())
def test_the_common_form_is_proved_by_the_column_check_alone(window, data):
    # The form the platform sends (UTC, Z, any fraction): no Python per value for the export's windows.
    moments = data.draw(st.lists(st.integers(0, 600_000_000 - 1), min_size=1, max_size=20))
    values = []
    for us in moments:
        moment = window.start + timedelta(microseconds=us)
        digits = data.draw(st.sampled_from([0, 1, 3, 6, 9]))
        text = f"{moment:%Y-%m-%dT%H:%M:%S}"
        values.append(text + ("." + f"{moment.microsecond:06d}000"[:digits] if digits else "") + "Z")
    assert inside_by_column(pa.array(values, pa.string()), window).all()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_column_check_reads_sliced_and_large_string_columns_alike(data):
    window = data.draw(windows(), label="window")
    values = data.draw(st.lists(received_values(window), min_size=1, max_size=12), label="values")
    whole = inside_by_column(pa.array(values, pa.string()), window)
    assert (inside_by_column(pa.array(values, pa.large_string()), window) == whole).all()
    start = data.draw(st.integers(0, len(values)), label="slice start")
    assert (inside_by_column(pa.array(values, pa.string()).slice(start), window) == whole[start:]).all()


def test_odd_values_are_judged_one_by_one_and_never_vouched_for():
    window = Window.starting(datetime(2024, 1, 1, 0, 0, tzinfo=UTC))
    proved = inside_by_column(pa.array(ODD, pa.string()), window)
    assert not proved[[i for i, v in enumerate(ODD) if plain_reason(v, window) is not None]].any()


# ---------------------------------------------------------------------------------------------
# End to end: an ETL API that ignores start and end


NOW = "2026-11-28T12:21:01Z"  # two windows due: 12:00 and 12:10
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


def _track(message_id: str, received: object = ..., **more: object) -> bytes:
    call: dict[str, object] = {"messageId": message_id, "type": "track", "event": "Order Completed",
                               "channel": "server", "properties": {"total": 3.5}}
    if received is not ...:
        call["receivedAt"] = received
    return orjson.dumps({**call, **more})


FIRST = {  # inside the 12:00 window
    "a": "2026-11-28T12:00:00.000Z",
    "b": "2026-11-28T12:09:59.999Z",
    "c": "2026-11-28T13:05:00.000+01:00",
}
SECOND = {"d": "2026-11-28T12:10:00.000Z", "e": "2026-11-28T12:19:59Z"}  # inside the 12:10 window
BAD = {  # inside no window: each rejected in both windows, with this reason
    "f": (None, MISSING),  # absent
    "g": ("2026-11-28 12:05:00Z", NOT_RFC3339),
    "h": ("2026-11-28T12:05:00", NOT_RFC3339),
    "i": (1764331500000, NOT_RFC3339),
}
LATE = {"j": "2026-11-28T12:20:00Z"}  # in a window not due yet: rejected in both


def _served_lines() -> list[bytes]:
    lines = [_track(k, v) for k, v in {**FIRST, **SECOND, **LATE}.items()]
    lines += [_track(k) if v is None else _track(k, v) for k, (v, _) in BAD.items()]
    # A key twice: the last one counts (12:15, the second window), as everywhere else.
    lines.append(_track("k", "2026-11-28T12:05:00Z")[:-1] + b',"receivedAt":"2026-11-28T12:15:00Z"}')
    return lines


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_server_that_ignores_start_and_end_gives_no_wrong_rows_and_no_duplicates(harness, fmt):
    served = _served_lines()
    body = b"".join(line + b"\n" for line in served)

    def answer(query: dict[str, str], n: int) -> Reply:
        return Reply(body) if query.get("type") == "track" else Reply()  # every window: the same calls

    with HostileEtl(answer, token=harness.env["ETL_API_TOKEN"]) as srv:
        summary = run_with(harness, NOW, ETL_API_ENDPOINT=srv.url, EXPORT_FORMAT=fmt, **START)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    blobs = harness.blobs()
    # Every call inside a window is in that window's file and in no other (check_container also
    # checks each row's receivedAt against its file's window); the rest are dead letters.
    report = check_container(blobs, expected_ids={*FIRST, *SECOND, "k"}, expected_rejected=16)
    assert summary.rejected == 16
    first = rows_of(f"x.{fmt}", blobs[f"exports/segment/2184.13699.1.track.{fmt}"].data)
    second = rows_of(f"x.{fmt}", blobs[f"exports/segment/2184.13699.2.track.{fmt}"].data)
    assert [r["messageId"] for r in first] == ["a", "b", "c"]
    assert [r["messageId"] for r in second] == ["d", "e", "k"]
    assert first[2]["receivedAt"] == FIRST["c"]  # as sent
    bad = {k: reason for k, (_, reason) in BAD.items()}
    for stamp, start, outside in (("20261128T1200Z", 0, "dejk"), ("20261128T1210Z", 10, "abcj")):
        dead = blobs[f"exports/segment/_rejected/2184.13699.{stamp}.track.ndjson"]
        entries = [json.loads(line) for line in dead.data.decode().splitlines()]
        got = {json.loads(e["line"])["messageId"]: e["reason"] for e in entries}
        window = Window.starting(W.start + timedelta(minutes=start))
        assert got == {**bad, **{k: outside_reason(window) for k in outside}}
        assert [e["line"].encode() for e in entries] == [
            line for line in served if json.loads(line)["messageId"] in got
        ]  # in the order served
    assert len(report.rejected) == 16
