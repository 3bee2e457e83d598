"""Command line: ``python -m emulator serve|generate ...``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime

from .timeutil import ns_to_datetime, parse_rfc3339_ns


def _serve(args: argparse.Namespace) -> int:
    from .server import EmulatorServer
    from .sources import FileSource, SyntheticSource

    if args.file:
        t0 = time.monotonic()
        source = FileSource(args.file)
        if args.verbose:
            print(f"indexed {source.count} calls from {args.file} in {time.monotonic() - t0:.1f} s "
                  f"({source.skipped} skipped)", file=sys.stderr, flush=True)
    else:
        source = SyntheticSource(seed=args.seed, rate_per_minute=args.rate)
    srv = EmulatorServer(
        source, token=args.token, integration_id=args.integration_id, action_id=args.action_id,
        host=args.host, port=args.port, settle_seconds=args.settle_seconds,
        gzip_level=None if args.gzip_level < 0 else args.gzip_level, verbose=args.verbose,
    )
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    srv.start()
    print(f"ETL API emulator listening on {srv.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        srv.stop()
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .realistic import write_ndjson_real
    from .synthetic import write_ndjson

    write = {"basic": write_ndjson, "real": write_ndjson_real}[args.profile]
    start: datetime = ns_to_datetime(parse_rfc3339_ns(args.start))
    t0 = time.monotonic()
    if args.out == "-":
        n = write(sys.stdout.buffer, args.count, start, args.minutes, args.seed)
        sys.stdout.buffer.flush()
    else:
        with open(args.out, "wb", buffering=8 * 1024 * 1024) as f:
            n = write(f, args.count, start, args.minutes, args.seed)
    print(f"wrote {args.count} calls ({n / 1e6:.1f} MB) to {args.out} in {time.monotonic() - t0:.1f} s",
          file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator", description="ETL API v1 emulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the ETL API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7071)
    s.add_argument("--token", default="dev-token")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--rate", type=int, default=30, help="synthetic calls per minute (all types)")
    s.add_argument("--file", help="serve calls from this NDJSON file instead of synthetic ones")
    s.add_argument("--integration-id", default="2184")
    s.add_argument("--action-id", default="13699")
    s.add_argument("--settle-seconds", type=float, default=0)
    s.add_argument("--gzip-level", type=int, default=1, help="0-9; negative disables gzip")
    s.add_argument("--verbose", action="store_true")
    g = sub.add_parser("generate", help="write synthetic calls to an NDJSON file")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--start", required=True, help="RFC 3339, e.g. 2024-05-01T00:00:00Z")
    g.add_argument("--minutes", type=float, default=10)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", required=True, help="output path ('-' for stdout)")
    g.add_argument("--profile", choices=("basic", "real"), default="basic",
                   help="basic: only the fields with a column of their own; real: shaped like real SDK output "
                        "(see bench/README.md)")
    args = p.parse_args(argv)
    if args.cmd == "serve":
        return _serve(args)
    return _generate(args)


if __name__ == "__main__":
    sys.exit(main())
