"""A tiny hostile ETL API on loopback: every ``/v1/calls`` answer comes from a test's function.

The emulator keeps to the contract (apart from its one-shot faults); this server says whatever a
test wants, byte for byte and at whatever pace: bodies streamed from a generator (a gzip bomb is
never held inflated), headers and bodies dripped, endless cursors, any status and headers.
It counts the answers a client hung up on before they were sent whole (``hangups``).
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

NDJSON = "application/x-ndjson"


@dataclass
class Reply:
    """One answer. ``body`` is sent as is, or ``chunks`` one after the other (``content_length``
    announced, default their total when ``body`` is used); ``drip`` seconds between chunks,
    ``header_drip`` seconds between the bytes of the status line and headers; ``framing`` how
    the body's end is marked."""

    body: bytes = b""
    status: int = 200
    content_type: str = NDJSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: Iterable[bytes] | None = None
    content_length: int | None = None
    drip: float = 0.0
    header_drip: float = 0.0
    framing: str = "length"  # or "chunked", or "close" (no length: the body ends when the connection does)


Answer = Callable[[dict[str, str], int], Reply]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up on a keep-alive connection is what these tests do


def empty(query: dict[str, str], n: int) -> Reply:
    return Reply()


class HostileEtl:
    """``answer(query, n)`` gives the reply to the ``n``-th (from 0) ``/v1/calls`` request."""

    def __init__(self, answer: Answer, *, token: str, integration_id: str = "2184", action_id: str = "13699"):
        self.answer = answer
        self.token = token
        self.destination = orjson.dumps({"integration_id": integration_id, "action_id": action_id})
        self.requests: list[dict[str, Any]] = []
        self.hangups = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def calls_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v1/calls"]

    def __enter__(self) -> HostileEtl:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                with server._lock:
                    server.requests.append({"path": parts.path, "query": query})
                    n = len(server.calls_requests()) - 1
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    reply = Reply(orjson.dumps({"error": "bad token"}), 401, "application/json")
                elif parts.path == "/v1/destination":
                    reply = Reply(server.destination, content_type="application/json")
                elif parts.path == "/v1/calls":
                    reply = server.answer(query, n)
                else:
                    reply = Reply(b'{"error":"not found"}', 404, "application/json")
                try:
                    server._write(self, reply)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    with server._lock:
                        server.hangups += 1
                    self.close_connection = True

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    def _write(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        length = reply.content_length
        if length is None:
            length = len(reply.body)
        head = [f"HTTP/1.1 {reply.status} X", f"Content-Type: {reply.content_type}"]
        if reply.framing == "length":
            head.append(f"Content-Length: {length}")
        elif reply.framing == "chunked":
            head.append("Transfer-Encoding: chunked")
        else:
            head.append("Connection: close")
            handler.close_connection = True
        head += [f"{k}: {v}" for k, v in reply.headers]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        out = handler.wfile
        if reply.header_drip:
            for i in range(len(raw)):
                out.write(raw[i : i + 1])
                out.flush()
                if self._stop.wait(reply.header_drip):
                    return
        else:
            out.write(raw)
        for chunk in [reply.body] if reply.chunks is None else reply.chunks:
            if not chunk:
                continue
            if reply.framing == "chunked":
                chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
            out.write(chunk)
            out.flush()
            if reply.drip and self._stop.wait(reply.drip):
                return
        if reply.framing == "chunked":
            out.write(b"0\r\n\r\n")


def gzip_bomb(first: bytes, last: bytes, size: int) -> tuple[bytes, str]:
    """A gzip NDJSON body: ``first``, a track call of ``size`` bytes (mostly one string), ``last``.
    Returns the body (about size / 1000 bytes) and the SHA-256 of the big line, never holding
    the big line whole."""
    head = b'{"messageId":"bomb","type":"track","event":"E","properties":{"x":"'
    tail = b'"}}'
    fill = size - len(head) - len(tail)
    sha = hashlib.sha256(head)
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = [gz.compress(first + b"\n" + head)]
    block = b"a" * (1 << 20)
    for _ in range(fill // len(block)):
        out.append(gz.compress(block))
        sha.update(block)
    rest = b"a" * (fill % len(block)) + tail
    sha.update(rest)
    out.append(gz.compress(rest + b"\n" + last + b"\n"))
    out.append(gz.flush())
    return b"".join(out), sha.hexdigest()
