"""Deterministic synthetic Segment-spec calls.

For every UTC minute ``m`` (minutes since the epoch) the calls of that minute are derived from
``random.Random(f"{seed}:{m}")``: that generator draws, per call, the type, the receivedAt
millisecond and a per-call seed; the call body comes from ``random.Random(per_call_seed)``. So any
window is reproducible, independent of query order, and filtering by type never has to build the
bodies of the other types.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from .timeutil import SEC, datetime_to_ns, format_ms

__all__ = ["CALL_TYPES", "TYPE_WEIGHTS", "generate_calls", "make_call", "minute_calls", "write_ndjson"]

CALL_TYPES = ("identify", "track", "page", "screen", "alias", "group")
TYPE_WEIGHTS = {"track": 50, "page": 20, "identify": 12, "screen": 8, "group": 5, "alias": 5}
_TYPES = tuple(TYPE_WEIGHTS)
_CUM = []
_acc = 0
for _t in _TYPES:
    _acc += TYPE_WEIGHTS[_t]
    _CUM.append(_acc)
_TOTAL_WEIGHT = _acc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE_NS = 60 * SEC

_LIBRARIES = [
    ("analytics.js", "4.15.3"),
    ("analytics-ios", "4.1.8"),
    ("analytics-android", "4.11.3"),
    ("analytics-python", "2.2.3"),
    ("analytics-node", "6.2.0"),
    ("@segment/analytics-next", "1.61.0"),
]
_LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "zh-CN", "pt-BR", "sv-SE"]
_USER_AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148"),
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36"),
]
_PATHS = ["/", "/pricing", "/products/widget-pro", "/blog/zoë-ñandú-story", "/checkout", "/docs/api",
          "/account/settings", "/search", "/cart", "/注文"]
_TITLES = ["Home", "Pricing – Acme", "Widget Pro | Acme", "Zoë's story", "Checkout", "API Docs",
           "Settings", "Search results", "Your cart", "注文完了"]
_REFERRERS = ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://t.co/abc123",
              "https://www.bing.com/search?q=acme+widgets"]
_NAMES = ["Zoë Ñandú", "Jürgen Müller", "Ana María López", "李小龙", "Søren Kierkegaard", "O'Brien",
          "Chloé \"CJ\" Dupont", "Björk Guðmundsdóttir", "Ada Lovelace", "Grace Hopper"]
_PLANS = ["free", "starter", "pro", "enterprise", None]
_EVENTS = ["Order Completed", "Product Viewed", "Signed Up", "ÜBER Event", "注文完了",
           "Order Completed", "Product Viewed", "Product Added", "Checkout Started", "Product Viewed"]
_CURRENCIES = ["USD", "EUR", "GBP", "JPY", "SEK"]
_CATEGORIES = ["Docs", "Marketing", "Shop", "Account", None]
_SCREENS = ["Home", "Product Detail", "Cart", "Settings", "Onboarding – Step 2", "Profile"]
_CITIES = [("San Francisco", "CA", "US"), ("München", "BY", "DE"), ("São Paulo", "SP", "BR"),
           ("東京", "13", "JP"), ("Malmö", "M", "SE")]
_PRODUCTS = [("sku-001", "Widget Pro", 49.99), ("sku-002", "Gadget Mini", 19.5),
             ("sku-003", "Überkabel 2m", 9.0), ("sku-004", "ガジェット", 120.0),
             ("sku-005", "Thingamajig", 3.0)]
_CAMPAIGNS = [{"name": "spring_sale", "source": "google", "medium": "cpc", "term": "widgets",
               "content": "ad-variant-b"},
              {"name": "newsletter-2024-05", "source": "newsletter", "medium": "email"},
              {"name": "Émission spéciale", "source": "partner", "medium": "referral"}]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _pick_type(rng: random.Random) -> str:
    x = rng.randrange(_TOTAL_WEIGHT)
    for t, c in zip(_TYPES, _CUM):
        if x < c:
            return t
    return _TYPES[-1]


def _context(rng: random.Random, call_type: str) -> dict:
    lib = _LIBRARIES[rng.randrange(len(_LIBRARIES))]
    i = rng.randrange(len(_PATHS))
    ctx: dict = {
        "library": {"name": lib[0], "version": lib[1]},
        "ip": f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "locale": _LOCALES[rng.randrange(len(_LOCALES))],
        "userAgent": _USER_AGENTS[rng.randrange(len(_USER_AGENTS))],
        "page": {
            "path": _PATHS[i],
            "url": f"https://www.example.com{_PATHS[i]}",
            "title": _TITLES[i],
            "referrer": _REFERRERS[rng.randrange(len(_REFERRERS))],
            "search": "" if rng.random() < 0.7 else "?utm_source=google&utm_medium=cpc",
        },
        "timezone": ["America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo", "UTC"][rng.randrange(4)],
    }
    if call_type == "screen" or rng.random() < 0.15:
        ctx["app"] = {"name": "Acme", "version": f"3.{rng.randrange(20)}.{rng.randrange(10)}",
                      "build": str(rng.randrange(1000, 9999)), "namespace": "com.example.acme"}
        ctx["device"] = {"id": _uuid(rng), "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"}
        ctx["os"] = {"name": "iOS", "version": "17.4.1"}
        ctx["screen"] = {"width": 393, "height": 852, "density": 3}
    if rng.random() < 0.3:
        ctx["campaign"] = dict(_CAMPAIGNS[rng.randrange(len(_CAMPAIGNS))])
    return ctx


def _address(rng: random.Random) -> dict:
    city, state, country = _CITIES[rng.randrange(len(_CITIES))]
    return {"street": f"{rng.randrange(1, 999)} Hauptstraße", "city": city, "state": state,
            "postalCode": f"{rng.randrange(10000, 99999)}", "country": country}


def _traits(rng: random.Random) -> dict:
    name = _NAMES[rng.randrange(len(_NAMES))]
    first = name.split(" ")[0]
    return {
        "email": f"{first.lower()}.{rng.randrange(100000)}@example.com",
        "name": name,
        "firstName": first,
        "plan": _PLANS[rng.randrange(len(_PLANS))],
        "logins": rng.randrange(0, 500),
        "score": float(rng.randrange(0, 10)) if rng.random() < 0.5 else round(rng.random() * 10, 3),
        "createdAt": f"20{rng.randrange(15, 24)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T08:00:00.000Z",
        "address": _address(rng),
        "tags": [t for t in ("beta", "vip", "churn-risk", "ß-tester", "🚀") if rng.random() < 0.4],
        "verified": rng.random() < 0.5,
        "company": None if rng.random() < 0.3 else {"name": "Acme GmbH", "employees": rng.randrange(1, 5000)},
    }


def _track_properties(rng: random.Random, event: str) -> dict:
    currency = _CURRENCIES[rng.randrange(len(_CURRENCIES))]
    products = []
    revenue = 0.0
    for _ in range(rng.randrange(1, 4)):
        sku, pname, price = _PRODUCTS[rng.randrange(len(_PRODUCTS))]
        qty = rng.randrange(1, 4)
        revenue += price * qty
        products.append({"product_id": sku, "sku": sku, "name": pname, "price": price, "quantity": qty,
                         "category": "Gear", "variant": None if rng.random() < 0.5 else "blue",
                         "image_url": f"https://cdn.example.com/img/{sku}.png"})
    return {
        "order_id": f"ord_{rng.getrandbits(40):010x}",
        "checkout_id": None,
        "revenue": round(revenue, 2),
        "total": round(revenue * 1.19, 2),
        "tax": round(revenue * 0.19, 2),
        "discount": 0.0 if rng.random() < 0.6 else 2.5,
        "coupon": None if rng.random() < 0.7 else "SPRING-Ü10",
        "currency": currency,
        "products": products,
        "shipping": {"method": "express", "cost": 4.99, "address": _address(rng)},
        "first_purchase": rng.random() < 0.2,
        "experiment": {"id": "exp_42", "variant": ["control", "treatment"][rng.randrange(2)],
                       "weights": [0.5, 0.5]},
        "label": event,
    }


def make_call(rng: random.Random, call_type: str, received_at: datetime) -> dict:
    """One Segment-spec call of ``call_type`` received at ``received_at`` (aware UTC datetime)."""
    message_id = _uuid(rng)  # drawn first: callers may rely on it
    sent = received_at - timedelta(milliseconds=rng.randrange(20, 1500))
    ts = sent - timedelta(milliseconds=rng.randrange(0, 5000))
    call: dict = {"messageId": message_id, "type": call_type}
    r = rng.random()
    user_id = f"user_{rng.randrange(1, 200000)}"
    anon = _uuid(rng)
    if r < 0.55:
        call["userId"] = user_id
        call["anonymousId"] = anon
    elif r < 0.75:
        call["userId"] = user_id
        if rng.random() < 0.5:
            call["anonymousId"] = None
    else:
        call["anonymousId"] = anon
        if rng.random() < 0.5:
            call["userId"] = None
    ts_s = format_ms(ts)
    call["timestamp"] = ts_s
    call["originalTimestamp"] = ts_s
    call["sentAt"] = format_ms(sent)
    call["receivedAt"] = format_ms(received_at)
    call["context"] = _context(rng, call_type)
    call["integrations"] = {} if rng.random() < 0.3 else {"All": True, "Mixpanel": False}
    if call_type == "identify":
        call["traits"] = _traits(rng)
    elif call_type == "track":
        event = _EVENTS[rng.randrange(len(_EVENTS))]
        call["event"] = event
        call["properties"] = _track_properties(rng, event)
    elif call_type in ("page", "screen"):
        i = rng.randrange(len(_TITLES))
        call["name"] = _TITLES[i] if call_type == "page" else _SCREENS[rng.randrange(len(_SCREENS))]
        if rng.random() < 0.7:
            call["category"] = _CATEGORIES[rng.randrange(len(_CATEGORIES))]
        props = {"path": _PATHS[i], "url": f"https://www.example.com{_PATHS[i]}", "title": _TITLES[i],
                 "referrer": _REFERRERS[rng.randrange(len(_REFERRERS))], "search": "",
                 "scroll_depth": rng.randrange(0, 101), "load_time_ms": round(rng.random() * 900, 1),
                 "ab_tests": [{"id": "hero", "variant": "b"}, {"id": "nav", "variant": None}],
                 "logged_in": "userId" in call and call["userId"] is not None}
        call["properties"] = props
    elif call_type == "group":
        call["groupId"] = f"grp_{rng.randrange(1, 5000)}"
        company = ["Acme GmbH", "Ñandú Labs", "株式会社サンプル", "Initech"][rng.randrange(4)]
        call["traits"] = {"name": company,
                          "industry": "Software", "employees": rng.randrange(1, 10000), "plan": "enterprise",
                          "website": "https://www.example.com", "address": _address(rng),
                          "mrr": round(rng.random() * 10000, 2), "tags": ["b2b", "emea"]}
    elif call_type == "alias":
        call["previousId"] = anon if rng.random() < 0.7 else f"legacy_{rng.randrange(1, 10**6)}"
        call.setdefault("userId", user_id)
        if call["userId"] is None:
            call["userId"] = user_id
    else:
        raise ValueError(f"unknown call type {call_type!r}")
    return call


def minute_calls(seed: int, minute: int, rate_per_minute: int, call_type: str | None = None,
                 start_ns: int | None = None, end_ns: int | None = None) -> list[dict]:
    """Calls of one UTC minute (``minute`` = minutes since the epoch), optionally filtered by type and
    by ``start_ns <= receivedAt < end_ns``; sorted by (receivedAt, messageId)."""
    mrng = random.Random(f"{seed}:{minute}")
    base_ns = minute * MINUTE_NS
    keep = []
    for _ in range(rate_per_minute):
        t = _pick_type(mrng)
        ms = mrng.randrange(60000)
        cseed = mrng.getrandbits(64)
        if call_type is not None and t != call_type:
            continue
        ns = base_ns + ms * 1_000_000
        if (start_ns is not None and ns < start_ns) or (end_ns is not None and ns >= end_ns):
            continue
        keep.append((ms, t, cseed))
    out = []
    for ms, t, cseed in keep:
        when = _EPOCH + timedelta(minutes=minute, milliseconds=ms)
        call = make_call(random.Random(cseed), t, when)
        out.append((ms, call["messageId"], call))
    out.sort(key=lambda x: (x[0], x[1]))
    return [c for _, _, c in out]


def generate_calls(seed: int, start: datetime, end: datetime, rate_per_minute: int) -> Iterator[dict]:
    """All synthetic calls (all types) with receivedAt in [start, end), sorted by (receivedAt, messageId)."""
    s, e = datetime_to_ns(start), datetime_to_ns(end)
    for minute in range(s // MINUTE_NS, -(-e // MINUTE_NS)):
        yield from minute_calls(seed, minute, rate_per_minute, None, s, e)


# --------------------------------------------------------------------------------------------------------
# Fast bulk generation for `python -m emulator generate` (templates + varied ids/times).

def write_ndjson(out, count: int, start: datetime, minutes: float = 10, seed: int = 1,
                 templates: int = 2000) -> int:
    """Write ``count`` calls to the binary file object ``out``, receivedAt spread evenly over
    [start, start + minutes), sorted by (receivedAt, messageId). Returns bytes written."""
    import orjson

    rng = random.Random(f"{seed}:bulk")
    t0 = _EPOCH + timedelta(microseconds=datetime_to_ns(start) // 1000)
    pool = []
    for _ in range(templates):
        t = _pick_type(rng)
        call = make_call(random.Random(rng.getrandbits(64)), t, t0)
        sent_ms = rng.randrange(20, 1500)
        pool.append((call, sent_ms, sent_ms + rng.randrange(0, 5000)))
    start_ms = datetime_to_ns(start) // 1_000_000
    total_ms = int(minutes * 60_000)
    if count <= 0 or total_ms <= 0:
        return 0
    sec_cache: dict[int, str] = {}

    def fmt(ms: int) -> str:
        s, r = divmod(ms, 1000)
        p = sec_cache.get(s)
        if p is None:
            if len(sec_cache) > 20000:
                sec_cache.clear()
            p = f"{_EPOCH + timedelta(seconds=s):%Y-%m-%dT%H:%M:%S}"
            sec_cache[s] = p
        return f"{p}.{r:03d}Z"

    dumps = orjson.dumps
    opt = orjson.OPT_APPEND_NEWLINE
    getrandbits = rng.getrandbits
    npool = len(pool)
    written = 0
    buf: list[bytes] = []
    group: list[tuple[str, dict]] = []
    group_ms = None

    def flush_group():
        if len(group) > 1:
            group.sort(key=lambda g: g[0])
        for _, c in group:
            buf.append(dumps(c, option=opt))
        group.clear()

    for i in range(count):
        ms = start_ms + (i * total_ms) // count
        if ms != group_ms:
            flush_group()
            group_ms = ms
            if len(buf) >= 5000:
                chunk = b"".join(buf)
                out.write(chunk)
                written += len(chunk)
                buf.clear()
        tpl, sent_off, ts_off = pool[getrandbits(31) % npool]
        c = dict(tpl)
        h = f"{getrandbits(128):032x}"
        mid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
        c["messageId"] = mid
        c["receivedAt"] = fmt(ms)
        c["sentAt"] = fmt(ms - sent_off)
        ts = fmt(ms - ts_off)
        c["timestamp"] = ts
        c["originalTimestamp"] = ts
        if c.get("userId") is not None:
            c["userId"] = f"user_{getrandbits(20)}"
        if c.get("anonymousId") is not None:
            h2 = f"{getrandbits(64):016x}"
            c["anonymousId"] = f"{h2[:8]}-{h2[8:12]}-4{h2[12:15]}-b{h2[0:3]}-{h2[3:15]}"
        group.append((mid, c))
    flush_group()
    if buf:
        chunk = b"".join(buf)
        out.write(chunk)
        written += len(chunk)
    return written
