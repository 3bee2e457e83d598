"""In-process micro-benchmark of the CSV/Parquet parse step (prefilter + columnar parser).

Lines per CPU-second of one thread turning pages of NDJSON into Arrow columns (best of
``--repeat``), on Segment-shaped track calls, without HTTP, storage or writers. Profiles:

* ``sdk``: what the public SDKs send. analytics.js-like browser calls (``channel: "client"``,
  ``context`` with ``page``, ``userAgent``, ``userAgentData``, ``library``, ``locale``, ``ip``,
  ``campaign``; ``_metadata``; ``writeKey``; ``version``) and server-library calls
  (``channel: "server"``, ``context.library``, ``projectId``, ``request_id``); a quarter of them
  ``Order Completed`` with a ``products`` array of 1-20 items (big orders hold more ``{``/``[``
  than the depth cap, at a depth of 5).
* ``clean``: the same calls with only the columns' own fields.
* ``emulator``: the track calls of the end-to-end benchmark's own generator (``python -m emulator
  generate``), which hold only the columns' fields.

    .venv/bin/python bench/parse_micro.py [--calls 40000] [--repeat 5] [--code DIR]

``--code`` runs another checkout's ``shared/`` (e.g. ``git archive HEAD~3 shared | tar -x -C
/tmp/old``) for a before/after on the same calls.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 "
    "Safari/605.1.15",
]
TITLES = ["Produkt Übersicht \u2013 Shop", "注文完了", "Checkout", "Ma commande · Étape 2", "Home 🎉"]


def _ts(rng: random.Random) -> str:
    return f"2024-05-01T12:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z"


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _ip(rng: random.Random) -> str:
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _product(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "product_id": _id(rng)[:13], "sku": f"SKU-{rng.randrange(10**6)}", "name": f"Artikel {i} ✓",
        "category": rng.choice(["Schuhe", "Games", "Bücher"]), "brand": "Acme", "price": round(rng.random() * 200, 2),
        "quantity": rng.randrange(1, 5), "position": i + 1, "url": f"https://shop.example.com/p/{rng.randrange(10**7)}",
        "image_url": f"https://cdn.example.com/i/{rng.randrange(10**7)}.jpg",
    }


def call(rng: random.Random, clean: bool) -> dict[str, Any]:
    browser = rng.random() < 0.7
    c: dict[str, Any] = {
        "messageId": ("ajs-next-" if browser else "api-") + _id(rng).replace("-", ""),
        "type": "track",
        "userId": f"user-{rng.randrange(10**8)}" if rng.random() < 0.6 else None,
        "anonymousId": _id(rng),
        "timestamp": _ts(rng), "originalTimestamp": _ts(rng), "sentAt": _ts(rng), "receivedAt": _ts(rng),
    }
    if browser:
        url = f"https://shop.example.com/p/{rng.randrange(10**7)}?utm_source=news&utm_medium=email"
        c["context"] = {
            "ip": _ip(rng), "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "locale": rng.choice(["en-US", "de-DE", "ja-JP", "fr-FR"]),
            "page": {"path": url[26:].split("?")[0], "referrer": "https://www.google.com/",
                     "search": "?utm_source=news", "title": rng.choice(TITLES), "url": url},
            "userAgent": rng.choice(UAS),
            "userAgentData": {"brands": [{"brand": "Chromium", "version": "124"}, {"brand": "Google Chrome",
                              "version": "124"}, {"brand": "Not-A.Brand", "version": "99"}],
                              "mobile": False, "platform": "Windows"},
            "campaign": {"name": "spring", "source": "news", "medium": "email"},
        }
    else:
        c["context"] = {"library": {"name": rng.choice(["analytics-python", "analytics-node", "analytics-go"]),
                                    "version": "2.4.0"}}
    c["integrations"] = {"All": True, "Mixpanel": False} if rng.random() < 0.5 else {}
    if rng.random() < 0.25:
        c["event"] = "Order Completed"
        c["properties"] = {
            "order_id": f"o-{rng.randrange(10**9)}", "total": round(rng.random() * 500, 2), "revenue": 90.0,
            "currency": "EUR", "products": [_product(rng, i) for i in range(rng.randint(1, 20))],
        }
    else:
        c["event"] = rng.choice(["Product Viewed", "Signed Up", "Button Clicked", "Produkt angesehen"])
        c["properties"] = {"button": "buy", "value": rng.randrange(100), "label": "Kaufen ✓"}
    if not clean:
        if browser:
            c["channel"] = "client"
            c["_metadata"] = {"bundled": ["Segment.io", "Mixpanel"], "unbundled": ["Google Ads"],
                              "bundledIds": ["5f1ab2c3d4e5f6a7b8c9d0e1"]}
            c["writeKey"] = "wk" + _id(rng).replace("-", "")[:30]
            c["version"] = 2
        else:
            c["channel"] = "server"
            c["projectId"] = "p" + _id(rng).replace("-", "")[:21]
            c["request_id"] = _id(rng)
    return c


def pages(calls: int, clean: bool, per_page: int = 2000) -> list[bytes]:
    rng = random.Random(7)
    lines = [json.dumps(call(rng, clean), separators=(",", ":"), ensure_ascii=False).encode() for _ in range(calls)]
    return [b"".join(line + b"\n" for line in lines[i:i + per_page]) for i in range(0, calls, per_page)]


def emulator_pages(calls: int, per_page: int = 2000) -> list[bytes]:
    import io
    from datetime import UTC, datetime

    from emulator.synthetic import write_ndjson

    out = io.BytesIO()
    write_ndjson(out, calls * 3, datetime(2024, 5, 1, tzinfo=UTC), seed=1)  # about a third are track
    lines = [line for line in out.getvalue().splitlines() if b'"type":"track"' in line][:calls]
    return [b"".join(line + b"\n" for line in lines[i:i + per_page]) for i in range(0, len(lines), per_page)]


def measure(bodies: list[bytes], repeat: int) -> tuple[float, float, int]:
    from shared.columnar import ColumnarParser
    from shared.lines import LineBlock
    from shared.prefilter import needs_reference_path
    from shared.records import Limits

    blocks = [LineBlock.from_body(body) for body in bodies]
    parser, limits = ColumnarParser("track", Limits()), Limits()
    n = sum(len(b) for b in blocks)
    flagged = sum(int(needs_reference_path(b, limits).sum()) for b in blocks)
    best_screen = best_parse = float("inf")
    for _ in range(repeat):  # CPU time of this thread: the machine may be shared
        t0 = time.thread_time()
        flags = [needs_reference_path(b, limits) for b in blocks]
        t1 = time.thread_time()
        rows = sum(parser.parse(b, f).count for b, f in zip(blocks, flags, strict=True))
        t2 = time.thread_time()
        assert rows == n, (rows, n)
        best_screen, best_parse = min(best_screen, t1 - t0), min(best_parse, t2 - t1)
    return n / best_screen, n / best_parse, flagged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=40_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout whose shared/ runs")
    args = ap.parse_args()
    sys.path.insert(0, str(args.code))
    sys.path.insert(1, str(ROOT))  # the emulator's generator
    for profile in ("sdk", "clean", "emulator"):
        bodies = emulator_pages(args.calls) if profile == "emulator" else pages(args.calls, profile == "clean")
        size = sum(map(len, bodies)) / args.calls
        screen, parse, flagged = measure(bodies, args.repeat)
        both = 1 / (1 / screen + 1 / parse)
        print(f"{profile:8}  {args.calls} calls, {size:,.0f} B avg  prefilter {screen:>9,.0f}/s  "
              f"parse {parse:>9,.0f}/s  both {both:>9,.0f}/s  flagged {flagged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
