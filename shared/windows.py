"""Export windows: closed 10-minute intervals [start, end) aligned to UTC. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

WINDOW = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def starting(cls, start: datetime) -> Window:
        return cls(start, start + WINDOW)

    def label(self) -> str:
        return f"{format_rfc3339(self.start)}/{format_rfc3339(self.end)}"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset; any fraction) to an aware UTC datetime."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return parsed.astimezone(UTC)


def format_rfc3339(moment: datetime) -> str:
    """``2026-11-28T21:30:00Z`` (whole seconds, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor_window(moment: datetime) -> datetime:
    """The start of the window holding ``moment``."""
    moment = moment.astimezone(UTC)
    steps = (moment - _EPOCH) // WINDOW
    return _EPOCH + steps * WINDOW


def latest_due_end(now: datetime, settle_seconds: int) -> datetime:
    """The end of the newest window that is closed and settled: ``end + settle <= now``."""
    return floor_window(now - timedelta(seconds=settle_seconds))


def due_windows(next_start: datetime, now: datetime, settle_seconds: int, limit: int) -> list[Window]:
    """Windows from ``next_start`` on that are due at ``now``, oldest first, at most ``limit``."""
    last_end = latest_due_end(now, settle_seconds)
    out: list[Window] = []
    start = next_start
    while start + WINDOW <= last_end and len(out) < limit:
        out.append(Window.starting(start))
        start += WINDOW
    return out
