"""The ETL API emulator, exercised over loopback with a raw HTTP client."""

from __future__ import annotations

import gzip
import http.client
import json
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest

from emulator.faults import Fault
from emulator.server import EmulatorServer
from emulator.sources import FileSource, StaticSource, SyntheticSource
from emulator.synthetic import CALL_TYPES, generate_calls, write_ndjson

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "dev-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = "/v1/calls?type=track&start=2024-05-01T12:00:00Z&end=2024-05-01T12:10:00Z"  # for raw http.client


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def calls_url(srv: EmulatorServer, call_type: str, start: datetime | str, end: datetime | str,
              **extra) -> str:
    q = {"type": call_type, "start": start if isinstance(start, str) else iso(start),
         "end": end if isinstance(end, str) else iso(end)}
    q.update({k: str(v) for k, v in extra.items()})
    return f"{srv.url}/v1/calls?{urlencode(q)}"


def get(url: str, headers: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """GET with urllib; returns (status, lower-cased headers, raw body) also for error statuses."""
    req = urllib.request.Request(url, headers=AUTH if headers is None else headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def raw_get(srv: EmulatorServer, path_and_query: str, headers: dict | None = None, timeout: float = 5.0):
    """GET with http.client on a fresh connection; returns (connection, response) unread."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    conn.request("GET", path_and_query, headers=AUTH if headers is None else headers)
    return conn, conn.getresponse()


def fetch_all(srv: EmulatorServer, call_type: str, start, end, **extra) -> tuple[list[bytes], int]:
    """Follow X-Next-Cursor to the end; returns (lines, pages)."""
    lines: list[bytes] = []
    cursor = None
    pages = 0
    while True:
        params = dict(extra)
        if cursor:
            params["cursor"] = cursor
        status, headers, body = get(calls_url(srv, call_type, start, end, **params))
        assert status == 200, body
        pages += 1
        assert body == b"" or body.endswith(b"\n")
        lines.extend(body.splitlines(keepends=True))
        cursor = headers.get("x-next-cursor")
        if not cursor:
            return lines, pages
        assert pages < 1000


def make_calls(n: int, seed: int = 7) -> list[dict]:
    """Calls of all types around T0 with ties on receivedAt and mixed RFC 3339 spellings."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        when = T0 + timedelta(seconds=rng.randrange(-120, 720), milliseconds=rng.choice([0, 0, 250, 500]))
        style = i % 3
        if style == 0:
            received = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        elif style == 1:
            received = when.isoformat()  # +00:00, microseconds only when non-zero
        else:
            received = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}000+00:00"
        out.append({"messageId": f"m-{rng.randrange(10**6):06d}-{i}", "type": CALL_TYPES[i % 6],
                    "receivedAt": received, "properties": {"i": i, "score": 3.0, "name": "Zoë Ñandú"}})
    return out


def expected_lines(calls: list[dict], call_type: str, start: datetime, end: datetime) -> list[bytes]:
    def instant(c):
        return datetime.fromisoformat(c["receivedAt"])  # 3.11: accepts Z and 9-digit fractions

    sel = [c for c in calls if c["type"] == call_type and start <= instant(c) < end]
    sel.sort(key=lambda c: (instant(c), c["messageId"]))
    return [orjson.dumps(c) + b"\n" for c in sel]


@pytest.fixture
def calls() -> list[dict]:
    return make_calls(600)


@pytest.fixture
def srv(calls):
    with EmulatorServer(StaticSource(calls), token=TOKEN) as s:
        yield s


# ------------------------------------------------------------------------------------------------ basics


def test_destination_returns_the_configured_ids():
    with EmulatorServer(StaticSource([]), token=TOKEN, integration_id="42", action_id="7") as s:
        status, headers, body = get(f"{s.url}/v1/destination")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"integration_id": "42", "action_id": "7"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_missing_or_bad_token_is_401_with_json_error(srv, headers):
    for url in (f"{srv.url}/v1/destination", calls_url(srv, "track", T0, T0 + timedelta(minutes=10))):
        status, h, body = get(url, headers=headers)
        assert status == 401
        assert h["content-type"] == "application/json"
        assert "error" in json.loads(body)


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z"},  # missing type
        {"type": "bogus", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z"},
        {"type": "track", "start": "yesterday", "end": "2024-05-01T12:10:00Z"},
        {"type": "track", "start": "2024-05-01T12:00:00", "end": "2024-05-01T12:10:00Z"},  # no offset
        {"type": "track", "start": "2024-05-01T12:00:00Z"},  # missing end
        {"type": "track", "start": "2024-05-01T12:10:00Z", "end": "2024-05-01T12:10:00Z"},  # start == end
        {"type": "track", "start": "2024-05-01T12:10:00Z", "end": "2024-05-01T12:00:00Z"},
        {"type": "track", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z", "limit": "0"},
        {"type": "track", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z", "limit": "ten"},
        {"type": "track", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z", "limit": "-5"},
        {"type": "track", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z", "cursor": "!!"},
        {"type": "track", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:10:00Z", "cursor": "e30"},
    ],
)
def test_bad_parameters_are_400_with_json_error(srv, params):
    status, h, body = get(f"{srv.url}/v1/calls?{urlencode(params)}")
    assert status == 400
    assert h["content-type"] == "application/json"
    assert json.loads(body)["error"]


def test_unknown_path_is_404(srv):
    assert get(f"{srv.url}/v2/calls")[0] == 404


def test_open_window_is_409_with_retry_after_until_it_settles():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    with EmulatorServer(StaticSource([]), token=TOKEN, now=lambda: now, settle_seconds=60) as s:
        status, h, body = get(calls_url(s, "track", "2024-05-01T11:49:30Z", "2024-05-01T11:59:30Z"))
        assert status == 409
        assert h["retry-after"] == "30"
        assert "error" in json.loads(body)
        # barely open: still at least one second
        status, h, _ = get(calls_url(s, "track", "2024-05-01T11:49:00.5Z", "2024-05-01T11:59:00.5Z"))
        assert (status, h["retry-after"]) == (409, "1")
        # closed and settled
        assert get(calls_url(s, "track", "2024-05-01T11:49:00Z", "2024-05-01T11:59:00Z"))[0] == 200


def test_times_with_offsets_and_fractions_are_accepted(srv):
    status, _, _ = get(calls_url(srv, "page", "2024-05-01T14:00:00.000000+02:00", "2024-05-01T12:10:00.5Z"))
    assert status == 200


# ------------------------------------------------------------------------------------------------ pagination


def test_pages_with_a_limit_return_exactly_the_filtered_sorted_calls(srv, calls):
    start, end = T0, T0 + timedelta(minutes=10)
    for call_type in CALL_TYPES:
        want = expected_lines(calls, call_type, start, end)
        got, pages = fetch_all(srv, call_type, start, end, limit=7)
        assert got == want
        assert pages == max(1, -(-len(want) // 7))
    assert len(fetch_all(srv, "track", start, end)[0]) == len(expected_lines(calls, "track", start, end))


def test_asking_again_returns_the_same_bytes_and_cursors(srv):
    url = calls_url(srv, "track", T0, T0 + timedelta(minutes=10), limit=5)
    first, second = get(url), get(url)
    assert first[2] == second[2]
    assert first[1]["x-next-cursor"] == second[1]["x-next-cursor"]


def test_a_cursor_used_with_another_query_is_400(srv):
    _, h, _ = get(calls_url(srv, "track", T0, T0 + timedelta(minutes=10), limit=3))
    cursor = h["x-next-cursor"]
    assert get(calls_url(srv, "track", T0, T0 + timedelta(minutes=10), cursor=cursor, limit=3))[0] == 200
    assert get(calls_url(srv, "track", T0, T0 + timedelta(minutes=10), cursor=cursor, limit=50))[0] == 200
    assert get(calls_url(srv, "page", T0, T0 + timedelta(minutes=10), cursor=cursor))[0] == 400
    assert get(calls_url(srv, "track", T0, T0 + timedelta(minutes=20), cursor=cursor))[0] == 400


def test_empty_window_is_an_empty_200_without_cursor(srv):
    status, h, body = get(calls_url(srv, "alias", "2020-01-01T00:00:00Z", "2020-01-01T00:10:00Z"))
    assert (status, body, h["content-length"]) == (200, b"", "0")
    assert "x-next-cursor" not in h
    assert h["content-type"] == "application/x-ndjson"


def test_limit_above_the_cap_is_accepted(srv):
    assert get(calls_url(srv, "track", T0, T0 + timedelta(minutes=10), limit=10**9))[0] == 200


def test_gzip_when_accepted_and_identity_otherwise_carry_the_same_lines(srv):
    url = calls_url(srv, "track", T0, T0 + timedelta(minutes=10))
    _, plain_h, plain = get(url, headers={**AUTH, "Accept-Encoding": "identity"})
    _, gz_h, gz = get(url, headers={**AUTH, "Accept-Encoding": "br;q=1.0, gzip;q=0.8"})
    _, off_h, off = get(url, headers={**AUTH, "Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in plain_h and "content-encoding" not in off_h
    assert gz_h["content-encoding"] == "gzip"
    assert int(gz_h["content-length"]) == len(gz) < len(plain)
    assert gzip.decompress(gz) == plain == off
    assert plain.count(b"\n") > 10


def test_keep_alive_serves_many_requests_on_one_connection(srv):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        for _ in range(5):
            conn.request("GET", WINDOW, headers=AUTH)
            r = conn.getresponse()
            assert r.status == 200 and r.read().endswith(b"\n")
            conn.request("GET", "/v1/calls?type=nope", headers=AUTH)
            r = conn.getresponse()
            assert r.status == 400 and json.loads(r.read())
    finally:
        conn.close()


def test_request_log_records_requests_without_the_token(srv):
    url = calls_url(srv, "track", T0, T0 + timedelta(minutes=10), limit=2)
    get(url, headers={**AUTH, "Accept-Encoding": "gzip"})
    get(f"{srv.url}/v1/destination", headers={})
    first, second = srv.request_log[-2:]
    assert first.pop("at") <= second["at"]  # monotonic arrival time
    assert first == {"method": "GET", "path": "/v1/calls", "status": 200, "accept_encoding": "gzip",
                     "query": {"type": "track", "start": iso(T0), "end": iso(T0 + timedelta(minutes=10)),
                               "limit": "2"}}
    assert (second["path"], second["status"]) == ("/v1/destination", 401)
    assert TOKEN not in repr(srv.request_log)


# ------------------------------------------------------------------------------------------------ sources


def test_static_raw_lines_are_served_verbatim():
    raw = [
        ("track", "2024-05-01T12:00:01Z", b"this is not json\n"),
        ("track", "2024-05-01T12:00:02.5+00:00", b'{"type":"identify","messageId":"x"}'),  # wrong type, no \n
        ("track", T0 + timedelta(seconds=3), b'{"messageId":"big","blob":"' + b"x" * 200_000 + b'"}\n'),
        ("track", "2024-05-01T12:00:00Z", b'{"messageId":"b"}\n'),
        ("track", "2024-05-01T12:00:00.000Z", b'{"messageId":"a"}\n'),  # same instant: messageId decides
        ("page", "2024-05-01T12:00:00Z", b'{"messageId":"other type"}\n'),
    ]
    with EmulatorServer(StaticSource(raw), token=TOKEN) as s:
        status, _, body = get(calls_url(s, "track", T0, T0 + timedelta(minutes=1)))
    assert status == 200
    assert body == (b'{"messageId":"a"}\n{"messageId":"b"}\nthis is not json\n'
                    b'{"type":"identify","messageId":"x"}\n' + raw[2][2])


def test_static_source_add_appends_later_calls(calls):
    src = StaticSource(calls[:300])
    src.add(calls[300:])
    end = T0 + timedelta(minutes=10)
    assert src.query("track", T0, end) == expected_lines(calls, "track", T0, end)


def test_synthetic_windows_are_deterministic_and_seed_dependent():
    start, end = "2024-05-01T00:00:00Z", "2024-05-01T00:30:00Z"
    with EmulatorServer(SyntheticSource(seed=1), token=TOKEN) as a, \
            EmulatorServer(SyntheticSource(seed=1), token=TOKEN) as b, \
            EmulatorServer(SyntheticSource(seed=2), token=TOKEN) as c:
        # b asks for a later overlapping window first: order of queries must not matter
        get(calls_url(b, "track", "2024-05-01T00:20:00Z", "2024-05-01T01:00:00Z"))
        body_a = get(calls_url(a, "track", start, end))[2]
        assert body_a == get(calls_url(a, "track", start, end))[2]
        assert body_a == get(calls_url(b, "track", start, end))[2]
        assert body_a != get(calls_url(c, "track", start, end))[2]
    lines = body_a.splitlines()
    assert len(lines) > 100
    parsed = [orjson.loads(x) for x in lines]
    assert all(p["type"] == "track" and start <= p["receivedAt"] < "2024-05-01T00:30" for p in parsed)
    assert [(p["receivedAt"], p["messageId"]) for p in parsed] == sorted((p["receivedAt"], p["messageId"])
                                                                         for p in parsed)


def test_synthetic_calls_look_like_segment_calls():
    start = datetime(2024, 5, 1, tzinfo=UTC)
    calls = list(generate_calls(3, start, start + timedelta(minutes=60), 30))
    assert len(calls) == 1800
    types = {t: sum(c["type"] == t for c in calls) for t in CALL_TYPES}
    assert types["track"] > types["page"] > types["identify"] > types["alias"] > 0
    assert 1000 < sum(len(orjson.dumps(c)) for c in calls) / len(calls) < 2000
    for c in calls:
        assert {"messageId", "type", "timestamp", "sentAt", "receivedAt", "context"} <= c.keys()
        assert c["receivedAt"].endswith("Z") and len(c["receivedAt"]) == 24
    assert any(c.get("userId") is None for c in calls) and any("anonymousId" not in c for c in calls)
    src = SyntheticSource(seed=3)
    want = [orjson.dumps(c) + b"\n" for c in calls if c["type"] == "identify"]
    assert src.query("identify", start, start + timedelta(minutes=60)) == want


def test_file_source_serves_the_same_bytes_as_static_source(tmp_path, calls):
    shuffled = calls[:]
    random.Random(1).shuffle(shuffled)
    path = tmp_path / "calls.ndjson"
    with open(path, "wb") as f:
        f.write(b"not json\n\n")
        f.writelines(orjson.dumps(c) + b"\n" for c in shuffled)
        f.write(b'{"type":"track"}')  # no receivedAt, no final newline
    fsrc = FileSource(path)
    assert (fsrc.count, fsrc.skipped) == (len(calls), 2)
    with EmulatorServer(fsrc, token=TOKEN) as fs, EmulatorServer(StaticSource(calls), token=TOKEN) as ss:
        for call_type in CALL_TYPES:
            assert fetch_all(fs, call_type, T0, T0 + timedelta(minutes=10), limit=9) == \
                fetch_all(ss, call_type, T0, T0 + timedelta(minutes=10), limit=9)


def test_generated_file_is_sorted_spread_and_readable(tmp_path):
    path = tmp_path / "gen.ndjson"
    with open(path, "wb") as f:
        write_ndjson(f, 3000, T0, minutes=1, seed=5)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3000
    keys = [(c["receivedAt"], c["messageId"]) for c in map(orjson.loads, lines)]
    assert keys == sorted(keys) and len({k[1] for k in keys}) == 3000
    assert keys[0][0] == "2024-05-01T12:00:00.000Z" and keys[-1][0].startswith("2024-05-01T12:00:59.9")
    src = FileSource(path)
    assert (src.count, src.skipped) == (3000, 0)
    got = sum(len(src.query(t, T0, T0 + timedelta(minutes=1))) for t in CALL_TYPES)
    assert got == 3000


# ------------------------------------------------------------------------------------------------ faults



def test_status_fault_answers_once_then_is_used_up(srv):
    srv.add_fault(Fault("status", status=429, retry_after=7))
    conn, r = raw_get(srv, WINDOW)
    assert (r.status, r.getheader("Retry-After"), json.loads(r.read())) == (429, "7", {"error": "injected"})
    conn.request("GET", WINDOW, headers=AUTH)  # same keep-alive connection, fault used up
    assert conn.getresponse().status == 200
    conn.close()


def test_fault_skips_after_and_filters_by_type_and_path(srv):
    srv.add_fault(Fault("status", call_type="track", after=1, times=2, status=503))
    srv.add_fault(Fault("status", path="/v1/destination", status=500))
    page = WINDOW.replace("type=track", "type=page")
    statuses = [raw_get(srv, p)[1].status for p in (page, WINDOW, WINDOW, page, WINDOW, WINDOW)]
    assert statuses == [200, 200, 503, 200, 503, 200]
    assert raw_get(srv, "/v1/destination")[1].status == 500
    assert raw_get(srv, "/v1/destination")[1].status == 200


def test_reset_fault_drops_the_connection_without_a_response(srv):
    srv.add_fault(Fault("reset"))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw_get(srv, WINDOW)
    assert raw_get(srv, WINDOW)[1].status == 200


def test_delay_fault_triggers_a_client_read_timeout(srv):
    srv.add_fault(Fault("delay", delay=1.0))
    with pytest.raises(TimeoutError):
        raw_get(srv, WINDOW, timeout=0.2)


def test_truncate_fault_breaks_off_the_body(srv):
    srv.add_fault(Fault("truncate"))
    _, r = raw_get(srv, WINDOW, headers={**AUTH, "Accept-Encoding": "identity"})
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead) as e:
        r.read()
    assert e.value.partial and not e.value.partial.endswith(b"\n")


def test_no_final_newline_fault_drops_only_the_last_newline(srv):
    full = raw_get(srv, WINDOW)[1].read()
    srv.add_fault(Fault("no_final_newline"))
    _, r = raw_get(srv, WINDOW)
    assert r.read() == full[:-1]


def test_html_fault_is_a_200_html_page(srv):
    srv.add_fault(Fault("html"))
    _, r = raw_get(srv, WINDOW)
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
    assert r.read().lstrip().lower().startswith(b"<!doctype html")


def test_loop_cursor_fault_points_back_at_the_same_page(srv):
    srv.add_fault(Fault("loop_cursor", times=2))
    _, r = raw_get(srv, WINDOW)
    first_body, cursor = r.read(), r.getheader("X-Next-Cursor")
    assert cursor
    _, r = raw_get(srv, f"{WINDOW}&cursor={cursor}")
    assert r.read() == first_body and r.getheader("X-Next-Cursor") == cursor


def test_bad_gzip_fault_cannot_be_decompressed(srv):
    srv.add_fault(Fault("bad_gzip"))
    _, r = raw_get(srv, WINDOW)
    assert r.getheader("Content-Encoding") == "gzip"
    with pytest.raises((OSError, EOFError, zlib.error)):
        gzip.decompress(r.read())


@pytest.mark.parametrize("cursor", ["", "a b"])
def test_bad_cursor_fault_sends_the_given_cursor_with_the_normal_page(srv, cursor):
    full = raw_get(srv, WINDOW)[1].read()
    srv.add_fault(Fault("bad_cursor", cursor=cursor))
    _, r = raw_get(srv, WINDOW)
    assert r.read() == full
    assert r.headers.get_all("X-Next-Cursor") == [cursor]


def test_drip_fault_sends_the_normal_page_slowly_in_single_bytes(srv):
    full = raw_get(srv, WINDOW, headers={**AUTH, "Accept-Encoding": "identity"})[1].read()
    srv.add_fault(Fault("drip", delay=0.1, drip_bytes=5))
    started = time.monotonic()
    _, r = raw_get(srv, WINDOW, headers={**AUTH, "Accept-Encoding": "identity"})
    assert r.read() == full
    assert time.monotonic() - started >= 0.45  # five pauses of 0.1 s before the rest


def test_unknown_fault_kind_is_rejected():
    with pytest.raises(ValueError):
        Fault("explode")


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_serve_announces_its_url_and_exits_cleanly_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "serve", "--port", "0", "--rate", "5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("ETL API emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert get(f"{url}/v1/destination")[2] == b'{"integration_id":"2184","action_id":"13699"}'
        status, _, body = get(f"{url}{WINDOW}")
        assert status == 200 and body.count(b"\n") > 10
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
