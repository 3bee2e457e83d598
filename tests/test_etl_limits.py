"""The export under the ETL limits (docs/guarantees.md "Limits"): a hostile ETL API can make a
window fail, never make it lose, duplicate or invent calls, and never take unbounded memory or
time. Each test runs the whole export against Azurite and a real HTTP server on loopback.

A unit that passes a limit ends as a transient failure: its state does not move, and the next
run resumes its claim and exports the window exactly once.
"""

from __future__ import annotations

import gzip
import hashlib
import time
import tracemalloc
from datetime import UTC, datetime

import orjson
import pytest
from azure.core.pipeline.transport import RequestsTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.faults import Fault
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import is_blob_commit
from tests.support.hostile_etl import HostileEtl, Reply, gzip_bomb
from tests.support.invariants import check_container, ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:11:01Z"
AT = "2026-11-28T12:04:00.000Z"
SMALL_PAGES = {"page_limit": 4}
FORMATS = ["csv", "json", "parquet"]
MiB = 1024 * 1024


def _load(harness):
    calls = make_window_calls(W0, per_type={"track": 11, "identify": 3}, seed=4)
    harness.source.add(calls)
    return calls


def _raw(message_id: str, pad: int) -> bytes:
    return orjson.dumps({"messageId": message_id, "type": "track", "receivedAt": AT, "event": "E",
                         "properties": {"pad": "p" * pad}})


def _unit_failed_and_nothing_moved(harness, summary, before, needle: str) -> None:
    (failed,) = summary.failures
    assert failed.call_type == "track"
    assert needle in failed.error, failed.error
    assert committed(state_rows(harness)).get("track") == before.get("track", (0, W0)) == (0, W0)


def _no_track_data(harness) -> None:
    assert not [n for n in harness.data_blobs() if ".track." in n]


# ---------------------------------------------------------------------------------------------
# X-Next-Cursor


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_cursor_is_retried_and_the_window_keeps_every_page(harness, fmt):
    calls = _load(harness)
    harness.etl.add_fault(Fault("bad_cursor", call_type="track"))  # page 1 once, then fine
    summary = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, EXPORT_FORMAT=fmt, **START)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    check_container(harness.blobs(), expected_ids=ids_of(calls))  # before: pages 2 and 3 lost


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_cursor_every_time_fails_the_unit_without_committing_page_1(harness, fmt):
    calls = _load(harness)
    harness.etl.add_fault(Fault("bad_cursor", call_type="track", times=3))  # every attempt
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, EXPORT_FORMAT=fmt, **START)
    _unit_failed_and_nothing_moved(harness, summary, before, "empty X-Next-Cursor")
    _no_track_data(harness)
    assert state_rows(harness)["identify"].position == 1  # other types go on
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, EXPORT_FORMAT=fmt, **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls))


# ---------------------------------------------------------------------------------------------
# Line and page caps


@pytest.mark.parametrize("gzip_on", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_line_over_the_line_cap_is_dead_lettered_by_hash_and_one_under_it_whole(harness, fmt, gzip_on):
    calls = _load(harness)
    big = _raw("big", 40_000)  # over MAX_CALL_BYTES (32768), under the 1 MiB line cap
    huge = _raw("huge", 3 * MiB)  # over the line cap
    harness.source.add([("track", AT, big), ("track", AT, huge)])
    summary = run_with(harness, NOW, etl_kwargs={**SMALL_PAGES, "gzip": gzip_on}, EXPORT_FORMAT=fmt,
                       MAX_CALL_BYTES="32768", **START)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    assert summary.rejected == 2
    report = check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=2)
    (whole,) = [e for e in report.rejected if "line" in e]
    assert whole["line"] == big.decode() and "32768" in whole["reason"]
    (hashed,) = [e for e in report.rejected if "line_sha256" in e]
    assert hashed == {
        "reason": f"line is {len(huge)} bytes, over the {MiB}-byte line cap; kept as its length, "
                  "SHA-256 and first 512 bytes",
        "line_bytes": len(huge),
        "line_sha256": hashlib.sha256(huge).hexdigest(),
        "line_prefix": huge[:512].decode(),
    }
    (dead_letters,) = [b for n, b in harness.blobs().items() if "/_rejected/" in n]
    assert len(dead_letters.data) < 100_000  # before: the whole 3 MiB line was in it


def test_a_page_over_max_page_bytes_stops_the_run_naming_the_setting_and_raising_it_lets_it_through(harness):
    calls = _load(harness)
    fat = [_raw(f"fat{i}", 300_000) for i in range(4)]  # one page of 4 lines, 1.2 MB
    harness.source.add([("track", AT, line) for line in fat])
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_PAGE_BYTES=str(MiB), MAX_CALL_BYTES="32768",
                       **START)
    assert summary.error is not None and "MAX_PAGE_BYTES=1048576" in summary.error, summary.error
    _no_track_data(harness)
    assert committed(state_rows(harness)).get("track") == before.get("track", (0, W0)) == (0, W0)
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_PAGE_BYTES=str(2 * MiB), MAX_CALL_BYTES="32768",
                     **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=4)  # over MAX_CALL_BYTES


def _bomb_server(harness, body: bytes) -> HostileEtl:
    """Sends the bomb for track, whatever the client's Accept-Encoding said; nothing for the rest."""
    def answer(query, n):
        if query.get("type") == "track":
            return Reply(body, headers=[("Content-Encoding", "gzip")])
        return Reply()

    return HostileEtl(answer, token=harness.env["ETL_API_TOKEN"])


def _peak_of_run(harness, url: str, **overrides: str):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        summary = run_with(harness, NOW, ETL_API_ENDPOINT=url, **START, **overrides)
        return summary, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


GOOD = [orjson.dumps({"messageId": f"ok{i}", "type": "track", "receivedAt": AT, "event": "E"}) for i in range(2)]


def test_a_gzip_bomb_stops_the_run_in_bounded_memory_and_commits_nothing(harness):
    body, _ = gzip_bomb(GOOD[0], GOOD[1], 300 * MiB)  # 300 KB that inflate to 300 MiB
    with _bomb_server(harness, body) as srv:
        summary, peak = _peak_of_run(harness, srv.url)
    assert summary.error is not None and "MAX_PAGE_BYTES=67108864" in summary.error
    assert peak < 32 * MiB, f"the run took {peak / MiB:.0f} MiB"  # before: about 2 GB
    assert harness.data_blobs() == {}
    assert committed(state_rows(harness)).get("track") == (0, W0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_gzip_bomb_under_a_raised_page_cap_is_dead_lettered_by_hash_in_bounded_memory(harness, fmt):
    body, sha = gzip_bomb(GOOD[0], GOOD[1], 300 * MiB)
    with _bomb_server(harness, body) as srv:
        summary, peak = _peak_of_run(harness, srv.url, MAX_PAGE_BYTES=str(1024 * MiB), EXPORT_FORMAT=fmt)
    assert summary.ok, (summary.error, [u.error for u in summary.failures])
    assert peak < 32 * MiB, f"the run took {peak / MiB:.0f} MiB"
    report = check_container(harness.blobs(), expected_ids={"ok0", "ok1"}, expected_rejected=1)
    (entry,) = report.rejected
    assert entry["line_bytes"] == 300 * MiB and entry["line_sha256"] == sha
    assert entry["line_prefix"].startswith('{"messageId":"bomb"')


# ---------------------------------------------------------------------------------------------
# Time and pages


def test_a_dripping_page_fails_the_unit_at_the_page_timeout_and_the_next_run_exports_it(harness):
    calls = _load(harness)
    # Every socket read gets a byte within 0.2 s; the first 200 bytes alone would take 40 s.
    harness.etl.add_fault(Fault("drip", call_type="track", delay=0.2, drip_bytes=200, times=3))
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs={**SMALL_PAGES, "read_timeout": 5.0},
                       ETL_PAGE_TIMEOUT_SECONDS="1", **START)
    _unit_failed_and_nothing_moved(harness, summary, before, "ETL_PAGE_TIMEOUT_SECONDS=1")
    _no_track_data(harness)
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls))


def test_more_pages_than_max_pages_per_window_fail_the_unit_and_a_higher_cap_exports_it(harness):
    calls = _load(harness)  # 11 track calls: 3 pages of 4
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_PAGES_PER_WINDOW="2", **START)
    _unit_failed_and_nothing_moved(harness, summary, before, "MAX_PAGES_PER_WINDOW=2")
    _no_track_data(harness)
    again = run_with(harness, NOW, etl_kwargs=SMALL_PAGES, MAX_PAGES_PER_WINDOW="3", **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls))


def test_a_unit_past_its_budget_fails_transiently_and_its_claim_is_resumed_exactly_once(harness):
    calls = _load(harness)
    # Every track page 0.4 s late: 6 pages of 2 take 2.4 s, none of them is too late by itself.
    harness.etl.add_fault(Fault("delay", call_type="track", delay=0.4, times=100))
    before = committed(state_rows(harness))
    summary = run_with(harness, NOW, etl_kwargs={"page_limit": 2}, UNIT_BUDGET_SECONDS="1", **START)
    _unit_failed_and_nothing_moved(harness, summary, before, "UNIT_BUDGET_SECONDS")
    _no_track_data(harness)
    assert state_rows(harness)["track"].pending_position == 1  # the claim stays for the next run
    harness.etl.clear_faults()
    again = run_with(harness, NOW, etl_kwargs={"page_limit": 2}, **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls))
    assert state_rows(harness)["track"].position == 1


# ---------------------------------------------------------------------------------------------
# Generated hostile windows through the whole export

_kind = st.sampled_from(["good", "good", "good", "bad", "big", "huge"])
_page = st.fixed_dictionaries({
    "kinds": st.lists(_kind, max_size=6),
    "gzip": st.booleans(),
    "framing": st.sampled_from(["length", "chunked"]),
    "cursor_ok": st.booleans() | st.just(True),
})


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_hostile_windows_export_each_good_line_once_or_fail_without_moving(azurite, request, fmt):
    """Pages of good calls, broken lines, lines over MAX_CALL_BYTES and over the line cap, bad
    cursors, oversized pages, gzip, chunked: the window either exports every good call once and
    dead-letters every other line, or fails without moving its state; a clean run after that
    exports it exactly once. ``--soak-long`` runs many more cases."""
    examples = 60 if request.config.getoption("--soak-long") else 5

    @settings(max_examples=examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_page, min_size=1, max_size=3), st.sampled_from([MiB, 8 * MiB]), st.integers(0, 10**6))
    def check(pages, page_cap, seed):
        bodies, good, rejected, huge_shas = [], set(), 0, []
        for i, page in enumerate(pages):
            lines = []
            for j, kind in enumerate(page["kinds"]):
                mid = f"g{seed}-{i}-{j}"
                if kind == "good":
                    lines.append(_raw(mid, 10))
                    good.add(mid)
                elif kind == "bad":
                    lines.append(b'{"messageId":"%s","type":"track"' % mid.encode())  # cut short
                elif kind == "big":
                    lines.append(_raw(mid, 300))  # over MAX_CALL_BYTES=256
                else:
                    lines.append(_raw(mid, MiB + 10))
                    huge_shas.append(hashlib.sha256(lines[-1]).hexdigest())
                rejected += kind != "good"
            bodies.append(b"".join(line + b"\n" for line in lines))

        def answer(query, n, clean=False):
            if query.get("type") != "track":
                return Reply()
            i = int(query["cursor"][1:]) + 1 if "cursor" in query else 0
            page, body = pages[i], bodies[i]
            headers = []
            if not (clean or page["cursor_ok"]):
                headers.append(("X-Next-Cursor", ""))
            elif i < len(pages) - 1:
                headers.append(("X-Next-Cursor", f"c{i}"))
            if page["gzip"]:
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            return Reply(body, headers=headers, framing=page["framing"])

        failing = next((i for i, p in enumerate(pages) if not p["cursor_ok"] or len(bodies[i]) > page_cap), None)
        harness = _fresh_harness(azurite, fmt)
        limits = {"MAX_CALL_BYTES": "256", "MAX_PAGE_BYTES": str(page_cap)}
        with HostileEtl(answer, token=harness.env["ETL_API_TOKEN"]) as srv:
            harness.env["ETL_API_ENDPOINT"] = srv.url
            summary = run_with(harness, NOW, **START, **limits)
            if failing is None:
                assert summary.ok, (summary.error, [u.error for u in summary.failures])
            else:
                assert not summary.ok
                assert committed(state_rows(harness)).get("track") == (0, W0)
                assert not [n for n in harness.blobs() if ".track." in n or "track.ndjson" in n]
                srv.answer = lambda query, n: answer(query, n, clean=True)
                too_big = any(len(b) > page_cap for b in bodies)
                again = run_with(harness, NOW, **START, **{**limits, "MAX_PAGE_BYTES": str(16 * MiB)})
                assert again.ok, (again.error, [u.error for u in again.failures], too_big)
        report = check_container(harness.blobs(), expected_ids=good, expected_rejected=rejected)
        assert sorted(e["line_sha256"] for e in report.rejected if "line_sha256" in e) == sorted(huge_shas)

    check()


def _fresh_harness(azurite, fmt: str):
    import uuid

    from tests.conftest import Harness

    container, table = f"t{uuid.uuid4().hex[:20]}", f"t{uuid.uuid4().hex[:20]}"
    azurite.create_container(container)

    class _Url:
        url = "http://127.0.0.1:1"

    harness = Harness(azurite, container, table, _Url(), None)  # type: ignore[arg-type]
    harness.env["EXPORT_FORMAT"] = fmt
    return harness


class _SlowCommits(RequestsTransport):
    """A real transport whose data-file commits take 0.6 s each (a slow storage account)."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        if is_blob_commit(request):
            time.sleep(0.6)
        return super().send(request, **kwargs)


def test_a_unit_past_its_budget_while_writing_stops_before_its_state_and_is_resumed_once(harness):
    calls = make_window_calls(W0, per_type={"track": 2500}, seed=9, nasty=False)
    harness.source.add(calls)
    # The first batch of 2,000 calls fills two files of 1,000, committed during the read at 0.6 s
    # each: past the 1 s budget before the next batch.
    summary = run_with(harness, NOW, blob_transport=_SlowCommits(), UNIT_BUDGET_SECONDS="1",
                       MAX_FILE_ROWS="1000", **START)
    _unit_failed_and_nothing_moved(harness, summary, {}, "UNIT_BUDGET_SECONDS")
    assert state_rows(harness)["track"].pending_position == 1
    early = check_container(harness.blobs(), expected_ids=None).snapshot  # files of the claim, if any
    again = run_with(harness, NOW, MAX_FILE_ROWS="1000", **START)
    assert again.ok, again.error
    check_container(harness.blobs(), expected_ids=ids_of(calls), before=early)
    assert state_rows(harness)["track"].position == 3


# ---------------------------------------------------------------------------------------------
# The adversarial suite: generated hostile pages through the whole export, one invariant


def _good(mid: str) -> bytes:
    return orjson.dumps({"messageId": mid, "type": "track", "receivedAt": AT, "event": "Order Completed",
                         "properties": {"products": [{"sku": mid, "price": 1.5}], "note": "x\ny"}})


#: One line kind -> (the lines it puts in the page, good message ids, lines that must be rejected).
def _lines_of(kind: str, mid: str) -> tuple[list[bytes], set[str], int]:
    a, b = _good(mid + "a"), _good(mid + "b")
    if kind == "good":
        return [a], {mid + "a"}, 0
    if kind == "split":  # one object broken over two lines: both halves are bad lines
        cut = a.index(b',"event"')
        return [a[:cut], a[cut + 1:]], set(), 2
    if kind == "merged_comma":
        return [a + b"," + b], set(), 1
    if kind == "merged_space":
        return [a + b" " + b], set(), 1
    if kind == "merged_none":
        return [a + b], set(), 1
    if kind == "whitespace":
        return [b" \t "], set(), 1
    if kind == "not_object":
        return [b'["track"]'], set(), 1
    if kind == "bom":
        return [b"\xef\xbb\xbf" + a], set(), 1
    if kind == "trailing_comma":
        return [a[:-1] + b",}"], set(), 1
    if kind == "blank":  # an empty line carries nothing: dropped, never a row (docs/etl-api.md)
        return [b""], set(), 0
    raise AssertionError(kind)


_line_kind = st.sampled_from(["good", "good", "good", "split", "merged_comma", "merged_space", "merged_none",
                              "whitespace", "not_object", "bom", "trailing_comma", "blank"])
#: How a page is served: fine, or a fault that must fail the window without moving anything.
_page_fault = st.sampled_from(["none", "none", "none", "empty_cursor", "html", "drip", "cut_short"])
_hostile_page = st.fixed_dictionaries({
    "kinds": st.lists(_line_kind, max_size=8),
    "gzip": st.booleans(),
    "framing": st.sampled_from(["length", "chunked"]),
    "fault": _page_fault,
})


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_hostile_pages_keep_the_promise_in_every_format(azurite, request, fmt):
    """Lines split and merged, several objects on one line, blank and whitespace lines, a BOM,
    non-objects; pages gzipped or chunked, cut short, dripping, with an empty cursor or an odd
    content type, and servers whose cursor never ends. One invariant in every format: every row
    is one well-formed input line, every other line is in ``_rejected/`` (an empty line is no
    call), no state moves past a page that did not arrive whole, and the run stays within a
    memory bound. A clean rerun then exports the window exactly once. ``--soak-long`` runs more."""
    examples = 40 if request.config.getoption("--soak-long") else 4

    @settings(max_examples=examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(_hostile_page, min_size=1, max_size=3), st.booleans(), st.integers(0, 10**6))
    def check(pages, endless, seed):
        bodies, good, rejected = [], set(), 0
        for i, page in enumerate(pages):
            # Every page holds one good call of its own: two pages with the same bytes are a
            # pagination loop by the contract (docs/etl-api.md), which is its own case below.
            lines: list[bytes] = [_good(f"h{seed}-{i}")]
            good.add(f"h{seed}-{i}")
            for j, kind in enumerate(page["kinds"]):
                got, ids, bad = _lines_of(kind, f"h{seed}-{i}-{j}")
                lines += got
                good |= ids
                rejected += bad
            bodies.append(b"".join(line + b"\n" for line in lines))

        def answer(query, n, clean=False):
            if query.get("type") != "track":
                return Reply()
            i = int(query["cursor"][1:].split("-")[0]) + 1 if "cursor" in query else 0
            if i >= len(pages):  # only an endless server gets here: new calls, new cursors, forever
                return Reply(_good(f"endless-{n}") + b"\n", headers=[("X-Next-Cursor", f"c{i}-{n}")])
            page, body = pages[i], bodies[i]
            fault = "none" if clean else page["fault"]
            headers = []
            last = i == len(pages) - 1
            if fault == "empty_cursor":
                headers.append(("X-Next-Cursor", ""))
            elif not last or (endless and not clean):
                headers.append(("X-Next-Cursor", f"c{i}" if not last else f"c{i}-{n}"))
            if page["gzip"]:
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            if fault == "html":
                return Reply(b"<html>oops</html>\n", content_type="text/html", headers=headers)
            if fault == "drip":
                return Reply(chunks=[body[:1], body[1:]], content_length=len(body), drip=1.5, headers=headers)
            if fault == "cut_short":
                return Reply(body[: max(0, len(body) - 3)], content_length=len(body), headers=headers)
            return Reply(body, headers=headers, framing=page["framing"])

        fails = endless or any(p["fault"] != "none" for p in pages)
        harness = _fresh_harness(azurite, fmt)
        limits = {"MAX_PAGES_PER_WINDOW": "6", "ETL_PAGE_TIMEOUT_SECONDS": "1"}
        with HostileEtl(answer, token=harness.env["ETL_API_TOKEN"]) as srv:
            harness.env["ETL_API_ENDPOINT"] = srv.url
            tracemalloc.start()
            try:
                summary = run_with(harness, NOW, **START, **limits)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 64 * MiB, f"the run took {peak / MiB:.0f} MiB"
            if fails:
                assert not summary.ok
                assert committed(state_rows(harness)).get("track") == (0, W0)
                assert not [n for n in harness.blobs() if ".track." in n or "track.ndjson" in n]
                srv.answer = lambda query, n: answer(query, n, clean=True)
                again = run_with(harness, NOW, **START, **limits)
                assert again.ok, (again.error, [u.error for u in again.failures])
            else:
                assert summary.ok, (summary.error, [u.error for u in summary.failures])
        report = check_container(harness.blobs(), expected_ids=good, expected_rejected=rejected)
        assert report is not None

    check()
