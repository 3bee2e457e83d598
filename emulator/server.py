"""HTTP server implementing the ETL API v1 (see docs/etl-api.md) on top of a call source."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

import orjson

from .faults import Fault, FaultSet
from .sources import CALL_TYPES, Source
from .timeutil import SEC, datetime_to_ns, parse_rfc3339_ns

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "EmulatorServer", "accepts_gzip", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 50_000
NDJSON = "application/x-ndjson"
_JSON = "application/json"
_LIMIT_RE = re.compile(r"[0-9]{1,12}\Z")
_SPACE_OFFSET_RE = re.compile(r"(.*\d) (\d{2}:\d{2})\Z")  # "+00:00" decoded as " 00:00" from a raw query
_HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server returned an invalid response.</p>"
    b"<hr><address>nginx</address></body></html>\n"
)


class _BadRequest(Exception):
    pass


def accepts_gzip(value: str | None) -> bool:
    """True when an Accept-Encoding header value allows gzip (``gzip``/``x-gzip``/``*`` with q > 0)."""
    if not value:
        return False
    gz = star = None
    for part in value.split(","):
        token, _, params = part.partition(";")
        token = token.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v.strip())
                except ValueError:
                    q = 0.0
        if token in ("gzip", "x-gzip"):
            gz = q if gz is None else max(gz, q)
        elif token == "*":
            star = q
    if gz is not None:
        return gz > 0
    return star is not None and star > 0


def _query_hash(call_type: str, start_ns: int, end_ns: int) -> str:
    return hashlib.sha256(f"{call_type}|{start_ns}|{end_ns}".encode()).hexdigest()[:16]


def encode_cursor(call_type: str, start_ns: int, end_ns: int, offset: int) -> str:
    raw = orjson.dumps({"v": 1, "o": offset, "q": _query_hash(call_type, start_ns, end_ns)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, call_type: str, start_ns: int, end_ns: int) -> int:
    """Offset held by ``cursor``; raises ValueError when malformed or issued for another query."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as e:
        raise ValueError("malformed cursor") from e
    if not isinstance(data, dict) or data.get("v") != 1:
        raise ValueError("malformed cursor")
    off, qh = data.get("o"), data.get("q")
    if type(off) is not int or off < 0 or not isinstance(qh, str):
        raise ValueError("malformed cursor")
    if qh != _query_hash(call_type, start_ns, end_ns):
        raise ValueError("cursor belongs to another query (type/start/end differ)")
    return off


def _parse_time(name: str, value: str | None) -> int:
    if value is None or value == "":
        raise _BadRequest(f"missing parameter: {name}")
    m = _SPACE_OFFSET_RE.match(value)
    if m:
        value = f"{m.group(1)}+{m.group(2)}"
    try:
        return parse_rfc3339_ns(value)
    except ValueError:
        raise _BadRequest(f"{name} is not an RFC 3339 time: {value!r}") from None


class _Response:
    __slots__ = ("body", "ctype", "cursor_in", "first_cursor", "headers", "ndjson", "status")

    def __init__(self, status: int, ctype: str, body: bytes, headers: list | None = None):
        self.status, self.ctype, self.body = status, ctype, body
        self.headers = headers or []
        self.ndjson = False
        self.cursor_in: str | None = None
        self.first_cursor: str | None = None


def _json_error(status: int, message: str, headers: list | None = None) -> _Response:
    return _Response(status, _JSON, orjson.dumps({"error": message}), headers)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ETL-API-Emulator/1.0"
    timeout = 600  # idle keep-alive connections are dropped after this many seconds

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _dispatch(self) -> None:
        self.server.emulator._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, format: str, *args) -> None:
        if self.server.emulator.verbose:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, emulator: EmulatorServer):
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._aborted: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def abort(self, request: socket.socket) -> None:
        """Make the close of ``request`` a hard reset (RST) instead of an orderly FIN."""
        try:
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        with self._conn_lock:
            self._aborted.add(request)

    def shutdown_request(self, request):
        with self._conn_lock:
            self._conns.discard(request)
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def close_all(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if self.emulator.verbose or not isinstance(exc, (OSError, ValueError)):
            super().handle_error(request, client_address)


class EmulatorServer:
    """The ETL API emulator. ``start()`` serves in a background thread; ``stop()`` shuts it down."""

    def __init__(
        self,
        source: Source,
        token: str = "dev-token",
        integration_id: str = "2184",
        action_id: str = "13699",
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
        settle_seconds: float = 0,
        gzip_level: int | None = 1,
        verbose: bool = False,
    ):
        self.source = source
        self.token = token
        self.integration_id = str(integration_id)
        self.action_id = str(action_id)
        self.host = host
        self.port = port
        self.now = now or (lambda: datetime.now(UTC))
        self.settle_seconds = settle_seconds
        self.gzip_level = gzip_level
        self.verbose = verbose
        self.request_log: list[dict] = []
        self._faults = FaultSet()
        self._stop_event = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._auth = f"Bearer {token}"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        self._stop_event.clear()
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="etl-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop_event.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    # ---------------------------------------------------------------- faults
    def add_fault(self, fault: Fault) -> Fault:
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        return self._faults.pending()

    # ---------------------------------------------------------------- request handling
    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        entry = {"method": h.command, "path": path, "query": query, "status": None,
                 "accept_encoding": h.headers.get("Accept-Encoding"), "at": time.monotonic()}
        n = int(h.headers.get("Content-Length") or 0)
        if n > 0:
            h.rfile.read(n)
        fault = self._faults.take(path, query)
        kind = fault.kind if fault else None
        if kind == "reset":
            self.request_log.append(entry)
            h.close_connection = True
            h.server.abort(h.connection)
            return
        if kind == "status":
            headers = [] if fault.retry_after is None else [("Retry-After", str(fault.retry_after))]
            self._send(h, entry, _json_error(fault.status, "injected", headers))
            return
        if kind == "html":
            self._send(h, entry, _Response(200, "text/html; charset=utf-8", _HTML_PAGE))
            return
        if kind == "delay" and self._stop_event.wait(fault.delay):
            self.request_log.append(entry)
            h.close_connection = True
            h.server.abort(h.connection)
            return
        resp = self._route(h, path, query)
        self._send(h, entry, resp, kind, fault)

    def _route(self, h: _Handler, path: str, query: dict[str, str]) -> _Response:
        if path not in ("/v1/calls", "/v1/destination"):
            return _json_error(404, f"not found: {path}")
        if h.command != "GET":
            return _json_error(405, f"method not allowed: {h.command}", [("Allow", "GET")])
        if h.headers.get("Authorization") != self._auth:
            return _json_error(401, "missing or invalid bearer token", [("WWW-Authenticate", "Bearer")])
        if path == "/v1/destination":
            body = orjson.dumps({"integration_id": self.integration_id, "action_id": self.action_id})
            return _Response(200, _JSON, body)
        try:
            return self._calls(query)
        except _BadRequest as e:
            return _json_error(400, str(e))

    def _calls(self, query: dict[str, str]) -> _Response:
        call_type = query.get("type")
        if not call_type:
            raise _BadRequest("missing parameter: type")
        if call_type not in CALL_TYPES:
            raise _BadRequest(f"bad type {call_type!r}; expected one of {', '.join(CALL_TYPES)}")
        start_ns = _parse_time("start", query.get("start"))
        end_ns = _parse_time("end", query.get("end"))
        if start_ns >= end_ns:
            raise _BadRequest("start must be before end")
        limit = DEFAULT_LIMIT
        if "limit" in query:
            lv = query["limit"].strip()
            if not _LIMIT_RE.match(lv) or int(lv) < 1:
                raise _BadRequest(f"bad limit {query['limit']!r}; expected a positive integer")
            limit = min(int(lv), MAX_LIMIT)
        cursor = query.get("cursor")
        offset = 0
        if cursor is not None:
            try:
                offset = decode_cursor(cursor, call_type, start_ns, end_ns)
            except ValueError as e:
                raise _BadRequest(f"bad cursor: {e}") from None
        now_ns = datetime_to_ns(self.now())
        closed_at = end_ns + int(self.settle_seconds * SEC)
        if closed_at > now_ns:
            wait = max(1, math.ceil((closed_at - now_ns) / SEC))
            return _json_error(409, f"window not closed yet; retry in {wait} s", [("Retry-After", str(wait))])
        sel = self.source.select(call_type, start_ns, end_ns)
        if offset > sel.count:
            raise _BadRequest("bad cursor: offset out of range")
        body = sel.page(offset, limit)
        headers = []
        if offset + limit < sel.count:
            headers.append(("X-Next-Cursor", encode_cursor(call_type, start_ns, end_ns, offset + limit)))
        resp = _Response(200, NDJSON, body, headers)
        resp.ndjson = True
        resp.cursor_in = cursor
        resp.first_cursor = encode_cursor(call_type, start_ns, end_ns, 0)
        return resp

    def _send(
        self, h: _Handler, entry: dict, resp: _Response, kind: str | None = None, fault: Fault | None = None
    ) -> None:
        body = resp.body
        headers = list(resp.headers)
        encoding = None
        if resp.ndjson:
            if kind == "no_final_newline" and body.endswith(b"\n"):
                body = body[:-1]
            if kind == "loop_cursor":
                headers = [x for x in headers if x[0] != "X-Next-Cursor"]
                headers.append(("X-Next-Cursor", resp.cursor_in or resp.first_cursor))
            if kind == "bad_cursor" and fault is not None:
                headers = [x for x in headers if x[0] != "X-Next-Cursor"]
                headers.append(("X-Next-Cursor", fault.cursor))
            if kind == "bad_gzip":
                gz = zlib.compressobj(1, zlib.DEFLATED, 31)
                good = gz.compress(body) + gz.flush()
                # keep the gzip header, scramble the start of the deflate stream
                body = good[:10] + bytes(b ^ 0x5A for b in good[10:74]) + good[74:]
                encoding = "gzip"
            elif self.gzip_level is not None and accepts_gzip(entry["accept_encoding"]):
                gz = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
                body = gz.compress(body) + gz.flush()
                encoding = "gzip"
            headers.append(("Vary", "Accept-Encoding"))
        elif kind == "bad_gzip":
            body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage"
            encoding = "gzip"
        entry["status"] = resp.status
        self.request_log.append(entry)
        truncate = kind == "truncate"
        h.send_response(resp.status)
        h.send_header("Content-Type", resp.ctype)
        h.send_header("Content-Length", str(len(body)))
        if encoding:
            h.send_header("Content-Encoding", encoding)
        for k, v in headers:
            h.send_header(k, v)
        if truncate:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if h.command == "HEAD":
            return
        if truncate:
            cut = len(body) // 2
            if encoding is None:
                while cut > 0 and body[cut - 1:cut] == b"\n":
                    cut -= 1
            body = memoryview(body)[:cut]
        if kind == "drip" and fault is not None:
            # The first drip_bytes bytes one at a time, fault.delay apart: every socket read of
            # the client gets data in time, only the whole answer is late.
            view = memoryview(body)
            for i in range(min(fault.drip_bytes, len(view))):
                h.wfile.write(view[i : i + 1])
                h.wfile.flush()
                if self._stop_event.wait(fault.delay):
                    h.close_connection = True
                    return
            body = view[fault.drip_bytes :]
        if body:
            h.wfile.write(body)
