"""The ETL client's side of the contract (docs/etl-api.md "Pagination" and "Limits").

Against real HTTP servers on loopback: the emulator (with its faults) and a hostile server
(tests/support/hostile_etl.py) that streams gzip bombs, drips bytes and never stops paging.
Memory is measured with tracemalloc (every Python buffer is traced), never with a clock.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.faults import Fault
from emulator.server import EmulatorServer
from emulator.sources import StaticSource
from shared.errors import EtlApiError, EtlApiUnavailable, UnitBudgetExceeded
from shared.etl_client import MAX_CURSOR_CHARS, EtlClient, RetryPolicy, next_cursor
from shared.lines import LineBlock
from shared.page_reader import (
    PREFIX_BYTES,
    BodyError,
    Inflater,
    OversizedLine,
    PageAssembler,
    PageTooLarge,
    line_cap_for,
)
from tests.conftest import TOKEN
from tests.support.hostile_etl import HostileEtl, Reply, gzip_bomb

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
W1 = datetime(2026, 11, 28, 12, 10, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)
MiB = 1024 * 1024


def _line(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"messageId": f"m{i:05d}", "type": "track", "receivedAt": "2026-11-28T12:01:00Z",
                         "event": "E", "properties": {"pad": "x" * pad}})


def _client(url: str, **kwargs) -> EtlClient:
    return EtlClient(url, TOKEN, **{"retry": FAST, **kwargs})


def _all_lines(pages) -> list[bytes]:
    return [line for page in pages for line in page.lines]


@pytest.fixture
def calls() -> list[bytes]:
    return [_line(i) for i in range(5)]


@pytest.fixture
def emulator(calls) -> Iterator[EmulatorServer]:
    source = StaticSource([("track", "2026-11-28T12:01:00Z", line) for line in calls])
    with EmulatorServer(source, token=TOKEN) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# The cursor rule: only an absent X-Next-Cursor ends the window

_cursor_char = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@given(st.text(_cursor_char, min_size=1, max_size=MAX_CURSOR_CHARS))
def test_a_cursor_of_printable_ascii_is_taken_as_sent(cursor: str) -> None:
    assert next_cursor([cursor]) == cursor
    assert next_cursor([f" {cursor}\t"]) == cursor  # optional whitespace around a header value


def test_only_an_absent_header_is_the_last_page() -> None:
    assert next_cursor([]) is None


_bad_char = st.characters().filter(lambda c: not 0x21 <= ord(c) <= 0x7E and c not in " \t")


@given(st.text(_cursor_char, max_size=20), _bad_char, st.text(_cursor_char, max_size=20))
def test_a_cursor_with_any_other_character_is_a_protocol_error(before: str, bad: str, after: str) -> None:
    with pytest.raises(ValueError, match="X-Next-Cursor"):
        next_cursor([before + bad + after])


@pytest.mark.parametrize("values", [[""], [" "], ["\t"], ["x" * (MAX_CURSOR_CHARS + 1)], ["a", "b"]])
def test_an_empty_overlong_or_repeated_cursor_is_a_protocol_error(values: list[str]) -> None:
    with pytest.raises(ValueError, match="X-Next-Cursor"):
        next_cursor(values)


BAD_CURSORS = ["", "   ", "a b", "caf\u00e9", "tab\there", "x" * (MAX_CURSOR_CHARS + 1)]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_once_is_retried_and_no_page_is_lost(emulator, calls, cursor) -> None:
    emulator.add_fault(Fault("bad_cursor", cursor=cursor))
    client = _client(emulator.url, page_limit=2)
    try:
        lines = _all_lines(client.pages("track", W0, W1))
    finally:
        client.close()
    assert lines == calls  # before: an empty cursor ended the window after page 1
    first_page = [r for r in emulator.request_log if "cursor" not in r["query"]]
    assert len(first_page) == 2  # asked again, not taken as the end


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_every_time_fails_transiently_before_the_page_is_handed_on(emulator, cursor) -> None:
    emulator.add_fault(Fault("bad_cursor", cursor=cursor, times=FAST.attempts))
    client = _client(emulator.url, page_limit=2)
    got = []
    try:
        with pytest.raises(EtlApiUnavailable, match="X-Next-Cursor") as err:
            got.extend(client.pages("track", W0, W1))
    finally:
        client.close()
    assert err.value.transient
    assert got == []  # page 1 never reached the export


def test_a_cursor_on_the_last_page_must_be_valid_too(emulator, calls) -> None:
    """The emulator's bad_cursor also hits a page that would have been the last one."""
    emulator.add_fault(Fault("bad_cursor", cursor="", after=2))  # page 3 of 3
    client = _client(emulator.url, page_limit=2)
    try:
        assert _all_lines(client.pages("track", W0, W1)) == calls
    finally:
        client.close()
    assert len(emulator.request_log) == 4


# ---------------------------------------------------------------------------------------------
# Page and line caps (pure: the assembler and the inflater)

_body_line = st.binary(max_size=60).filter(lambda b: b"\n" not in b)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300)
@given(st.lists(_body_line, max_size=25), st.integers(1, 40), st.lists(st.integers(0, 10_000), max_size=12))
def test_the_assembler_keeps_short_lines_and_leaves_long_ones_out_by_hash(lines, cap, cuts) -> None:
    body = b"".join(line + b"\n" for line in lines)
    assembler = PageAssembler(page_cap=len(body) or 1, line_cap=cap)
    for piece in _split(body, cuts):
        assembler.feed(piece)
    page = assembler.finish()
    kept = [line for line in lines if len(line) <= cap]
    assert list(page.lines) == list(LineBlock.from_body(b"".join(k + b"\n" for k in kept)))
    expected = []
    for i, line in enumerate(lines):
        if len(line) > cap:
            before = b"".join(k + b"\n" for k in lines[:i] if len(k) <= cap)
            expected.append((len(LineBlock.from_body(before)),
                             OversizedLine(len(line), hashlib.sha256(line).hexdigest(), line[:PREFIX_BYTES], cap)))
    assert list(page.set_aside) == expected
    assert page.nbytes == len(body)


@given(st.lists(_body_line, min_size=1, max_size=25), st.lists(st.integers(0, 10_000), max_size=12))
def test_a_page_over_the_page_cap_is_refused_as_soon_as_it_passes_it(lines, cuts) -> None:
    body = b"".join(line + b"\n" for line in lines)
    cap = max(0, len(body) - 1)
    assembler = PageAssembler(page_cap=cap, line_cap=100)
    fed = 0
    with pytest.raises(PageTooLarge):
        for piece in _split(body, cuts):
            fed += len(piece)
            assembler.feed(piece)
    assert fed > cap and fed - len(piece) <= cap  # refused at the piece that passed it


@pytest.mark.parametrize("body", [b"abc", b"abc\nde", b"x" * 50])
def test_a_page_that_ends_inside_a_line_is_cut_short(body) -> None:
    assembler = PageAssembler(page_cap=1000, line_cap=10)
    assembler.feed(body)
    with pytest.raises(BodyError, match="newline"):
        assembler.finish()


@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=3), st.lists(st.integers(0, 10_000), max_size=8),
       st.integers(1, 700))
def test_the_inflater_gives_the_body_back_in_bounded_steps(members, cuts, step) -> None:
    raw = b"".join(gzip.compress(m, compresslevel=1) for m in members)  # several gzip members
    inflater = Inflater("gzip", step=step)
    out = []
    for piece in _split(raw, cuts):
        out.extend(inflater.pieces(piece))
    inflater.finish()
    assert b"".join(out) == b"".join(members)
    assert all(len(p) <= step for p in out)


def test_a_gzip_body_cut_inside_a_member_is_a_broken_transfer() -> None:
    raw = gzip.compress(b'{"a":1}\n' * 100)
    inflater = Inflater("gzip")
    list(inflater.pieces(raw[: len(raw) // 2]))
    with pytest.raises(BodyError, match="cut short"):
        inflater.finish()


def test_an_encoding_that_was_not_asked_for_is_refused() -> None:
    with pytest.raises(BodyError, match="br"):
        Inflater("br")


# ---------------------------------------------------------------------------------------------
# Page and line caps over HTTP: a gzip bomb never exists inflated

BOMB_BYTES = 300 * MiB


@pytest.fixture(scope="module")
def bomb() -> tuple[bytes, bytes, bytes, str]:
    """(gzip body, first line, last line, sha256 of the middle line): two calls around one line
    of 300 MiB, about 300 KB compressed."""
    first, last = _line(1), _line(2)
    body, sha = gzip_bomb(first, last, BOMB_BYTES)
    return body, first, last, sha


def _serve_bomb(body: bytes):
    return lambda query, n: Reply(body, headers=[("Content-Encoding", "gzip")])


def _peak_while(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            result: object = fn()
        except Exception as exc:  # measured either way; the caller checks what it was
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_a_permanent_error_naming_max_page_bytes_in_bounded_memory(bomb) -> None:
    body = bomb[0]
    assert len(body) < 400_000
    with HostileEtl(_serve_bomb(body), token=TOKEN) as srv:
        client = _client(srv.url, gzip=True)
        try:
            error, peak = _peak_while(lambda: list(client.pages("track", W0, W1)))
        finally:
            client.close()
        asked = len(srv.calls_requests())
    assert isinstance(error, EtlApiError) and not error.transient, error
    assert "MAX_PAGE_BYTES=67108864" in str(error)
    assert asked == 1  # permanent: not asked again
    assert peak < 24 * MiB, f"reading the bomb took {peak / MiB:.0f} MiB"


def test_a_gzip_bomb_under_a_raised_page_cap_leaves_its_huge_line_out_by_hash_in_bounded_memory(bomb) -> None:
    body, first, last, sha = bomb
    with HostileEtl(_serve_bomb(body), token=TOKEN) as srv:
        client = _client(srv.url, gzip=True, max_page_bytes=1024 * MiB)
        try:
            pages, peak = _peak_while(lambda: list(client.pages("track", W0, W1)))
        finally:
            client.close()
    assert isinstance(pages, list), pages
    (page,) = pages
    assert list(page.lines) == [first, last]
    ((index, huge),) = page.set_aside
    assert index == 1 and huge.length == BOMB_BYTES and huge.sha256 == sha
    assert huge.prefix.startswith(b'{"messageId":"bomb"') and len(huge.prefix) == PREFIX_BYTES
    assert peak < 24 * MiB, f"reading the bomb took {peak / MiB:.0f} MiB"


@pytest.mark.parametrize("gzip_on", [False, True])
def test_a_line_over_the_line_cap_is_left_out_and_a_line_under_it_is_kept_whole(gzip_on) -> None:
    cap = line_cap_for(32768)
    kept_big = _line(1, pad=cap - 200)  # over MAX_CALL_BYTES, under the line cap
    huge = _line(2, pad=3 * MiB)
    lines = [_line(0), kept_big, huge, _line(3)]
    source = StaticSource([("track", "2026-11-28T12:01:00Z", line) for line in lines])
    with EmulatorServer(source, token=TOKEN) as srv:
        client = _client(srv.url, gzip=gzip_on)
        try:
            (page,) = list(client.pages("track", W0, W1, line_cap=cap))
        finally:
            client.close()
    assert list(page.lines) == [_line(0), kept_big, _line(3)]
    assert page.set_aside == ((2, OversizedLine(len(huge), hashlib.sha256(huge).hexdigest(),
                                                 huge[:PREFIX_BYTES], cap)),)


def test_an_error_answer_with_a_huge_body_is_not_read_whole() -> None:
    endless = (b"x" * MiB for _ in range(512))  # 512 MiB, never materialised
    answers = iter([Reply(status=503, content_type="text/plain", chunks=endless, content_length=512 * MiB),
                    Reply(_line(0) + b"\n")])
    with HostileEtl(lambda query, n: next(answers), token=TOKEN) as srv:
        client = _client(srv.url)
        try:
            pages, peak = _peak_while(lambda: list(client.pages("track", W0, W1)))
        finally:
            client.close()
    assert isinstance(pages, list), pages
    assert _all_lines(pages) == [_line(0)]
    assert peak < 24 * MiB


# ---------------------------------------------------------------------------------------------
# Time: per request, per unit; pages per window


def test_a_body_dripped_byte_by_byte_is_cut_at_the_page_timeout(emulator) -> None:
    # 0.2 s between bytes: every socket read gets data in time (the read timeout is 5 s), but the
    # first 200 bytes alone would take 40 s.
    emulator.add_fault(Fault("drip", delay=0.2, drip_bytes=200, times=FAST.attempts))
    client = _client(emulator.url, page_timeout=1.0, read_timeout=5.0)
    try:
        with pytest.raises(EtlApiUnavailable, match="ETL_PAGE_TIMEOUT_SECONDS=1") as err:
            list(client.pages("track", W0, W1))
    finally:
        client.close()
    assert err.value.transient


def test_headers_dripped_byte_by_byte_are_cut_at_the_page_timeout(calls) -> None:
    body = b"".join(line + b"\n" for line in calls)
    with HostileEtl(lambda query, n: Reply(body, header_drip=0.2), token=TOKEN) as srv:
        client = _client(srv.url, page_timeout=1.0, read_timeout=5.0)
        try:
            with pytest.raises(EtlApiUnavailable, match="ETL_PAGE_TIMEOUT_SECONDS=1"):
                list(client.pages("track", W0, W1))
        finally:
            client.close()
        assert len(srv.calls_requests()) == FAST.attempts


def test_a_server_that_never_stops_paging_is_cut_at_max_pages() -> None:
    def endless(query, n):  # a new call and a new cursor every page (gives up after 100 pages)
        return Reply(_line(n) + b"\n", headers=[("X-Next-Cursor", f"c{n}")] if n < 99 else [])

    with HostileEtl(endless, token=TOKEN) as srv:
        client = _client(srv.url, max_pages=20)
        got = []
        try:
            with pytest.raises(EtlApiUnavailable, match="MAX_PAGES_PER_WINDOW=20") as err:
                got.extend(client.pages("track", W0, W1))
        finally:
            client.close()
        assert len(srv.calls_requests()) == 20
    assert err.value.transient
    assert len(got) == 20


def test_empty_pages_with_new_cursors_are_cut_at_max_pages() -> None:
    with HostileEtl(lambda query, n: Reply(headers=[("X-Next-Cursor", f"c{n}")]), token=TOKEN) as srv:
        client = _client(srv.url, max_pages=5)
        try:
            with pytest.raises(EtlApiUnavailable, match="MAX_PAGES_PER_WINDOW"):
                list(client.pages("track", W0, W1))
        finally:
            client.close()
        assert len(srv.calls_requests()) == 5


def test_the_unit_deadline_ends_the_paging(emulator, calls) -> None:
    import time

    emulator.add_fault(Fault("delay", delay=0.4, times=100))  # every page late, none too late
    client = _client(emulator.url, page_limit=1, page_timeout=5.0)
    got = []
    try:
        with pytest.raises(UnitBudgetExceeded, match="UNIT_BUDGET_SECONDS") as err:
            got.extend(client.pages("track", W0, W1, deadline=time.monotonic() + 1.0))
    finally:
        client.close()
    assert err.value.transient
    assert len(got) < len(calls)


def _stalled_page_error(calls, page_timeout: float, read_timeout: float) -> tuple[EtlApiUnavailable, int]:
    """What reading a page whose body stops halfway raises (every attempt stalls the same way), and
    how many requests were made."""
    body = b"".join(line + b"\n" for line in calls)
    stop = threading.Event()

    def stalling() -> Iterator[bytes]:  # half the body, then nothing until the test's end
        yield body[: len(body) // 2]
        stop.wait(60)
        yield body[len(body) // 2 :]

    with HostileEtl(lambda query, n: Reply(chunks=stalling(), content_length=len(body)), token=TOKEN) as srv:
        client = _client(srv.url, page_timeout=page_timeout, read_timeout=read_timeout)
        try:
            with pytest.raises(EtlApiUnavailable) as err:
                list(client.pages("track", W0, W1))
        finally:
            client.close()
            stop.set()
        return err.value, len(srv.calls_requests())


def test_a_body_that_stops_halfway_is_cut_at_the_page_timeout(calls) -> None:
    # The page timeout (1 s) is due before a read could time out (5 s): the request's watch
    # wakes the stalled read at the page timeout, and every attempt is cut the same way.
    error, requests = _stalled_page_error(calls, page_timeout=1.0, read_timeout=5.0)
    assert "ETL_PAGE_TIMEOUT_SECONDS=1" in str(error) and error.transient
    assert requests == FAST.attempts


def test_a_read_timeout_shorter_than_the_page_timeout_still_cuts_a_stalled_body(calls) -> None:
    # Here a read times out (1 s) long before the page timeout (30 s): the read timeout cuts it.
    error, requests = _stalled_page_error(calls, page_timeout=30.0, read_timeout=1.0)
    assert "broke off" in str(error) and "ETL_PAGE_TIMEOUT_SECONDS" not in str(error)
    assert requests == FAST.attempts


def test_the_unit_deadline_also_cuts_a_page_in_flight(calls) -> None:
    import time

    body = b"".join(line + b"\n" for line in calls)
    chunks = [body[i : i + 1] for i in range(len(body))]
    with HostileEtl(lambda query, n: Reply(chunks=chunks, content_length=len(body), drip=0.2),
                    token=TOKEN) as srv:
        client = _client(srv.url, page_timeout=60.0)
        try:
            with pytest.raises((UnitBudgetExceeded, EtlApiUnavailable), match="UNIT_BUDGET_SECONDS"):
                list(client.pages("track", W0, W1, deadline=time.monotonic() + 1.0))
        finally:
            client.close()


# ---------------------------------------------------------------------------------------------
# Content types


@pytest.mark.parametrize("content_type", ["", "text/plain", "text/html"])
def test_an_empty_page_is_accepted_whatever_its_content_type(content_type) -> None:
    with HostileEtl(lambda query, n: Reply(content_type=content_type), token=TOKEN) as srv:
        client = _client(srv.url)
        try:
            (page,) = list(client.pages("track", W0, W1))
        finally:
            client.close()
    assert len(page.lines) == 0 and page.set_aside == ()


def test_a_page_with_calls_that_is_not_ndjson_is_a_transport_fault() -> None:
    with HostileEtl(lambda query, n: Reply(b"<html></html>\n", content_type="text/html"), token=TOKEN) as srv:
        client = _client(srv.url)
        try:
            with pytest.raises(EtlApiUnavailable, match="not NDJSON"):
                list(client.pages("track", W0, W1))
        finally:
            client.close()
        assert len(srv.calls_requests()) == FAST.attempts


# ---------------------------------------------------------------------------------------------
# Framing: the end of a page must be marked


def test_a_page_without_length_or_chunks_is_refused_as_its_end_cannot_be_told(calls) -> None:
    # Ends when the connection closes: a proxy cutting it after a line end would look the same.
    body = b"".join(line + b"\n" for line in calls)
    with HostileEtl(lambda query, n: Reply(body, framing="close"), token=TOKEN) as srv:
        client = _client(srv.url)
        try:
            with pytest.raises(EtlApiUnavailable, match="neither Content-Length nor chunked"):
                list(client.pages("track", W0, W1))
        finally:
            client.close()


@pytest.mark.parametrize("gzip_on", [False, True])
def test_a_chunked_page_is_read_whole(calls, gzip_on) -> None:
    body = b"".join(line + b"\n" for line in calls)
    headers = []
    if gzip_on:
        body, headers = gzip.compress(body), [("Content-Encoding", "gzip")]
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    with HostileEtl(lambda query, n: Reply(chunks=pieces, headers=headers, framing="chunked"), token=TOKEN) as srv:
        client = _client(srv.url)
        try:
            assert _all_lines(client.pages("track", W0, W1)) == calls
        finally:
            client.close()


def test_a_page_announcing_more_than_max_page_bytes_is_refused_before_it_is_read() -> None:
    # The body never comes: only refusing on the announced length ends this before the timeout.
    with HostileEtl(lambda query, n: Reply(chunks=[], content_length=2 * MiB), token=TOKEN) as srv:
        client = _client(srv.url, max_page_bytes=MiB, page_timeout=2.0)
        try:
            with pytest.raises(EtlApiError, match="MAX_PAGE_BYTES=1048576") as err:
                list(client.pages("track", W0, W1))
        finally:
            client.close()
    assert not err.value.transient


# ---------------------------------------------------------------------------------------------
# Hostile pages, generated: whatever the server does, a page is handed on whole and right, or
# the window stops (transiently, or permanently for an oversized page) before that page.

_hostile_line = st.binary(max_size=120).filter(lambda b: b"\n" not in b)
_hostile_page = st.fixed_dictionaries({
    "lines": st.lists(_hostile_line, max_size=12),
    "gzip": st.booleans(),
    "framing": st.sampled_from(["length", "chunked"]),
    "cuts": st.lists(st.integers(0, 5000), max_size=6),
    "cursor": st.sampled_from(["ok", "ok", "ok", "", " ", "a b", "\u00e9", "x" * (MAX_CURSOR_CHARS + 1)]),
})


@settings(max_examples=40, deadline=None)
@given(st.lists(_hostile_page, min_size=1, max_size=4), st.integers(40, 2000))
def test_hostile_pages_are_handed_on_whole_or_stop_the_window_before_them(pages, page_cap):
    line_cap = 64
    bodies = []
    for i, page in enumerate(pages):
        lines = [f"p{i}".encode(), *page["lines"]]  # no two pages alike (that would be a loop)
        bodies.append(b"".join(line + b"\n" for line in lines))

    def answer(query, n):
        i = int(query["cursor"][1:]) + 1 if "cursor" in query else 0
        page, body = pages[i], bodies[i]
        headers = []
        if page["cursor"] != "ok":  # a bad cursor, also on the last page
            headers.append(("X-Next-Cursor", page["cursor"]))
        elif i < len(pages) - 1:
            headers.append(("X-Next-Cursor", f"c{i}"))
        if page["gzip"]:
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return Reply(chunks=_split(body, page["cuts"]), content_length=len(body), headers=headers,
                     framing=page["framing"])

    # The first page with a bad cursor (checked first: transient) or over the cap (permanent)
    # stops the window; the pages before it are handed on, whole.
    stop_at, stop_kind = len(pages), None
    for i, page in enumerate(pages):
        if page["cursor"] != "ok" or len(bodies[i]) > page_cap:
            stop_at, stop_kind = i, "cursor" if page["cursor"] != "ok" else "size"
            break

    got = []
    error: Exception | None = None
    with HostileEtl(answer, token=TOKEN) as srv:
        client = _client(srv.url, max_page_bytes=page_cap)
        try:
            got.extend(client.pages("track", W0, W1, line_cap=line_cap))
        except Exception as exc:
            error = exc
        finally:
            client.close()
    assert len(got) == stop_at, (error, stop_kind)
    for page, body in zip(got, bodies, strict=False):
        lines = body.split(b"\n")[:-1]
        kept = [line for line in lines if len(line) <= line_cap]
        assert list(page.lines) == list(LineBlock.from_body(b"".join(k + b"\n" for k in kept)))
        assert [o.sha256 for _, o in page.set_aside] == [
            hashlib.sha256(line).hexdigest() for line in lines if len(line) > line_cap]
    if stop_kind == "cursor":
        assert isinstance(error, EtlApiUnavailable) and "X-Next-Cursor" in str(error), error
    elif stop_kind == "size":
        assert isinstance(error, EtlApiError) and not error.transient and "MAX_PAGE_BYTES" in str(error)
    else:
        assert error is None
