"""The ETL API client (docs/etl-api.md): bearer token, cursor pages of NDJSON, retries.

Transport: one urllib3 pool (HTTP keep-alive), gzip asked for, explicit timeouts. urllib3's own
retries are off: this module is the only place that retries an ETL API request, because only it
knows the contract (which statuses are transient, Retry-After, what a broken page looks like).
A page is read whole before any of its lines is handed on, so a page that breaks off (or holds
more bytes than its Content-Length, :func:`_buffered_past`) is simply asked again, and where two
pages meet their order is checked (:mod:`shared.page_order`): a call repeated at the boundary is
dead-lettered, a page that goes back is a pagination loop.

Everything a server sends is bounded (docs/etl-api.md "Limits"): a page is read and decompressed
as a stream under the page and line caps (:mod:`shared.page_reader`), every request has a total
deadline that a server dripping bytes cannot stretch (:class:`_Watch`), a window has a maximum
number of pages, and the caller's unit deadline ends everything.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import random
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from shared.errors import EtlApiError, EtlApiUnavailable, UnitBudgetExceeded, WindowNotClosed
from shared.lines import LineBlock
from shared.netloc import is_loopback
from shared.page_order import REPEAT_REASON, OutOfOrder, PageOrder
from shared.page_reader import (
    LINE_CAP_FLOOR,
    STEP,
    BodyError,
    Inflater,
    Page,
    PageAssembler,
    PageTooLarge,
    read_capped,
)
from shared.redact import redact_url, untrusted
from shared.windows import format_rfc3339

log = logging.getLogger(__name__)

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-seq", "application/ndjson")
# Calls asked for per page: ~3 MB of a typical workspace's calls, one parse batch. A page is read
# whole before its lines are used (a broken page is simply asked again), so this bounds the memory
# a page takes; the next page is fetched while this one is parsed, so small pages cost no speed.
PAGE_LIMIT = 2_000
#: Defaults of ETL_PAGE_TIMEOUT_SECONDS, MAX_PAGES_PER_WINDOW and MAX_PAGE_BYTES (shared/settings.py).
PAGE_TIMEOUT = 60.0
MAX_PAGES = 10_000
MAX_PAGE_BYTES = 64 * 1024 * 1024
#: An X-Next-Cursor is 1 to this many printable ASCII characters (docs/etl-api.md "Pagination").
MAX_CURSOR_CHARS = 4096
_CURSOR = re.compile(rf"[\x21-\x7e]{{1,{MAX_CURSOR_CHARS}}}")
#: Bytes read of an error body or of a body that is not NDJSON (the rest is not read at all).
ERROR_BODY_BYTES = 64 * 1024
#: Bytes a JSON answer (``GET /v1/destination``) may have.
JSON_BODY_BYTES = 1024 * 1024
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
PERMANENT_HINTS = {
    400: "the ETL API rejected the request parameters",
    401: "the ETL API rejected the token: check ETL_API_TOKEN",
    403: "the ETL API token is not allowed to read this destination: check ETL_API_TOKEN",
    404: "the ETL API has no such endpoint: check ETL_API_ENDPOINT",
}


@dataclass(frozen=True)
class Destination:
    integration_id: str
    action_id: str

    @property
    def key(self) -> str:
        return f"{self.integration_id}.{self.action_id}"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before the window fails (the next run tries again)."""

    attempts: int = 6
    backoff_base: float = 0.5  # seconds; doubled each attempt, with full jitter
    backoff_max: float = 30.0
    retry_after_max: float = 120.0


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection (or it broke): the endpoint may be wrong


def next_cursor(values: list[str]) -> str | None:
    """The cursor of the next page from a page's ``X-Next-Cursor`` header values.

    None only when the header is absent: that is the last page. An empty, repeated or malformed
    header raises ValueError (a protocol error, never the end of the window): a cursor is 1 to
    :data:`MAX_CURSOR_CHARS` printable ASCII characters (``!`` to ``~``), after the optional
    whitespace around a header value is dropped.
    """
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"the page has {len(values)} X-Next-Cursor headers")
    value = values[0].strip(" \t")
    if not value:
        raise ValueError("the page has an empty X-Next-Cursor header")
    if not _CURSOR.fullmatch(value):
        shown = repr(untrusted(value, 24))
        raise ValueError(
            f"the page has a malformed X-Next-Cursor ({len(value)} characters, {shown}): a cursor is "
            f"1 to {MAX_CURSOR_CHARS} printable ASCII characters"
        )
    return value


_watched = threading.local()


class _Watch:
    """Ends one request at its deadline, whatever the server does.

    urllib3's read timeout applies to each socket read, so a server that sends a byte now and
    then (in the headers or the body) never trips it. At the deadline the watch shuts the
    request's socket down, which wakes the blocked read; the request then fails as a transient
    fault. The connection is bound by :class:`_WatchedConnection` when it connects or sends.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self.at = time.monotonic() + max(0.0, seconds)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._done = False

    def __enter__(self) -> _Watch:
        _watched.current = self
        _watchdog.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        _watched.current = None

    def bind(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            if self.fired and not self._done:
                _shut(conn)

    def fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._conn is not None:
                _shut(self._conn)


class _Watchdog:
    """One daemon thread that fires every :class:`_Watch` at its time (a thread per request
    would cost a thread start on every page)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._count = 0
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._cond:
            self._count += 1
            heapq.heappush(self._heap, (watch.at, self._count, watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="etl-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                at, _, watch = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            watch.fire()  # a watch whose request is over does nothing


_watchdog = _Watchdog()


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # the plain socket's shutdown (also under TLS): it wakes the reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _bind(conn: Any) -> None:
    watch = getattr(_watched, "current", None)
    if watch is not None:
        watch.bind(conn)


class _Watched:
    """Binds a connection to the request's watch (mixed into the plain and the TLS connection)."""

    def connect(self) -> None:
        _bind(self)
        super().connect()  # type: ignore[misc]
        _bind(self)  # the socket exists now: a watch that fired meanwhile shuts it

    def request(self, *args: Any, **kwargs: Any) -> None:
        _bind(self)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedConnection(_Watched, HTTPConnection):
    pass


class _WatchedTlsConnection(_Watched, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedTlsConnection


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


#: What a destination id may be: it goes into every file name and into the state table's keys.
DESTINATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def destination_id(value: object) -> str:
    """A destination id from ``GET /v1/destination`` (a string or a whole number), or EtlApiError.

    ASCII letters, digits, '-' and '_' only, 1 to 64 of them: ``str.isalnum`` would let in other
    scripts' digits (file names no tool expects) and no cap let a 600-character id reach Table
    storage as an invalid key.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not DESTINATION_ID.fullmatch(value):
        shown = repr(untrusted(value if isinstance(value, str) else repr(value), 80))
        raise EtlApiError(
            f"GET /v1/destination returned an id {shown} that cannot be used in file names: an id "
            "must be 1-64 ASCII letters, digits, '-' or '_'; get the ETL API's destination fixed"
        )
    return value


def _ns(moment: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (the order keys' unit)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EtlClient:
    """Reads one destination's calls. Thread-safe (the pool is)."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        page_limit: int = PAGE_LIMIT,
        deadline: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        gzip: bool | None = None,
        page_timeout: float = PAGE_TIMEOUT,
        max_pages: int = MAX_PAGES,
        max_page_bytes: int = MAX_PAGE_BYTES,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        if gzip is None:
            # Compression pays off on a real network; on loopback (the local emulator) it only
            # burns CPU on both ends, so it is not asked for there.
            gzip = not is_loopback(urlsplit(self._endpoint).hostname)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/x-ndjson, application/json",
            "Accept-Encoding": "gzip" if gzip else "identity",
            "User-Agent": "cdp-blob-exporter/1",
        }
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=4,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )
        self._pool.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._retry = retry or RetryPolicy()
        self._page_limit = page_limit
        self._deadline = deadline  # monotonic time after which no new attempt starts
        self._sleep = sleep
        self._page_timeout = page_timeout
        self._max_pages = max_pages
        self._max_page_bytes = max_page_bytes

    def close(self) -> None:
        self._pool.clear()

    # ------------------------------------------------------------------------------------
    def destination(self) -> Destination:
        """``GET /v1/destination``: the ids used in file names."""
        body, _ = self._get("/v1/destination", {}, expect_ndjson=False)
        try:
            data = json.loads(body)
            raw = (data["integration_id"], data["action_id"])
        except (ValueError, KeyError, TypeError):
            raise EtlApiError(
                "GET /v1/destination did not return {integration_id, action_id}"
            ) from None
        integration_id, action_id = (destination_id(value) for value in raw)
        return Destination(integration_id, action_id)

    def pages(
        self,
        call_type: str,
        start: datetime,
        end: datetime,
        *,
        line_cap: int = LINE_CAP_FLOOR,
        deadline: float | None = None,
    ) -> Iterator[Page]:
        """Yield the window's calls page by page, each page's lines in one :class:`Page`.

        ``line_cap``: lines longer than this are left out of the page's lines and handed on as
        their length, hash and prefix (``Page.set_aside``). ``deadline``: the unit's monotonic
        deadline; past it :class:`UnitBudgetExceeded` is raised.

        Raises EtlApiError (permanent), WindowNotClosed, EtlApiUnavailable (retries spent, a
        protocol error, too many pages) or UnitBudgetExceeded.
        """
        params = {
            "type": call_type,
            "start": format_rfc3339(start),
            "end": format_rfc3339(end),
            "limit": str(self._page_limit),
        }
        seen: set[int] = set()  # hashes of the cursors (up to MAX_PAGES_PER_WINDOW of 4 KiB each)
        # A loop back to an earlier page is invisible in the cursors when it goes back to the
        # first page (which has none), and a server may issue fresh cursors for old pages; the
        # contract's order (receivedAt, messageId) shows it where the pages meet. Only one key
        # is kept, and only the lines at the boundary are decoded (shared/page_order.py).
        order = PageOrder(_ns(start), _ns(end))
        cursor: str | None = None
        count = 0
        while True:
            if count >= self._max_pages:
                raise EtlApiUnavailable(
                    f"the ETL API still sent a cursor after MAX_PAGES_PER_WINDOW={self._max_pages} pages "
                    f"of {call_type} {params['start']}..{params['end']}; nothing of the window is "
                    "committed and the next run asks again (if the window really has more pages, "
                    "raise MAX_PAGES_PER_WINDOW)"
                )
            query = dict(params, cursor=cursor) if cursor else params
            page, next_cursor = self._get(
                "/v1/calls", query, expect_ndjson=True, line_cap=line_cap, deadline=deadline
            )
            count += 1
            try:
                repeats = order.check(page.lines)
            except OutOfOrder as exc:
                raise self._loop(call_type, params, str(exc)) from None
            if repeats:
                log.warning(
                    "%s %s..%s: page %d starts with %d call(s) repeating the previous page's last "
                    "call; they go to the dead-letter file, not to the data",
                    call_type, params["start"], params["end"], count, len(repeats),
                )
                page = page.without(repeats, REPEAT_REASON)
            yield page
            if next_cursor is None:  # only an absent X-Next-Cursor ends the window
                return
            if hash(next_cursor) in seen or next_cursor == cursor:
                raise self._loop(call_type, params, "it returned a cursor it had already returned")
            seen.add(hash(next_cursor))
            cursor = next_cursor

    @staticmethod
    def _loop(call_type: str, params: dict[str, str], why: str) -> EtlApiUnavailable:
        # Transient for the window: nothing of it is committed as done, the next run asks again.
        return EtlApiUnavailable(
            f"the ETL API went back in {call_type} {params['start']}..{params['end']} (a pagination "
            f"loop, or a server that pages out of order): {why}; nothing of that page is used and "
            "the window is retried on the next run"
        )

    # ------------------------------------------------------------------------------------
    def _get(
        self,
        path: str,
        query: dict[str, str],
        *,
        expect_ndjson: bool,
        line_cap: int = LINE_CAP_FLOOR,
        deadline: float | None = None,
    ) -> tuple[Any, str | None]:
        """One request with retries: ``(body bytes, None)`` for JSON, ``(Page, cursor)`` for NDJSON."""
        url = f"{self._endpoint}{path}"
        if query:
            url += "?" + urlencode(query)
        policy = self._retry
        last: _Transient | None = None
        for attempt in range(1, policy.attempts + 1):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise self._out_of_time(path, last)
            stop = now + self._page_timeout
            why = f"no whole answer within ETL_PAGE_TIMEOUT_SECONDS={self._page_timeout:g}"
            if deadline is not None and deadline < stop:
                stop, why = deadline, "the unit's UNIT_BUDGET_SECONDS ran out during the request"
            try:
                return self._attempt(url, path, query, expect_ndjson, line_cap, stop, why)
            except _Transient as fault:
                last = fault
            if attempt == policy.attempts:
                break
            delay = min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))
            delay = random.uniform(0, delay)
            if last.retry_after is not None:
                delay = max(delay, min(last.retry_after, policy.retry_after_max))
            if deadline is not None and time.monotonic() + delay > deadline:
                raise self._out_of_time(path, last)
            if self._deadline is not None and time.monotonic() + delay > self._deadline():
                break
            log.warning(
                "ETL API %s failed (%s); retry %d/%d in %.1fs",
                path, last, attempt, policy.attempts - 1, delay,
            )
            self._sleep(delay)
        assert last is not None
        where = (f" ({redact_url(self._endpoint)}): check ETL_API_ENDPOINT and that the API is reachable"
                 if last.unreachable else "")
        raise EtlApiUnavailable(f"ETL API {path} kept failing: {last}{where}", status=None)

    @staticmethod
    def _out_of_time(path: str, last: _Transient | None) -> UnitBudgetExceeded:
        detail = f" (last fault: {last})" if last is not None else ""
        return UnitBudgetExceeded(
            f"UNIT_BUDGET_SECONDS ran out while reading ETL API {path}{detail}; nothing of the "
            "window is committed and the next run resumes it (if this repeats, raise UNIT_BUDGET_SECONDS)"
        )

    def _attempt(
        self,
        url: str,
        path: str,
        query: dict[str, str],
        expect_ndjson: bool,
        line_cap: int,
        stop: float,
        why: str,
    ) -> tuple[Any, str | None]:
        remaining = stop - time.monotonic()
        if remaining <= 0:
            raise _Transient(why)
        timeout = urllib3.Timeout(
            connect=min(self._connect_timeout, remaining), read=min(self._read_timeout, remaining)
        )
        with _Watch(remaining) as watch:
            try:
                resp = self._pool.request(
                    "GET", url, headers=self._headers, preload_content=False, redirect=False,
                    timeout=timeout,
                )
            except Urllib3Error as exc:
                if watch.fired:
                    raise _Transient(why) from None
                raise _Transient(f"connection failed: {type(exc).__name__}", unreachable=True) from None
            whole = False  # the body was read to its end: the connection can be used again
            try:
                status = resp.status
                if status == 200:
                    mime = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if not expect_ndjson:
                        if mime != "application/json":
                            raise _Transient(f"expected JSON, got Content-Type {untrusted(mime, 60) or 'missing'}")
                        try:
                            body = read_capped(self._pieces(resp, stop, why, watch), JSON_BODY_BYTES)
                        except PageTooLarge:
                            raise EtlApiError(
                                f"GET {path} answered with more than {JSON_BODY_BYTES} bytes; "
                                "check ETL_API_ENDPOINT"
                            ) from None
                        whole = True
                        return body, None
                    try:
                        cursor = next_cursor(resp.headers.getlist("X-Next-Cursor"))
                    except ValueError as exc:
                        raise _Transient(str(exc)) from None
                    if mime not in NDJSON_TYPES:
                        # An empty page (no calls) carries nothing to misread, whatever its type.
                        if self._some(resp, stop, why, watch, strict=True):
                            shown = untrusted(mime, 60) or "missing"
                            raise _Transient(f"the page is not NDJSON (Content-Type {shown})")
                        whole = True
                        return Page(LineBlock.from_body(b"")), cursor
                    page = self._page(resp, query, line_cap, stop, why, watch)
                    whole = True
                    return page, cursor
                body = self._some(resp, stop, why, watch)
            finally:
                if not whole:
                    resp.close()  # whatever is left unread must not reach the next request
                resp.release_conn()
        detail = _error_detail(body)
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        if status == 409:
            raise WindowNotClosed(f"the ETL API says the window is not closed yet ({detail})", retry_after)
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _Transient(f"HTTP {status} {detail}".strip(), retry_after)
        hint = PERMANENT_HINTS.get(status, f"the ETL API answered HTTP {status}")
        raise EtlApiError(f"{hint} (GET {path}: HTTP {status} {detail})".strip(), status=status)

    def _page(
        self, resp: Any, query: dict[str, str], line_cap: int, stop: float, why: str, watch: _Watch
    ) -> Page:
        length = resp.headers.get("Content-Length")
        if length is None and "chunked" not in resp.headers.get("Transfer-Encoding", "").lower():
            # Read until the connection closes: a body cut off at a line end would look whole.
            raise _Transient("the page has neither Content-Length nor chunked framing")
        assembler = PageAssembler(self._max_page_bytes, line_cap)
        try:
            encoding = resp.headers.get("Content-Encoding", "").strip().lower()
            if length is not None and encoding in ("", "identity") and length.strip().isdigit() \
                    and int(length) > self._max_page_bytes:
                raise PageTooLarge(self._max_page_bytes)  # no need to read it to know
            for piece in self._pieces(resp, stop, why, watch):
                assembler.feed(piece)
            return assembler.finish()
        except BodyError as exc:
            raise _Transient(str(exc)) from None
        except PageTooLarge:
            raise EtlApiError(
                f"a page of {query.get('type')} {query.get('start')}..{query.get('end')} is over "
                f"MAX_PAGE_BYTES={self._max_page_bytes} bytes decompressed; raise MAX_PAGE_BYTES if "
                f"its calls really are that large, or ask the ETL API owners why a page of at most "
                f"{query.get('limit')} calls is this big"
            ) from None

    @staticmethod
    def _pieces(resp: Any, stop: float, why: str, watch: _Watch) -> Iterator[bytes]:
        """The decompressed body in pieces of at most one step; raises _Transient on a broken
        body, on bytes past its Content-Length, or past ``stop``."""
        framed = resp.length_remaining is not None  # Content-Length framing (None: chunked)
        sock = getattr(resp.connection, "sock", None)
        # urllib3 hands the connection back to its pool as soon as the body's last byte is read;
        # it must stay ours until the bytes after the body have been looked for.
        pool, resp._pool = resp._pool, None
        try:
            inflater = Inflater(resp.headers.get("Content-Encoding", ""))
            looked = False
            while True:
                amt = STEP
                left = resp.length_remaining
                if framed and left is not None:
                    if left > 1:
                        amt = min(STEP, left - 1)  # the last byte is read on its own, below
                    elif not looked:
                        # The body's last byte is all that is due (or nothing): look at what the
                        # HTTP client's read buffer already holds before it drops the buffer.
                        looked = True
                        if _buffered_past(resp, sock, left):
                            raise _Transient(_PAST_LENGTH)
                try:
                    raw = resp.read1(amt, decode_content=False)
                except Urllib3Error as exc:
                    raise _Transient(
                        why if watch.fired else f"the response broke off: {type(exc).__name__}"
                    ) from None
                if watch.fired or time.monotonic() > stop:
                    raise _Transient(why)
                if not raw:
                    break
                yield from inflater.pieces(raw)
            inflater.finish()
            if framed and _readable_now(sock):  # what came after the last byte, on the socket
                raise _Transient(_PAST_LENGTH)
        except BodyError as exc:
            raise _Transient(str(exc)) from None
        finally:
            resp._pool = pool

    def _some(self, resp: Any, stop: float, why: str, watch: _Watch, *, strict: bool = False) -> bytes:
        """Up to :data:`ERROR_BODY_BYTES` of a body. A broken body raises _Transient when
        ``strict``; otherwise (the detail of an error answer) what arrived is enough."""
        out = bytearray()
        try:
            for piece in self._pieces(resp, stop, why, watch):
                out += piece[: ERROR_BODY_BYTES - len(out)]
                if len(out) >= ERROR_BODY_BYTES:
                    break
        except _Transient:
            if strict:
                raise
        return bytes(out)


_PAST_LENGTH = (
    "the page has more bytes than its Content-Length (a server that counts characters, not "
    "bytes?): the page is not taken as whole and the connection is dropped"
)


def _buffered_past(resp: Any, sock: Any, left: int) -> bool:
    """Whether more than the ``left`` bytes still due of a Content-Length body are in the HTTP
    client's read buffer (when it is empty: one read of what has arrived, without waiting)."""
    reader = getattr(getattr(resp, "_fp", None), "fp", None)  # http.client's buffered reader
    if reader is None or sock is None or getattr(reader, "closed", True):
        return False
    timeout = sock.gettimeout()
    try:
        sock.settimeout(0)
        ahead = reader.peek(left + 1)
    except (OSError, ValueError):  # nothing has arrived (TLS says so by raising) or a broken socket
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return len(ahead) > left


def _readable_now(sock: Any) -> bool:
    """Whether bytes (not merely the end of the stream) can be read from ``sock`` at once."""
    if sock is None:
        return False
    try:
        if isinstance(sock, ssl.SSLSocket):
            if sock.pending():
                return True
            if not select.select([sock], [], [], 0)[0]:
                return False
            timeout = sock.gettimeout()
            sock.settimeout(0)
            try:
                return bool(sock.recv(1))  # a byte is consumed only when the connection is dropped
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            finally:
                sock.settimeout(timeout)
        if not select.select([sock], [], [], 0)[0]:
            return False
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (OSError, ValueError):
        return False  # a broken connection: the pool finds it dropped and does not reuse it


def _error_detail(body: bytes) -> str:
    """The ``error`` text of an error body, made safe to show: the server is not trusted, so its
    text is cut to a short prefix, stripped of control characters and redacted (it may echo the
    token back)."""
    if not body or len(body) >= ERROR_BODY_BYTES:
        return ""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return untrusted(data["error"])
    except ValueError:
        pass
    return ""
