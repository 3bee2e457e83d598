"""Attacks on the ETL API boundary and on the data (an attacker's fresh eyes, after issue 9).

Each test runs the whole export (in-process, or the CLI for crashes) against Azurite and a real
HTTP server on loopback (tests/support/hostile_etl.py) that says exactly what the test wants.
Tests marked ``xfail(strict=True)`` are findings: they fail on today's code and must pass once
the cause is fixed (then the mark goes). The others pin behaviour that was tried and holds.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.support.blobs import rows_of
from tests.support.hostile_etl import HostileEtl, Reply
from tests.support.invariants import check_container
from tests.support.raw_etl import DESTINATION_REPLY, RawServer
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:11:01Z"  # one window (12:00-12:10) due
NOW2 = "2026-11-28T12:21:01Z"  # two windows due
AT = "2026-11-28T12:04:00.000Z"
FORMATS = ["csv", "json", "parquet"]


def call(mid: str, received: str | None = AT, call_type: str = "track", **fields: Any) -> bytes:
    body: dict[str, Any] = {"messageId": mid, "type": call_type}
    if received is not None:
        body["receivedAt"] = received
    if call_type == "track":
        body.setdefault("event", "Order Completed")
    body.update(fields)
    return orjson.dumps(body)


def paged(pages_by_window: dict[str, list[list[bytes]]], *, gzip_on: bool = False,
          call_type: str = "track") -> Callable[[dict[str, str], int], Reply]:
    """An answer serving, for each window start (RFC 3339, as the client sends it), its pages of
    ``call_type`` with cursors ``c1``, ``c2``, ...; every other query is an empty page."""

    def answer(query: dict[str, str], n: int) -> Reply:
        pages = pages_by_window.get(query.get("start", ""), [])
        if query.get("type") != call_type or not pages:
            return Reply()
        i = int(query["cursor"][1:]) if "cursor" in query else 0
        body = b"".join(line + b"\n" for line in pages[i])
        headers = [("X-Next-Cursor", f"c{i + 1}")] if i + 1 < len(pages) else []
        if gzip_on:
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return Reply(body, headers=headers)

    return answer


def export_with(harness, answer, now: str = NOW, **overrides: str):
    with HostileEtl(answer, token=harness.env["ETL_API_TOKEN"]) as srv:
        harness.env["ETL_API_ENDPOINT"] = srv.url
        return run_with(harness, now, **START, **overrides)


def track_rows(harness) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, blob in sorted(harness.data_blobs().items()):
        if ".track." in name:
            out += rows_of(name, blob.data)
    return out


def rejected_entries(harness) -> list[dict[str, Any]]:
    out = []
    for name, blob in harness.blobs().items():
        if "/_rejected/" in name:
            out += [json.loads(line) for line in blob.data.decode().splitlines()]
    return out


def _ok(summary) -> None:
    assert summary.ok, (summary.error, [u.error for u in summary.failures])


W0S = "2026-11-28T12:00:00Z"
W1S = "2026-11-28T12:10:00Z"


# ---------------------------------------------------------------------------------------------
# receivedAt: the window is chosen by it, yet nothing checks it


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_received_outside_the_window_is_dead_lettered_not_exported_into_it(harness, fmt):
    inside = {
        "in": AT,
        "at_start": "2026-11-28T12:00:00Z",  # windows are [start, end)
        "offset_inside": "2026-11-28T14:05:00.5+02:00",  # 12:05:00.5Z: compared as instants
    }
    outside = {
        "at_end": "2026-11-28T12:10:00.000Z",
        "just_before": "2026-11-28T11:59:59.999Z",
        "last_year": "2025-11-28T12:04:00Z",
        "offset_outside": "2026-11-28T12:05:00-02:00",  # 14:05Z, though its text looks inside
    }
    lines = [call(mid, at) for mid, at in {**inside, **outside}.items()]
    summary = export_with(harness, paged({W0S: [lines[:4], lines[4:]]}), EXPORT_FORMAT=fmt)
    _ok(summary)
    assert {r["messageId"] for r in track_rows(harness)} == set(inside)
    entries = rejected_entries(harness)
    assert sorted(json.loads(e["line"])["messageId"] for e in entries) == sorted(outside)
    assert all("receivedAt" in e["reason"] for e in entries), entries
    check_container(harness.blobs(), expected_ids=set(inside), expected_rejected=len(outside))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_served_in_two_windows_lands_in_exactly_one_file(harness, fmt):
    edge = call("edge", "2026-11-28T12:10:00.000Z")  # belongs to the 12:10 window only
    pages = {W0S: [[call("a", AT), edge]], W1S: [[edge, call("b", "2026-11-28T12:14:00Z")]]}
    summary = export_with(harness, paged(pages), now=NOW2, EXPORT_FORMAT=fmt)
    _ok(summary)
    rows = track_rows(harness)
    assert sorted(r["messageId"] for r in rows) == ["a", "b", "edge"]
    check_container(harness.blobs(), expected_ids={"a", "b", "edge"}, expected_rejected=1)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("received", [None, "yesterday", 1795867440000, "2026-11-28T12:04:00", ""])
def test_a_call_without_a_readable_received_at_is_dead_lettered(harness, fmt, received):
    line = orjson.dumps({"messageId": "odd", "type": "track", "event": "E",
                         **({} if received is None else {"receivedAt": received})})
    summary = export_with(harness, paged({W0S: [[call("ok"), line]]}), EXPORT_FORMAT=fmt)
    _ok(summary)
    assert [r["messageId"] for r in track_rows(harness)] == ["ok"]
    (entry,) = rejected_entries(harness)
    assert "receivedAt" in entry["reason"]


# ---------------------------------------------------------------------------------------------
# Repeats across pages


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_pages_with_the_same_bytes_but_new_cursors_are_not_a_loop(harness, fmt):
    # A server paging by bytes (here one call a page) and a call that the platform stored twice
    # (Segment delivers at least once): page 2 has page 1's bytes, under a fresh cursor. (Once
    # this was taken for a pagination loop: the window failed on every run, the type stuck.)
    twice = call("twice")
    pages = {W0S: [[twice], [twice], [call("after", "2026-11-28T12:05:00Z")]]}
    for _ in range(2):  # the next run has nothing left to do
        summary = export_with(harness, paged(pages), EXPORT_FORMAT=fmt)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    assert committed(state_rows(harness))["track"][1] == W0 + timedelta(minutes=10)
    assert sorted(r["messageId"] for r in track_rows(harness)) == ["after", "twice"]
    (entry,) = rejected_entries(harness)
    assert entry["reason"] == "repeats the previous call (same receivedAt and messageId)"
    assert entry["line"] == twice.decode()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_call_repeated_on_the_next_page_is_written_once(harness, fmt):
    a, b, c = call("a", "2026-11-28T12:01:00Z"), call("b", "2026-11-28T12:02:00Z"), call("c", "2026-11-28T12:03:00Z")
    summary = export_with(harness, paged({W0S: [[a, b], [b, b, c]]}), EXPORT_FORMAT=fmt)
    _ok(summary)
    assert sorted(r["messageId"] for r in track_rows(harness)) == ["a", "b", "c"]
    assert [e["line"] for e in rejected_entries(harness)] == [b.decode(), b.decode()]
    check_container(harness.blobs(), expected_ids=None)


def test_a_page_that_goes_back_under_a_fresh_cursor_fails_the_window_and_commits_nothing(harness):
    # An offset cursor that slid back (or a loop to the first page, which has no cursor of its
    # own): every cursor is new, only the order shows it.
    a, b, c = call("a", "2026-11-28T12:01:00Z"), call("b", "2026-11-28T12:02:00Z"), call("c", "2026-11-28T12:03:00Z")
    summary = export_with(harness, paged({W0S: [[a, b], [a, b, c]]}), MAX_FILE_ROWS="1")
    (failed,) = summary.failures
    assert "pagination loop" in failed.error and "below the previous page's last call" in failed.error
    assert committed(state_rows(harness))["track"] == (0, W0)
    again = export_with(harness, paged({W0S: [[a, b], [c]]}), MAX_FILE_ROWS="1")
    _ok(again)
    assert sorted(r["messageId"] for r in track_rows(harness)) == ["a", "b", "c"]
    check_container(harness.blobs(), expected_ids=None)


# ---------------------------------------------------------------------------------------------
# A closed window that is not immutable, between a crash and the resume


def test_a_window_that_shrank_between_a_crash_and_the_resume_is_not_committed_over_its_own_files(harness):
    five = [call(f"c{i}", f"2026-11-28T12:0{i}:00Z") for i in range(5)]
    served = {W0S: [five]}
    with HostileEtl(paged(served), token=harness.env["ETL_API_TOKEN"]) as srv:
        harness.env.update(START, ETL_API_ENDPOINT=srv.url, MAX_FILE_ROWS="2")
        proc = harness.cli("run", "--now", NOW, extra_env={"EXPORTER_CRASH_AT": "after_file_commit:2"})
        assert proc.returncode == 137, (proc.stdout, proc.stderr)
        assert sorted(n for n in harness.data_blobs() if ".track." in n) == [
            "exports/segment/2184.13699.1.track.csv", "exports/segment/2184.13699.2.track.csv"]
        served[W0S] = [five[:2]]  # the "closed" window lost c2..c4 on the server
        proc = harness.cli("run", "--now", NOW)
    # Files 1 and 2 of the 12:00 window are in place: the state must not say that window ended at
    # position 1 (the next window would collide with file 2). The resumed run must fail clearly
    # (the ETL API returned fewer calls for a closed window than its files hold), moving nothing.
    rows = state_rows(harness)
    track_files = [n for n in harness.data_blobs() if ".track." in n]
    assert rows["track"].position == len(track_files) or rows["track"].window_end == W0, (
        rows["track"], track_files, proc.stdout)


# ---------------------------------------------------------------------------------------------
# The same call, another cell: JSON against CSV/Parquet


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_a_forged_event_text_without_event_is_not_the_event_text_in_any_format(harness, fmt):
    forged = orjson.dumps({"messageId": "f", "type": "track", "receivedAt": AT, "event_text": "Forged"})
    summary = export_with(harness, paged({W0S: [[forged]]}), EXPORT_FORMAT=fmt)
    _ok(summary)
    (row,) = track_rows(harness)
    assert row.get("event") is None and row.get("event_text") is None, row


# ---------------------------------------------------------------------------------------------
# A server that sends more than its Content-Length


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_page_longer_than_its_content_length_is_not_taken_as_whole(harness, fmt):
    # The server counts the characters of its body, not its UTF-8 bytes: with enough 3-byte
    # characters in the first call, its count ends exactly after the first line's "\n".
    rest = call("rest", "2026-11-28T12:05:00Z")
    if (len(rest) + 1) % 2:
        rest = call("rest", "2026-11-28T12:05:00Z", pad="x")
    first = call("first", AT, event="注" * ((len(rest) + 1) // 2))  # 2 bytes more than characters each
    body = first + b"\n" + rest + b"\n"
    counted = len(body.decode("utf-8"))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n"

    def calls(target: str) -> bytes:
        if "type=track" not in target:
            return b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: 0\r\n\r\n"
        return head % counted + body

    assert body[:counted].endswith(b"\n") and counted < len(body)
    srv = RawServer(lambda n, target: DESTINATION_REPLY if target.startswith("/v1/destination") else calls(target))
    try:
        harness.env["ETL_API_ENDPOINT"] = srv.url
        summary = run_with(harness, NOW, **START, EXPORT_FORMAT=fmt)
    finally:
        srv.close()
    got = sorted(r["messageId"] for r in track_rows(harness))
    if summary.ok:
        assert got == ["first", "rest"]
    else:  # refused as a broken page: nothing of the window committed
        assert got == [] and committed(state_rows(harness))["track"] == (0, W0)
        assert any("more bytes than its Content-Length" in (u.error or "") for u in summary.failures)


# ---------------------------------------------------------------------------------------------
# Tried, holds: pinned so they stay that way


def test_a_redirect_to_another_host_is_not_followed_and_the_token_stays_home(harness):
    seen: list[str] = []
    with HostileEtl(lambda q, n: seen.append("asked") or Reply(), token="other") as elsewhere:
        def answer(query, n):
            return Reply(status=302, headers=[("Location", f"{elsewhere.url}/v1/calls?type=track")])

        summary = export_with(harness, answer)
    assert summary.error is not None and "302" in summary.error
    assert not elsewhere.requests and not seen
    assert harness.data_blobs() == {}
    assert committed(state_rows(harness))["track"] == (0, W0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_401_after_some_pages_commits_nothing_and_a_later_run_exports_the_window_once(harness, fmt):
    lines = [call(f"m{i}", f"2026-11-28T12:0{i}:00Z") for i in range(6)]
    good = paged({W0S: [lines[:2], lines[2:4], lines[4:]]})

    def revoked(query, n):
        if query.get("cursor") == "c2":
            return Reply(orjson.dumps({"error": "token revoked"}), 401, "application/json")
        return good(query, n)

    summary = export_with(harness, revoked, EXPORT_FORMAT=fmt, MAX_FILE_ROWS="1")
    assert summary.error is not None and "ETL_API_TOKEN" in summary.error
    assert committed(state_rows(harness))["track"] == (0, W0)
    summary = export_with(harness, good, EXPORT_FORMAT=fmt, MAX_FILE_ROWS="1")
    _ok(summary)
    check_container(harness.blobs(), expected_ids={f"m{i}" for i in range(6)})


def _encoded(encoding: str, body: bytes) -> bytes:
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "gzip, gzip":
        return gzip.compress(gzip.compress(body))
    return gzip.compress(body)  # "br" (a lie), and identity carrying gzip bytes


@pytest.mark.parametrize("encoding", ["deflate", "br", "gzip, gzip", "identity"])
def test_a_content_encoding_not_asked_for_fails_the_unit_without_committing(harness, encoding):
    body = call("a") + b"\n"

    def answer(query, n):
        if query.get("type") != "track":
            return Reply()
        return Reply(_encoded(encoding, body), headers=[("Content-Encoding", encoding)])

    summary = export_with(harness, answer)
    (failed,) = summary.failures
    assert failed.call_type == "track"
    assert committed(state_rows(harness))["track"] == (0, W0)
    assert not [n for n in harness.blobs() if "track" in n]


@pytest.mark.parametrize("retry_after", ["Wed, 21 Oct 2015 07:28:00 GMT", "-5", "nan", "soon"])
def test_an_odd_retry_after_is_read_as_no_hint_and_the_page_is_retried(harness, retry_after):
    good = paged({W0S: [[call("a")]]})
    tracks: list[int] = []

    def answer(query, n):
        if query.get("type") == "track":
            tracks.append(n)
            if len(tracks) == 1:
                return Reply(b'{"error":"busy"}', 503, "application/json", headers=[("Retry-After", retry_after)])
        return good(query, n)

    summary = export_with(harness, answer)
    _ok(summary)
    assert len(tracks) == 2
    check_container(harness.blobs(), expected_ids={"a"})


def test_a_huge_retry_after_ends_the_unit_at_its_budget_instead_of_sleeping(harness):
    def answer(query, n):
        if query.get("type") != "track":
            return Reply()
        return Reply(b'{"error":"later"}', 429, "application/json", headers=[("Retry-After", "99999999")])

    summary = export_with(harness, answer, UNIT_BUDGET_SECONDS="3")
    (failed,) = summary.failures
    assert "UNIT_BUDGET_SECONDS" in failed.error
    assert committed(state_rows(harness))["track"] == (0, W0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_error_object_served_as_a_page_is_dead_lettered_and_as_json_fails_the_unit(harness, fmt):
    error = b'{"error":"internal: shard 7 unavailable"}'

    def as_ndjson(query, n):
        if query.get("type") != "track":
            return Reply()
        return Reply(error + b"\n" + call("a") + b"\n")

    summary = export_with(harness, as_ndjson, EXPORT_FORMAT=fmt)
    _ok(summary)
    (entry,) = rejected_entries(harness)
    assert entry["line"] == error.decode() and "type" in entry["reason"]
    assert [r["messageId"] for r in track_rows(harness)] == ["a"]


def test_a_200_with_a_json_error_body_is_not_a_page(harness):
    def answer(query, n):
        if query.get("type") != "track":
            return Reply()
        return Reply(b'{"error":"try later"}', content_type="application/json")

    summary = export_with(harness, answer)
    (failed,) = summary.failures
    assert "not NDJSON" in failed.error
    assert committed(state_rows(harness))["track"] == (0, W0)


def _deep(levels: int) -> dict[str, Any]:
    value: Any = {"leaf": 1}
    for _ in range(levels - 2):  # the call is level 1, properties level 2, the leaf object last
        value = {"d": value}
    return value


@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_deep_and_odd_valued_calls_agree_in_every_format(harness, fmt):
    wide = {f"k{i}": i for i in range(4500)}  # 10k-ish keys would pass MAX_CALL_BYTES; about 60 KB
    lines = [
        call("wide", AT, properties=wide),
        call("deep32", AT, properties=_deep(32)),
        call("deep33", AT, properties=_deep(33)),
        b'{"messageId":"nums","type":"track","receivedAt":"%s","userId":-0,"anonymousId":1.0,'
        b'"sentAt":1E2,"properties":{"big":18446744073709551615,"tiny":1e-400}}' % AT.encode(),
        b'{"messageId":"huge","type":"track","receivedAt":"%s","properties":{"x":18446744073709551616}}' % AT.encode(),
        b'{"messageId":"inf","type":"track","receivedAt":"%s","properties":{"x":1e400}}' % AT.encode(),
        b'{"messageId":"dup","type":"identify","receivedAt":"%s","type":"track"}' % AT.encode(),
        b'{"messageId":"dup2","type":"track","receivedAt":"%s","type":"identify"}' % AT.encode(),
        b'\xef\xbb\xbf' + call("bom"),
        b'{"messageId":"sur","type":"track","receivedAt":"%s","\\ud800":1}' % AT.encode(),
        b'{"messageId":"u2028","type":"track","receivedAt":"%s","userId":"a\xe2\x80\xa8b\\u0000c"}' % AT.encode(),
        b'{"messageId":"overlong","type":"track","receivedAt":"%s","userId":"\xc0\xaf"}' % AT.encode(),
    ]
    summary = export_with(harness, paged({W0S: [lines]}), EXPORT_FORMAT=fmt)
    _ok(summary)
    rows = {r["messageId"]: r for r in track_rows(harness)}
    assert sorted(rows) == ["deep32", "dup", "nums", "u2028", "wide"]
    rejected = sorted(json.loads(e["line"])["messageId"] if "line" in e and "\ufeff" not in e["line"]
                      else e.get("reason") for e in rejected_entries(harness))
    assert len(rejected) == 7, rejected
    if fmt == "json":
        assert rows["nums"]["userId"] == 0 and rows["nums"]["properties"]["big"] == 2**64 - 1
    else:
        assert (rows["nums"]["userId"], rows["nums"]["anonymousId"], rows["nums"]["sentAt"]) == ("-0", "1.0", "1E2")
        assert json.loads(rows["wide"]["properties"]) == wide
    assert rows["u2028"]["userId"] == "a\u2028b\x00c"
