"""The order check at page boundaries (pure logic, no I/O; docs/etl-api.md "Order across pages").

The contract orders a window's calls by (``receivedAt`` as an instant, ``messageId``). The
client does not parse whole pages to check that; it only looks where pages meet, which is where
a server that pages wrongly shows itself:

* the first call of a page **equal** to the last call of the previous page (same instant, same
  messageId) is the same call delivered again (an offset cursor that shifted by one, a page
  boundary counted twice): it is left out of the data and dead-lettered with
  :data:`REPEAT_REASON`; so are the calls right after it while they are equal too;
* a first call **below** the last one is a pagination loop or a broken server
  (:class:`OutOfOrder`): nothing of that page may be used.

Only the last line of each page and the first line(s) of the next are decoded, and only one key
is kept, whatever the number of pages. A line whose key cannot be read (not JSON, not an object,
no string ``receivedAt``/``messageId``, a time that is not RFC 3339 with an offset) is left for
the parsers to reject; the check moves on to the next readable line (or, if the page has none,
to the next boundary).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from shared.redact import untrusted
from shared.windows import parse_rfc3339

#: The dead-letter reason of a call that repeats the last call of the previous page.
REPEAT_REASON = "repeats the previous call (same receivedAt and messageId)"

#: A call's place in the contract's order: (receivedAt in nanoseconds since the epoch, messageId).
Key = tuple[int, str]

_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def instant_ns(text: str) -> int:
    """An RFC 3339 time with an offset as nanoseconds since the epoch (digits past the ninth are
    dropped, as the ETL API's reference implementation does); ValueError otherwise."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time with an offset: {text[:40]!r}")
    whole = parse_rfc3339(f"{m[1]}T{m[2]}{m[4]}")  # checks the calendar fields and the offset
    fraction = int((m[3] or "")[:9].ljust(9, "0"))
    return calendar.timegm(whole.utctimetuple()) * 1_000_000_000 + fraction


def line_key(line: bytes | memoryview) -> Key | None:
    """The order key of one NDJSON line, or None when it cannot be read."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    received, message_id = obj.get("receivedAt"), obj.get("messageId")
    if not isinstance(received, str) or not isinstance(message_id, str):
        return None
    try:
        return instant_ns(received), message_id
    except (ValueError, OverflowError):
        return None


class OutOfOrder(Exception):
    """A page starts below the end of the previous page: a pagination loop or a broken server."""


class PageOrder:
    """Checks each page's start against the previous page's end; keeps one key, nothing else."""

    def __init__(self, start_ns: int | None = None, end_ns: int | None = None) -> None:
        """``start_ns``/``end_ns``: the window; a call outside it has no place in the order (the
        parsers dead-letter it), so it is passed over like a line whose key cannot be read."""
        self.last: Key | None = None
        self._start_ns = start_ns
        self._end_ns = end_ns

    def _key(self, line: bytes) -> Key | None:
        key = line_key(line)
        if key is None or self._start_ns is None or self._end_ns is None:
            return key
        return key if self._start_ns <= key[0] < self._end_ns else None

    def check(self, lines: Sequence[bytes]) -> list[int]:
        """The indices of the page's leading lines that repeat the previous page's last call.

        Raises :class:`OutOfOrder` when the page's first readable call is below it. Then the
        kept key is not changed.
        """
        repeats: list[int] = []
        last = self.last
        n = len(lines)
        if last is not None:
            for i in range(n):
                key = self._key(lines[i])
                if key is None:
                    continue
                if key == last:
                    repeats.append(i)
                    continue
                if key < last:
                    raise OutOfOrder(
                        f"the page starts with {_show(key)}, below the previous page's last call "
                        f"{_show(last)}, whereas calls come ordered by receivedAt, then messageId"
                    )
                break
        stop = repeats[-1] if repeats else -1  # lines up to here hold no key above ``last``
        for i in range(n - 1, stop, -1):
            key = self._key(lines[i])
            if key is not None:
                self.last = key
                break
        return repeats


def _show(key: Key) -> str:
    ns, message_id = key
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"(receivedAt {moment}.{fraction:09d}Z, messageId {untrusted(message_id, 40)!r})"
