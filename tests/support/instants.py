"""``receivedAt`` values and windows for property tests, and a plain-datetime reference of the
window rule (docs/file-format.md, "Bad calls"), written apart from :mod:`shared.received`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from shared.received import MISSING, NOT_RFC3339, outside_reason
from shared.windows import WINDOW, Window

_GRAMMAR = re.compile(
    r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)", re.ASCII
)


def plain_reason(value: str | None, window: Window) -> str | None:
    """The rule with the standard library: the RFC 3339 grammar, then ``datetime.fromisoformat``
    (which checks the calendar and the times, and keeps the first 6 fraction digits)."""
    if value is None:
        return MISSING
    if not _GRAMMAR.fullmatch(value):
        return NOT_RFC3339
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return NOT_RFC3339
    return None if window.start <= moment < window.end else outside_reason(window)


_BASE = datetime(2024, 1, 1, tzinfo=UTC)


@st.composite
def windows(draw: st.DrawFn) -> Window:
    """Mostly the export's windows (10 minutes, aligned; the last of a day and of a leap day
    too), sometimes any span with any bounds."""
    if draw(st.integers(0, 3)):
        day = draw(st.sampled_from([_BASE, datetime(2024, 2, 29, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)]))
        slot = draw(st.one_of(st.just(143), st.just(0), st.integers(0, 143)))
        return Window.starting(day + slot * WINDOW)
    start = _BASE + timedelta(microseconds=draw(st.integers(0, 3 * 86_400_000_000)))
    return Window(start, start + timedelta(microseconds=draw(st.integers(1, 3 * 86_400_000_000))))


def _render(moment: datetime, digits: int, offset_minutes: int | None, lower: bool, extra: str) -> str:
    """``moment`` in RFC 3339: ``digits`` fraction digits (its microseconds cut or padded with
    ``extra``), ``Z`` or the local time at an offset."""
    if offset_minutes is not None:
        moment = moment + timedelta(minutes=offset_minutes)
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment:%H:%M:%S}"
    if digits:
        text += "." + (f"{moment.microsecond:06d}" + extra)[:digits]
    if offset_minutes is None:
        text += "Z"
    else:
        sign = "+" if offset_minutes >= 0 else "-"
        text += f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    return text.replace("T", "t").replace("Z", "z") if lower else text


ODD = [
    "", " ", "null", "123", "true", '{"a":1}', "2024-01-01", "12:00:00Z", "2024-01-01T00:05:00",
    "2024-01-01 00:05:00Z", "2024-01-01T00:05:00+0100", "2024-01-01T00:05:00.Z", "2024-01-01T00:05Z",
    "2024-01-01T24:00:00Z", "2024-01-01T00:05:60Z", "2024-01-01T00:60:00Z", "2024-02-30T00:05:00Z",
    "2023-02-29T00:05:00Z", "2024-01-01T00:05:00+24:00", "2024-01-01T00:05:00+05:75",
    "2024-01-01T00:05:00Z\n", " 2024-01-01T00:05:00Z", "2024-01-01T00:05:00ZZ", "2024-01-01T00:05:00,5Z",
    "\uff12024-01-01T00:05:00Z", "2024-01-01T00:0\uff15:00Z", "2024-01-01T00:05:00.\u0663Z",  # other digits
    "2024-01-01T00:05:00-00:00",
    "2024-01-01T00:05:00.123456789012Z", "2024-01-01T00:05:00 Z", "+2024-01-01T00:05:00Z",
]


@st.composite
def received_values(draw: st.DrawFn, window: Window) -> str | None:
    """A ``receivedAt`` value for calls served for ``window``: mostly an instant near it (at and
    around its bounds, a day off), in any RFC 3339 form; sometimes missing or not RFC 3339."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(st.one_of(st.sampled_from(ODD), st.text(max_size=30)))
    edge = draw(st.sampled_from([window.start, window.end, window.start + (window.end - window.start) / 2]))
    delta = draw(st.one_of(
        st.sampled_from([0, -1, 1, -999, 999, -1_000_000, 1_000_000]),
        st.integers(-86_400_000_000, 86_400_000_000),
    ))
    moment = edge + timedelta(microseconds=delta)
    digits = draw(st.sampled_from([0, 3, 3, 3, 1, 2, 6, 9, 12]))
    extra = draw(st.text("0123456789", min_size=6, max_size=6))
    offset = draw(st.one_of(st.none(), st.none(), st.just(0), st.integers(-23 * 60 - 59, 23 * 60 + 59)))
    return _render(moment, digits, offset, draw(st.integers(0, 9)) == 0, extra)
