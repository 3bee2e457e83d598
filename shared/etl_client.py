"""The ETL API client (docs/etl-api.md): bearer token, cursor pages of NDJSON, retries.

Transport: one urllib3 pool (HTTP keep-alive), gzip asked for, explicit timeouts. urllib3's own
retries are off: this module is the only place that retries an ETL API request, because only it
knows the contract (which statuses are transient, Retry-After, what a broken page looks like).
A page is read whole before any of its lines is handed on, so a page that breaks off is simply
asked again and no call is ever seen twice.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from shared.errors import EtlApiError, EtlApiUnavailable, WindowNotClosed
from shared.lines import LineBlock
from shared.redact import untrusted
from shared.settings import is_loopback
from shared.windows import format_rfc3339

log = logging.getLogger(__name__)

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-seq", "application/ndjson")
# Calls asked for per page: ~3 MB of a typical workspace's calls, one parse batch. A page is read
# whole before its lines are used (a broken page is simply asked again), so this bounds the memory
# a page takes; the next page is fetched while this one is parsed, so small pages cost no speed.
PAGE_LIMIT = 2_000
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
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
        self._retry = retry or RetryPolicy()
        self._page_limit = page_limit
        self._deadline = deadline  # monotonic time after which no new attempt starts
        self._sleep = sleep

    def close(self) -> None:
        self._pool.clear()

    # ------------------------------------------------------------------------------------
    def destination(self) -> Destination:
        """``GET /v1/destination``: the ids used in file names."""
        body, _ = self._get("/v1/destination", {}, expect_ndjson=False)
        try:
            data = json.loads(body)
            integration_id, action_id = str(data["integration_id"]), str(data["action_id"])
        except (ValueError, KeyError, TypeError):
            raise EtlApiError(
                "GET /v1/destination did not return {integration_id, action_id}"
            ) from None
        for value in (integration_id, action_id):
            if not value or not all(c.isalnum() or c in "-_" for c in value):
                raise EtlApiError(
                    f"GET /v1/destination returned an id {untrusted(value, 80)!r} that cannot be used in a file name"
                )
        return Destination(integration_id, action_id)

    def pages(self, call_type: str, start: datetime, end: datetime) -> Iterator[LineBlock]:
        """Yield the window's calls page by page, each page's lines in one :class:`LineBlock`.

        Raises EtlApiError (permanent), WindowNotClosed, or EtlApiUnavailable (retries spent).
        """
        params = {
            "type": call_type,
            "start": format_rfc3339(start),
            "end": format_rfc3339(end),
            "limit": str(self._page_limit),
        }
        seen: set[str] = set()
        # A loop back to the first page is invisible in the cursors (the first page has none), so
        # a page whose body was already seen is a loop too; it is caught before its lines are
        # handed on, so no call is ever passed twice.
        seen_bodies: set[tuple[int, int, int]] = set()
        cursor: str | None = None
        while True:
            query = dict(params, cursor=cursor) if cursor else params
            body, next_cursor = self._get("/v1/calls", query, expect_ndjson=True)
            if body:
                # Length plus the first and last 4 KiB (whole calls with their messageIds): a
                # repeat is spotted without hashing every byte of every page a second time.
                digest = (len(body), hash(body[:4096]), hash(body[-4096:]))
                if digest in seen_bodies:
                    raise self._loop(call_type, params)
                seen_bodies.add(digest)
            yield LineBlock.from_body(body)  # the framing guarantees a final "\n"; no copy
            if not next_cursor:
                return
            if next_cursor in seen or next_cursor == cursor:
                raise self._loop(call_type, params)
            seen.add(next_cursor)
            cursor = next_cursor

    @staticmethod
    def _loop(call_type: str, params: dict[str, str]) -> EtlApiUnavailable:
        # Transient for the window: nothing of it is committed as done, the next run asks again.
        return EtlApiUnavailable(
            f"the ETL API returned a page or cursor it had already returned for {call_type} "
            f"{params['start']}..{params['end']} (a pagination loop); the window is retried "
            "on the next run"
        )

    # ------------------------------------------------------------------------------------
    def _get(self, path: str, query: dict[str, str], *, expect_ndjson: bool) -> tuple[bytes, str | None]:
        url = f"{self._endpoint}{path}"
        if query:
            url += "?" + urlencode(query)
        policy = self._retry
        last: _Transient | None = None
        for attempt in range(1, policy.attempts + 1):
            try:
                return self._attempt(url, path, query, expect_ndjson)
            except _Transient as fault:
                last = fault
            if attempt == policy.attempts:
                break
            delay = min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))
            delay = random.uniform(0, delay)
            if last.retry_after is not None:
                delay = max(delay, min(last.retry_after, policy.retry_after_max))
            if self._deadline is not None and time.monotonic() + delay > self._deadline():
                break
            log.warning(
                "ETL API %s failed (%s); retry %d/%d in %.1fs",
                path, last, attempt, policy.attempts - 1, delay,
            )
            self._sleep(delay)
        assert last is not None
        raise EtlApiUnavailable(f"ETL API {path} kept failing: {last}", status=None)

    def _attempt(
        self, url: str, path: str, query: dict[str, str], expect_ndjson: bool
    ) -> tuple[bytes, str | None]:
        try:
            resp = self._pool.request(
                "GET", url, headers=self._headers, preload_content=False, redirect=False
            )
        except Urllib3Error as exc:
            raise _Transient(f"connection failed: {type(exc).__name__}") from None
        try:
            status = resp.status
            if status == 200:
                try:
                    body = resp.read(decode_content=True)
                except Urllib3Error as exc:
                    raise _Transient(f"the response broke off: {type(exc).__name__}") from None
                self._check_body(body, resp.headers.get("Content-Type", ""), expect_ndjson)
                return body, resp.headers.get("X-Next-Cursor") or None
            try:
                body = resp.read(decode_content=True)
            except Urllib3Error:
                body = b""
        finally:
            resp.release_conn()
        detail = _error_detail(body)
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        if status == 409:
            raise WindowNotClosed(f"the ETL API says the window is not closed yet ({detail})", retry_after)
        if status in TRANSIENT_STATUSES or status >= 500:
            raise _Transient(f"HTTP {status} {detail}".strip(), retry_after)
        hint = PERMANENT_HINTS.get(status, f"the ETL API answered HTTP {status}")
        raise EtlApiError(f"{hint} (GET {path}: HTTP {status} {detail})".strip(), status=status)

    @staticmethod
    def _check_body(body: bytes, content_type: str, expect_ndjson: bool) -> None:
        mime = content_type.split(";")[0].strip().lower()
        if expect_ndjson:
            if not body:
                return  # an empty page (no calls) carries nothing to misread, whatever its type
            if mime not in NDJSON_TYPES:
                raise _Transient(f"the page is not NDJSON (Content-Type {untrusted(mime, 60) or 'missing'})")
            if not body.endswith(b"\n"):
                raise _Transient("the page does not end with a newline (cut short)")
        elif mime != "application/json":
            raise _Transient(f"expected JSON, got Content-Type {untrusted(mime, 60) or 'missing'}")


#: An error body longer than this is not parsed for its message (no text of it is shown).
ERROR_BODY_PARSE_LIMIT = 64 * 1024


def _error_detail(body: bytes) -> str:
    """The ``error`` text of an error body, made safe to show: the server is not trusted, so its
    text is cut to a short prefix, stripped of control characters and redacted (it may echo the
    token back)."""
    if not body or len(body) > ERROR_BODY_PARSE_LIMIT:
        return ""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return untrusted(data["error"])
    except ValueError:
        pass
    return ""
