"""A call belongs in a window's file only if its ``receivedAt`` lies in that window. Pure.

The ETL API is asked for the calls of one window ``[start, end)``; a call it serves whose
``receivedAt`` is missing, unreadable or outside that window would land in the wrong file (and a
server that ignores ``start``/``end`` would put the same call in every window's file). Such a
call is dead-lettered with the reason instead (docs/file-format.md, "Bad calls").

The rule (:func:`received_reason`, per call; the reference): ``receivedAt`` is a JSON string
holding an RFC 3339 date-time with an offset, ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)``
(``T`` and ``Z`` in either case, any number of fraction digits, a real calendar date, seconds
00-59, offset hours 00-23), whose instant ``t`` has ``start <= t < end``.

The check per column (:func:`window_rejections`) proves the common case without Python per row:
a value of the form ``<start's UTC date>T<hh:mm:ss>[.<1 to 9 digits>]Z`` whose ``hh:mm:ss`` lies
in ``[start's time, end's time)`` as a string is inside the window (numpy over the column's
buffers; window bounds are whole seconds). Only the other values (offsets, other dates, lower
case, longer fractions, anything odd) are judged one by one, by the reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa

from shared.windows import Window

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)

MISSING = "receivedAt is missing or null: a call needs it to be placed in a window"
NOT_RFC3339 = (
    "receivedAt is not an RFC 3339 date-time with an offset (such as 2024-05-01T12:00:00.123Z)"
)


def outside_reason(window: Window) -> str:
    return f"receivedAt is outside the window {window.label()} the ETL API served the call for"


def instant_us(text: str) -> int | None:
    """Microseconds since the epoch of an RFC 3339 date-time with an offset (fraction digits past
    the sixth dropped: the floor of the instant), or None when ``text`` is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    fraction = (m.group(7) or "")[:6].ljust(6, "0")
    try:
        moment = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=UTC)
    except ValueError:  # no such date, hour 24+, minute or second 60+
        return None
    us = (moment - _EPOCH) // _MICROSECOND
    if m.group(8):
        off_hours, off_minutes = int(m.group(9)), int(m.group(10))
        if off_hours > 23 or off_minutes > 59:
            return None
        offset = (off_hours * 60 + off_minutes) * 60_000_000
        us = us - offset if m.group(8) == "+" else us + offset
    return us


def received_reason(cell: str | None, window: Window) -> str | None:
    """Why a call whose ``receivedAt`` cell is ``cell`` (its CSV/Parquet cell: the string, or the
    JSON text of another value, None when absent or null) does not belong in ``window``, or None."""
    if cell is None:
        return MISSING
    us = instant_us(cell)
    if us is None:
        return NOT_RFC3339
    start, end = _bounds_us(window)
    if not start <= us < end:
        return outside_reason(window)
    return None


def _bounds_us(window: Window) -> tuple[int, int]:
    return (window.start - _EPOCH) // _MICROSECOND, (window.end - _EPOCH) // _MICROSECOND


#: Fraction digits the column test reads; a longer fraction is judged by the reference.
_FRACTION_DIGITS = 9


@dataclass(frozen=True)
class _ColumnTest:
    #: per length of value (20, or 22 to 30): the lowest and the highest byte allowed at each place
    #: of ``<date>T<hh:mm:ss>Z`` or ``<date>T<hh:mm:ss>.<digits>Z``
    forms: dict[int, tuple[np.ndarray, np.ndarray]]
    first: int  # the window's first time and its end time, hh:mm:ss as big-endian 8-byte numbers
    end: int


@lru_cache(maxsize=64)
def _column_test(window: Window) -> _ColumnTest | None:
    """The column test of ``window``, or None when the window does not allow it (bounds that are
    not whole seconds, or a window over more than one UTC day)."""
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    if start.microsecond or end.microsecond or end <= start:
        return None
    day = start.date()
    if end.date() == day:
        last = f"{end:%H:%M:%S}"
    elif end == datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1):
        last = "24:00:00"  # after every time of the day, as a string
    else:
        return None
    date = f"{day.year:04d}-{day.month:02d}-{day.day:02d}T"
    forms = {20: (date + "00:00:00Z", date + "99:59:59Z")}
    for digits in range(1, _FRACTION_DIGITS + 1):
        forms[21 + digits] = (date + "00:00:00." + "0" * digits + "Z", date + "99:59:59." + "9" * digits + "Z")
    return _ColumnTest(
        {n: (_bytes(low), _bytes(high)) for n, (low, high) in forms.items()},
        int.from_bytes(f"{start:%H:%M:%S}".encode(), "big"), int.from_bytes(last.encode(), "big"),
    )


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def inside_by_column(values: pa.Array, window: Window) -> np.ndarray:
    """Bool per value: True where the column test proves the value inside ``window``. False says
    nothing yet: the value must be judged by :func:`received_reason`.

    The test, on the column's buffers with numpy (no Python per value): the value is
    ``<date>T<hh:mm:ss>Z`` or ``<date>T<hh:mm:ss>.<1 to 9 digits>Z``, ``<date>`` the window's UTC
    date, the minutes and seconds 00-59 (each byte within its range) and ``hh:mm:ss`` in
    ``[first time, end time)`` as strings. The values of one length are read as a table, one row
    each (in place when all have the same length, the usual case)."""
    test = _column_test(window)
    n = len(values)
    inside = np.zeros(n, dtype=bool)
    if test is None or n == 0:
        return inside
    offsets_buffer, data_buffer = values.buffers()[1:3]
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)[values.offset : values.offset + n + 1].astype(np.int64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    if data_buffer is None:
        return inside
    text = np.frombuffer(data_buffer, dtype=np.uint8)
    valid = values.is_valid().to_numpy(zero_copy_only=False) if values.null_count else None
    common = int(lengths[0])
    groups = [(common, None)] if (lengths == common).all() else [(int(k), lengths == k) for k in np.unique(lengths)]
    for length, rows in groups:
        form = test.forms.get(length)
        if form is None:
            continue
        low, high = form
        if rows is None:
            table = text[starts[0] : starts[0] + n * length].reshape(n, length)
        else:
            table = text[starts[rows][:, None] + np.arange(length)]
        ok = ((table >= low) & (table <= high)).all(axis=1)
        hms = np.ascontiguousarray(table[:, 11:19]).view(">u8").ravel()
        ok &= (hms >= test.first) & (hms < test.end)
        if rows is None:
            inside = ok
        else:
            inside[rows] = ok
    if valid is not None:
        inside &= valid
    return inside


def window_rejections(values: pa.Array | list[str | None], window: Window) -> list[tuple[int, str]]:
    """(row, reason) for each value of a ``receivedAt`` column that keeps its call out of
    ``window``, in row order: the column test first, the reference for what it cannot prove."""
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.string())
    inside = inside_by_column(values, window)
    if inside.all():
        return []
    rows = np.flatnonzero(~inside)
    out: list[tuple[int, str]] = []
    for row, cell in zip(rows.tolist(), values.take(pa.array(rows)).to_pylist(), strict=True):
        reason = received_reason(cell, window)
        if reason is not None:
            out.append((row, reason))
    return out
