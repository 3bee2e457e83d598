"""Capture what the real Python SDKs send, for tests/support/sdk_payloads.json.

The benchmark's ``real`` profile (emulator/realistic.py) models what Segment-spec libraries send;
tests/test_realistic.py checks its shapes against payloads captured off the wire from the real
Python SDKs. This script makes that capture: it points each SDK at a loopback ``http.server``,
makes one call of each kind, and writes every message as the SDK posted it, with the request's
other top-level fields (``envelope``: ``sentAt``, ``writeKey``).

It needs the SDKs, which are not dependencies of this project; install them in a throwaway
virtual environment, not in .venv:

    python3 -m venv /tmp/sdk-venv
    /tmp/sdk-venv/bin/pip install segment-analytics-python rudder-sdk-python
    /tmp/sdk-venv/bin/python devtools/capture_sdk_payloads.py tests/support/sdk_payloads.json
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

_received: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        _received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


def _exercise(module: Any, host: str) -> list[dict[str, Any]]:
    """One call of each kind through ``module.Client``; the messages as posted."""
    client = module.Client(write_key="wk_capture_0123456789", host=host, sync_mode=True, gzip=False)
    client.identify("user_1", {"email": "zoë@example.com", "name": "Zoë Ñandú"}, context={"ip": "203.0.113.7"})
    client.identify(anonymous_id="anon-1")
    client.track("user_1", "Order Completed", {"order_id": "o1", "products": [{"product_id": "p1", "price": 3.0}]})
    client.track(anonymous_id="anon-1", event="Product Viewed")
    client.page("user_1", "Docs", "Intro", {"url": "https://www.example.com/docs"})
    client.page(anonymous_id="anon-1")
    client.screen("user_1", "Mobile", "Home")
    client.group("user_1", "grp_1", {"name": "Acme"})
    client.alias("old_1", "user_1")
    out = []
    for request in _received:
        envelope = {k: v for k, v in request["body"].items() if k != "batch"}
        for message in request["body"]["batch"]:
            out.append({"envelope": envelope, "message": message})
    _received.clear()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_address[1]}"
    import rudderstack.analytics as rudder_analytics
    from segment import analytics as segment_analytics

    result = {
        "note": "Captured by devtools/capture_sdk_payloads.py: what each SDK posted to /v1/batch.",
        "sdks": [
            {"package": "segment-analytics-python",
             "version": importlib.metadata.version("segment-analytics-python"),
             "calls": _exercise(segment_analytics, host)},
            {"package": "rudder-sdk-python", "version": importlib.metadata.version("rudder-sdk-python"),
             "calls": _exercise(rudder_analytics, host)},
        ],
    }
    server.shutdown()
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote {sum(len(s['calls']) for s in result['sdks'])} messages to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
