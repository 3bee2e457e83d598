"""A keep-alive HTTP/1.1 server on a raw socket, for answers no well-behaved server library would
send (a Content-Length that lies, bytes past the body): every request is answered with the bytes
``answer(n, target)`` returns, as is (``n`` counts requests from 0, ``target`` is the request's
path and query)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

DESTINATION = b'{"integration_id":"2184","action_id":"13699"}'
DESTINATION_REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(DESTINATION), DESTINATION)


class RawServer:
    def __init__(self, answer: Callable[[int, str], bytes]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    try:
                        got = conn.recv(65536)
                    except OSError:
                        return
                    if not got:
                        return
                    data += got
                head, data = data.split(b"\r\n\r\n", 1)
                target = head.split(b" ")[1].decode()
                with self._lock:
                    n = self.requests
                    self.requests += 1
                try:
                    conn.sendall(self.answer(n, target))
                except OSError:
                    return

    def close(self) -> None:
        self.sock.close()
