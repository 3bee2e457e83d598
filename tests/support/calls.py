"""Deterministic test calls of every type, including values that are hard to round-trip."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.calltypes import CALL_TYPES

NASTY_STRINGS = [
    "plain",
    "",
    "comma, and \"quotes\"",
    "line\nbreak and\r\ncrlf",
    "tab\there",
    "nul\u0000byte",
    "line sep \u2028 para sep \u2029 nel \u0085",
    "=SUM(A1:A2)",
    "+1 555",
    "-minus",
    "@mention",
    "emoji 😀🎉 and ÜBER Zoë Ñandú 注文完了",
    "back\\slash",
    " leading and trailing ",
]


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_call(call_type: str, received_at: datetime, rng: random.Random, nasty: bool = True) -> dict[str, Any]:
    """One Segment-spec call of ``call_type`` received at ``received_at``."""
    s = (lambda: rng.choice(NASTY_STRINGS)) if nasty else (lambda: "value")
    call: dict[str, Any] = {
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "type": call_type,
        "userId": rng.choice([f"user-{rng.randint(1, 999)}", None, s()]),
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "timestamp": _ts(received_at - timedelta(seconds=1)),
        "originalTimestamp": _ts(received_at - timedelta(seconds=2)),
        "sentAt": _ts(received_at - timedelta(milliseconds=500)),
        "receivedAt": _ts(received_at),
        "context": {"library": {"name": "analytics.js", "version": "2.11.1"}, "note": s(),
                    "ip": "203.0.113.7", "nested": {"list": [1, 2.5, True, None, s()]}},
        "integrations": rng.choice([{}, {"All": True, "Mixpanel": False}]),
    }
    if call_type == "identify":
        call["traits"] = {"email": "a@example.com", "name": s(), "score": 3.0, "logins": 7}
    elif call_type == "track":
        call["event"] = rng.choice(["Order Completed", "ÜBER Event", "注文完了", s() or "Empty"])
        call["properties"] = {"revenue": 19.99, "items": [{"sku": s(), "qty": 2}], "flag": False}
    elif call_type in ("page", "screen"):
        call["name"] = s()
        if rng.random() < 0.7:
            call["category"] = s()
        call["properties"] = {"path": "/x", "title": s()}
    elif call_type == "group":
        call["groupId"] = f"group-{rng.randint(1, 50)}"
        call["traits"] = {"plan": "enterprise", "employees": 120}
    elif call_type == "alias":
        call["previousId"] = s()
    if nasty and rng.random() < 0.2:
        call["customTopLevel"] = {"kept": s()}
    return call


def make_window_calls(
    start: datetime, minutes: int = 10, per_type: dict[str, int] | None = None, seed: int = 7,
    nasty: bool = True,
) -> list[dict[str, Any]]:
    """Calls of every type spread over ``[start, start + minutes)``."""
    rng = random.Random(seed)
    per_type = per_type if per_type is not None else {t: 5 for t in CALL_TYPES}
    out = []
    span_ms = minutes * 60_000
    for call_type, n in per_type.items():
        for _ in range(n):
            at = start + timedelta(milliseconds=rng.randrange(span_ms))
            out.append(make_call(call_type, at, rng, nasty))
    return out
