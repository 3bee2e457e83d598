"""An ETL API on loopback that answers errors whose bodies echo secrets back (the token it was
sent, a SAS signature it was told), in the forms a server might use: as sent, percent-encoded,
JSON-escaped, and cut by the exporter's own prefix limit in the middle of a secret.

``/v1/destination`` answers the destination (or the error, with ``destination_status``);
``/v1/calls`` answers ``calls_status`` with the echoing body. A real HTTP server: the exporter's
client talks to it exactly as to the real API.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import quote, quote_plus, urlsplit

from shared.redact import UNTRUSTED_LIMIT

#: The shapes of echoed text, each checked on its own (the exporter keeps only a prefix).
ECHO_VARIANTS = ("token_forms", "sig_forms", "token_across_the_cut", "sig_across_the_cut")


def echo_text(variant: str, token: str, sig: str) -> str:
    """The ``error`` text of a hostile answer."""
    if variant == "token_forms":
        return (f"refused Bearer {token} | {quote(token, safe='')} | {quote_plus(token)} "
                f"| {json.dumps(token)}")
    if variant == "sig_forms":
        return f"sig={sig} | {quote(sig, safe='')} | {json.dumps(sig).replace('/', chr(92) + '/')}"
    secret = token if variant == "token_across_the_cut" else quote(sig, safe="")
    # The secret starts 6 characters before the exporter's cut: its first 6 characters are inside.
    return "x" * (UNTRUSTED_LIMIT - 6) + secret + " trailing"


class EchoingEtl:
    def __init__(self, *, sig: str, variant: str, calls_status: int = 403,
                 destination_status: int = 200) -> None:
        self.sig = sig
        self.variant = variant
        self.calls_status = calls_status
        self.destination_status = destination_status
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                outer.requests += 1
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                path = urlsplit(self.path).path
                if path == "/v1/destination" and outer.destination_status == 200:
                    self._send(200, {"integration_id": "2184", "action_id": "13699"})
                    return
                status = outer.destination_status if path == "/v1/destination" else outer.calls_status
                self._send(status, {"error": echo_text(outer.variant, token, outer.sig)})

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status in (429, 503):
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
