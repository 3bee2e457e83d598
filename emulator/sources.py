"""Call sources for the emulator.

A source answers a query (type, start, end) with a :class:`Selection`: the lines of the calls of that
type with ``start <= receivedAt < end``, ordered by (receivedAt instant, messageId), as raw bytes each
ending with ``b"\\n"``. ``Selection.page(offset, limit)`` returns the concatenated bytes of a slice.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime

import orjson

from .synthetic import CALL_TYPES, MINUTE_NS, minute_calls
from .timeutil import to_ns

__all__ = ["CALL_TYPES", "FileSource", "Selection", "Source", "StaticSource", "SyntheticSource"]

log = logging.getLogger("emulator.sources")


class Selection:
    """The ordered lines of one query. ``count`` lines; ``page`` joins a slice of them."""

    def __init__(self, lines: list[bytes]):
        self._lines = lines
        self.count = len(lines)

    def page(self, offset: int, limit: int) -> bytes:
        return b"".join(self._lines[offset:offset + limit])

    def lines(self) -> list[bytes]:
        return list(self._lines)


class Source:
    """Base class. Subclasses implement ``select(call_type, start_ns, end_ns) -> Selection``."""

    def select(self, call_type: str, start_ns: int, end_ns: int) -> Selection:  # pragma: no cover
        raise NotImplementedError

    def query(self, call_type: str, start: str | datetime | int, end: str | datetime | int) -> list[bytes]:
        """Convenience: the matching lines (each ending with ``\\n``) for RFC 3339 strings/datetimes/ns."""
        sel = self.select(call_type, to_ns(start), to_ns(end))
        return sel.lines() if hasattr(sel, "lines") else _split(sel.page(0, sel.count))


def _split(data: bytes) -> list[bytes]:
    return [ln + b"\n" for ln in data.split(b"\n")[:-1]]


def _message_id(obj) -> str:
    if isinstance(obj, dict):
        mid = obj.get("messageId")
        if isinstance(mid, str):
            return mid
    return ""


# --------------------------------------------------------------------------------------------------------


class StaticSource(Source):
    """In-memory calls: dicts (encoded with orjson) or ``(type, received_at, raw_line)`` tuples served
    verbatim (a missing trailing newline is added)."""

    def __init__(self, calls: Iterable = ()):
        self._lock = threading.Lock()
        self._rows: dict[str, list[tuple[int, str, bytes]]] = {}
        self._keys: dict[str, list[tuple[int, str]]] = {}
        self._dirty: set[str] = set()
        self.skipped = 0
        self.add(calls)

    def add(self, calls: Iterable) -> None:
        rows = []
        skipped = 0
        for item in calls:
            if isinstance(item, dict):
                ctype = item.get("type")
                try:
                    ns = to_ns(item["receivedAt"])
                except (KeyError, ValueError, TypeError):
                    skipped += 1
                    continue
                if not isinstance(ctype, str):
                    skipped += 1
                    continue
                line = orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)
                rows.append((ctype, ns, _message_id(item), line))
            else:
                ctype, received_at, raw = item
                if isinstance(raw, str):
                    raw = raw.encode("utf-8")
                raw = bytes(raw)
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                try:
                    mid = _message_id(orjson.loads(raw))
                except orjson.JSONDecodeError:
                    mid = ""
                rows.append((ctype, to_ns(received_at), mid, raw))
        with self._lock:
            self.skipped += skipped
            for ctype, ns, mid, raw in rows:
                self._rows.setdefault(ctype, []).append((ns, mid, raw))
                self._dirty.add(ctype)

    def remove(self, message_ids: Iterable[str]) -> int:
        """Drop the calls with these messageIds (a window that changes after it was exported); how many."""
        drop = set(message_ids)
        removed = 0
        with self._lock:
            for ctype, rows in self._rows.items():
                kept = [r for r in rows if r[1] not in drop]
                removed += len(rows) - len(kept)
                if len(kept) != len(rows):
                    self._rows[ctype] = kept
                    self._dirty.add(ctype)
        return removed

    def _sorted(self, call_type: str):
        with self._lock:
            rows = self._rows.get(call_type)
            if rows is None:
                return [], []
            if call_type in self._dirty:
                rows.sort(key=lambda r: (r[0], r[1]))
                self._keys[call_type] = [(r[0], r[1]) for r in rows]
                self._dirty.discard(call_type)
            return rows, self._keys[call_type]

    def select(self, call_type: str, start_ns: int, end_ns: int) -> Selection:
        rows, keys = self._sorted(call_type)
        lo = bisect_left(keys, (start_ns,))
        hi = bisect_left(keys, (end_ns,))
        return Selection([r[2] for r in rows[lo:hi]])

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._rows.values())


# --------------------------------------------------------------------------------------------------------


class SyntheticSource(Source):
    """Deterministic synthetic calls (see :mod:`emulator.synthetic`); recent windows are cached."""

    def __init__(self, seed: int = 1, rate_per_minute: int = 30, cache_windows: int = 8):
        self.seed = seed
        self.rate_per_minute = rate_per_minute
        self._cache: OrderedDict[tuple, Selection] = OrderedDict()
        self._cache_size = cache_windows
        self._lock = threading.Lock()

    def select(self, call_type: str, start_ns: int, end_ns: int) -> Selection:
        key = (call_type, start_ns, end_ns)
        with self._lock:
            sel = self._cache.get(key)
            if sel is not None:
                self._cache.move_to_end(key)
                return sel
        dumps, opt, seed, rate = orjson.dumps, orjson.OPT_APPEND_NEWLINE, self.seed, self.rate_per_minute
        lines: list[bytes] = []
        if end_ns > start_ns:
            for minute in range(start_ns // MINUTE_NS, -(-end_ns // MINUTE_NS)):
                for call in minute_calls(seed, minute, rate, call_type, start_ns, end_ns):
                    lines.append(dumps(call, option=opt))
        sel = Selection(lines)
        with self._lock:
            self._cache[key] = sel
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return sel


# --------------------------------------------------------------------------------------------------------


class _FileSelection:
    def __init__(self, src: FileSource, call_type: str, lo: int, hi: int):
        self._src, self._type, self._lo = src, call_type, lo
        self.count = hi - lo

    def page(self, offset: int, limit: int) -> bytes:
        a = self._lo + max(0, offset)
        b = self._lo + min(self.count, offset + limit)
        if b <= a:
            return b""
        return self._src._read(self._type, a, b)


class FileSource(Source):
    """Calls from an NDJSON file, indexed once at construction (per type: receivedAt ns, offset, length
    in compact arrays); pages are read from the file (mmap) by offset. Unreadable lines are skipped and
    counted in ``skipped``."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.skipped = 0
        self.count = 0
        self._index: dict[str, tuple[array, array, array]] = {}
        self._build()
        with open(self.path, "rb") as fh:  # the mapping stays valid after the file object is closed
            size = os.fstat(fh.fileno()).st_size
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def _build(self) -> None:
        loads = orjson.loads
        per: dict[str, tuple[array, array, array, list[str]]] = {}
        last: dict[str, tuple[int, str]] = {}
        unsorted: set[str] = set()
        offset = 0
        skipped = 0
        with open(self.path, "rb", buffering=16 * 1024 * 1024) as f:
            for line in f:
                n = len(line)
                body = line[:-1] if line.endswith(b"\n") else line
                pos = offset
                offset += n
                if not body.strip():
                    continue
                try:
                    obj = loads(body)
                    ctype = obj["type"]
                    ns = to_ns(obj["receivedAt"])
                    if not isinstance(ctype, str):
                        raise TypeError("type")
                except Exception:
                    skipped += 1
                    continue
                mid = obj.get("messageId")
                if not isinstance(mid, str):
                    mid = ""
                arrs = per.get(ctype)
                if arrs is None:
                    arrs = per[ctype] = (array("q"), array("q"), array("q"), [])
                arrs[0].append(ns)
                arrs[1].append(pos)
                arrs[2].append(len(body))
                arrs[3].append(mid)
                key = (ns, mid)
                prev = last.get(ctype)
                if prev is not None and key < prev:
                    unsorted.add(ctype)
                last[ctype] = key
        for ctype, (nss, offs, lens, mids) in per.items():
            if ctype in unsorted:
                order = sorted(range(len(nss)), key=lambda i: (nss[i], mids[i]))
                nss = array("q", (nss[i] for i in order))
                offs = array("q", (offs[i] for i in order))
                lens = array("q", (lens[i] for i in order))
            self._index[ctype] = (nss, offs, lens)
            self.count += len(nss)
        self.skipped = skipped
        if skipped:
            log.warning("FileSource(%s): skipped %d unreadable line(s)", self.path, skipped)

    def select(self, call_type: str, start_ns: int, end_ns: int) -> _FileSelection:
        idx = self._index.get(call_type)
        if idx is None:
            return _FileSelection(self, call_type, 0, 0)
        nss = idx[0]
        return _FileSelection(self, call_type, bisect_left(nss, start_ns), bisect_left(nss, end_ns))

    def _read(self, call_type: str, a: int, b: int) -> bytes:
        _, offs, lens = self._index[call_type]
        mm = self._mm
        parts = [mm[o:o + n] for o, n in zip(offs[a:b], lens[a:b])]
        parts.append(b"")
        return b"\n".join(parts)

    def close(self) -> None:
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
