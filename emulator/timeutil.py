"""RFC 3339 helpers working on integer nanoseconds since the Unix epoch (UTC).

Instants are compared as integers, so ``...Z``, ``...+00:00`` and fractional seconds of any
length all compare correctly.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

__all__ = ["SEC", "datetime_to_ns", "format_ms", "ns_to_datetime", "parse_rfc3339_ns", "to_ns"]

SEC = 1_000_000_000
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)
_minute_cache: dict[str, int] = {}


def parse_rfc3339_ns(value: str | bytes) -> int:
    """Parse an RFC 3339 timestamp (with ``Z`` or a numeric offset) into UTC epoch nanoseconds.

    Raises ValueError for anything else (naive times, bad calendar dates, ...).
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "strict")
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    key = value[:16]
    minute = _minute_cache.get(key)
    if minute is None:
        y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
        datetime(y, mo, d, h, mi)  # validates the calendar fields
        minute = calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0))
        if len(_minute_cache) > 100_000:
            _minute_cache.clear()
        _minute_cache[key] = minute
    sec = int(m.group(6))
    if sec > 59:
        raise ValueError(f"bad seconds in {value!r}")
    ns = (minute + sec) * SEC
    frac = m.group(7)
    if frac:
        ns += int((frac + "000000000")[:9])
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(f"bad offset in {value!r}")
        off = (oh * 3600 + om * 60) * SEC
        ns = ns - off if m.group(9) == "+" else ns + off
    return ns


def datetime_to_ns(dt: datetime) -> int:
    """Aware datetime -> epoch ns (naive datetimes are taken as UTC)."""
    if dt.tzinfo is not None:
        off = dt.utcoffset()
        if off:
            dt = dt - off
    return calendar.timegm(dt.timetuple()) * SEC + dt.microsecond * 1000


def to_ns(value: str | bytes | datetime | int) -> int:
    if isinstance(value, datetime):
        return datetime_to_ns(value)
    if isinstance(value, int):
        return value
    return parse_rfc3339_ns(value)


def ns_to_datetime(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def format_ms(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for an aware (or UTC-naive) datetime."""
    if dt.tzinfo is not None:
        off = dt.utcoffset()
        if off:
            dt = dt - off
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"
