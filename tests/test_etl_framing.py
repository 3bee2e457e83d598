"""Content-Length framing at the ETL client (docs/etl-api.md "Framing"): a page with more bytes
than its Content-Length is refused and its connection dropped; whole pages keep the connection.
Against a raw HTTP server on loopback that sends exactly the bytes each test wants."""

from __future__ import annotations

import gzip
import socket
from datetime import UTC, datetime

import orjson
import pytest

from shared.errors import EtlApiUnavailable
from shared.etl_client import EtlClient, RetryPolicy, _readable_now
from tests.conftest import TOKEN
from tests.support.raw_etl import RawServer

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
W1 = datetime(2026, 11, 28, 12, 10, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)


def _line(i: int, pad: int = 0) -> bytes:
    return orjson.dumps({"messageId": f"m{i:05d}", "type": "track", "receivedAt": "2026-11-28T12:01:00Z",
                         "pad": "x" * pad})


def _response(body: bytes, length: int | None = None, extra: bytes = b"", headers: str = "") -> bytes:
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n{headers}"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n")
    return head.encode() + body + extra


def _read(url: str) -> list[bytes]:
    client = EtlClient(url, TOKEN, retry=FAST, gzip=True)
    try:
        return [line for page in client.pages("track", W0, W1) for line in page.lines]
    finally:
        client.close()


@pytest.mark.parametrize("size", [1, 3000])  # inside the read buffer, or well past it
@pytest.mark.parametrize("gzip_on", [False, True])
@pytest.mark.parametrize("extra", [b"x", _line(99) + b"\n"], ids=["a-byte", "a-call"])
def test_bytes_past_the_content_length_refuse_the_page_and_drop_the_connection(size, gzip_on, extra):
    body = b"".join(_line(i, pad=40) + b"\n" for i in range(size))
    sent = gzip.compress(body, compresslevel=1) if gzip_on else body
    headers = "Content-Encoding: gzip\r\n" if gzip_on else ""
    srv = RawServer(lambda n, target: _response(sent, extra=extra, headers=headers))
    try:
        with pytest.raises(EtlApiUnavailable, match="more bytes than its Content-Length"):
            _read(srv.url)
        assert srv.requests == FAST.attempts
        assert srv.connections == FAST.attempts  # never reused: the extra bytes would be read next
    finally:
        srv.close()


@pytest.mark.parametrize("size", [0, 1, 3000])
def test_whole_pages_keep_their_connection(size):
    pages = [b"".join(_line(p * 10_000 + i, pad=40) + b"\n" for i in range(size)) for p in range(3)]

    def answer(n: int, target: str) -> bytes:
        cursor = f"X-Next-Cursor: c{n + 1}\r\n" if n + 1 < len(pages) else ""
        return _response(pages[n], headers=cursor)

    srv = RawServer(answer)
    try:
        assert _read(srv.url) == [line for page in pages for line in page.splitlines()]
        assert srv.requests == 3 and srv.connections == 1
    finally:
        srv.close()


def test_a_socket_is_readable_now_only_when_bytes_wait_on_it():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        assert not _readable_now(a)
        b.sendall(b"more")
        b.shutdown(socket.SHUT_WR)
        assert _readable_now(a)
        assert a.recv(10) == b"more"  # looked at, not taken
        assert not _readable_now(a)  # the end of the stream is not bytes
        assert a.gettimeout() == 5
