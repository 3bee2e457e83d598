"""Dead letters read again: ``rejected list`` and ``rejected replay`` (docs/operations.md).

The live export's ``{BLOB_PATH}/_rejected/`` files (shared/dead_letters.py, docs/file-format.md)
are only ever read here, never written, moved or deleted. :func:`read_entry` (pure) turns one of
their lines back into the original call, or says why it cannot be replayed: a line over the line
cap was stored as its length, SHA-256 and first bytes only, and a call a page repeated is already
in a data file. :class:`ReplaySource` serves the replayable lines of a window's file as ETL API
pages, so a replay runs through the same units, parsers and writers as any export
(shared/backfill_run.py), re-validated under today's settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from shared.blob_store import BlobStore
from shared.calltypes import CALL_TYPES
from shared.etl_client import PAGE_LIMIT, Destination
from shared.lines import LineBlock
from shared.page_order import REPEAT_REASON
from shared.page_reader import PREFIX_BYTES, OversizedLine, Page
from shared.records import RejectedCall

_NAME = re.compile(r"(?P<dest>[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\.(?P<stamp>\d{8}T\d{4}Z)\.(?P<type>[a-z]+)\.ndjson")
OVER_CAP = "stored as its length, SHA-256 and first bytes only (over the line cap): the call itself was never kept"
REPEATED = "a call the ETL API repeated across pages: its first copy is in a data file"


@dataclass(frozen=True)
class RejectedFile:
    """One dead-letter file of the live export."""

    name: str
    window_start: datetime
    call_type: str


@dataclass(frozen=True)
class Entry:
    """One dead-letter line: its reason, and the original call (``line``) or why it cannot be
    replayed (``unreplayable``)."""

    reason: str
    line: bytes | None = None
    unreplayable: str | None = None
    line_bytes: int | None = None
    line_sha256: str | None = None


def read_entry(raw: bytes) -> Entry:
    """One line of a ``_rejected/`` file (never raises: a line this version did not write is an
    unreplayable entry saying so)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Entry("(unreadable)", unreplayable="not a dead-letter line the exporter writes (not JSON)")
    if not isinstance(value, dict) or not isinstance(value.get("reason"), str):
        return Entry("(unreadable)", unreplayable="not a dead-letter line the exporter writes (no reason)")
    reason = value["reason"]
    if "line_sha256" in value:
        size = value.get("line_bytes")
        digest = value.get("line_sha256")
        return Entry(reason, unreplayable=OVER_CAP, line_bytes=size if isinstance(size, int) else None,
                     line_sha256=digest if isinstance(digest, str) else None)
    if reason == REPEAT_REASON:
        return Entry(reason, unreplayable=REPEATED)
    line: bytes | None = None
    if isinstance(value.get("line"), str):
        try:
            line = value["line"].encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON: not a line we wrote
            line = None
    elif isinstance(value.get("line_base64"), str):
        try:
            line = base64.b64decode(value["line_base64"], validate=True)
        except (binascii.Error, ValueError):
            line = None
    if line is None or b"\n" in line:
        return Entry(reason, unreplayable="not a dead-letter line the exporter writes (no line)")
    return Entry(reason, line=line)


def reason_group(reason: str) -> str:
    """A reason with its numbers as N, cut: lines that failed the same rule count together."""
    text = re.sub(r"\d+", "N", reason)
    return text if len(text) <= 100 else text[:97] + "..."


def rejected_files(blobs: BlobStore, dest_key: str, since: datetime | None = None,
                   until: datetime | None = None) -> list[RejectedFile]:
    """The live export's dead-letter files of ``dest_key`` with a window start in [since, until),
    oldest first (one listing; a backfill's own ``_rejected/`` is under ``_backfill/`` and not here)."""
    prefix = blobs.name(f"_rejected/{dest_key}.")
    names = blobs.call("l", lambda: [b.name for b in blobs.container.list_blobs(name_starts_with=prefix)])
    out = []
    for name in names:
        m = _NAME.fullmatch(name.rpartition("/")[2])
        if not m or m["dest"] != dest_key or m["type"] not in CALL_TYPES:
            continue
        start = datetime.strptime(m["stamp"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        if (since is None or start >= since) and (until is None or start < until):
            out.append(RejectedFile(name, start, m["type"]))
    return sorted(out, key=lambda f: (f.window_start, CALL_TYPES.index(f.call_type)))


def raw_lines(blobs: BlobStore, name: str) -> Iterator[bytes]:
    """The lines of a blob, streamed (a read; the blob is not changed)."""
    download = blobs.call("r", lambda: blobs.container.get_blob_client(name).download_blob())
    chunks = iter(download.chunks())
    rest = b""
    while (chunk := blobs.call("r", lambda: next(chunks, None))) is not None:  # storage errors mapped
        rest += chunk
        *lines, rest = rest.split(b"\n")
        yield from (line for line in lines if line)
    if rest:
        yield rest


@dataclass
class Tally:
    """What a set of dead-letter files holds: calls by reason, type and window; replayable or not."""

    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, reason group)
    by_window: Counter[tuple[datetime, str]] = field(default_factory=Counter)
    by_file: Counter[str] = field(default_factory=Counter)  # replayable calls per file name
    replayable: int = 0
    unreplayable: int = 0

    @property
    def total(self) -> int:
        return self.replayable + self.unreplayable


def tally(blobs: BlobStore, files: list[RejectedFile], notes: list[str] | None = None) -> Tally:
    """Read the files once; ``notes`` gets one line per call that cannot be replayed."""
    out = Tally()
    for f in files:
        for raw in raw_lines(blobs, f.name):
            entry = read_entry(raw)
            out.by_reason[(f.call_type, reason_group(entry.reason))] += 1
            out.by_window[(f.window_start, f.call_type)] += 1
            if entry.line is None:
                out.unreplayable += 1
                if notes is not None:
                    notes.append(unreplayable_note(f, entry))
            else:
                out.replayable += 1
                out.by_file[f.name] += 1
    return out


def unreplayable_note(f: RejectedFile, entry: Entry) -> str:
    what = ""
    if entry.line_bytes is not None or entry.line_sha256:
        what = f" (line of {entry.line_bytes} bytes, sha256 {entry.line_sha256})"
    return f"{f.name}: a call cannot be replayed{what}: {entry.unreplayable}"


class ReplaySource:
    """The replayable calls of the live export's dead-letter files, served like the ETL API:
    ``destination()`` is the pinned destination, ``pages()`` a window's lines in pages."""

    def __init__(self, blobs: BlobStore, dest: Destination, page_lines: int = PAGE_LIMIT) -> None:
        self.blobs = blobs  # the live export's folder
        self.dest = dest
        self.page_lines = page_lines

    def destination(self) -> Destination:
        return self.dest

    def pages(self, call_type: str, start: datetime, end: datetime, *, line_cap: int,
              deadline: float | None = None) -> Iterator[Page]:
        """The window's replayable calls in their file order; a line over ``line_cap`` is set
        aside as an over-cap line, as the ETL client would. No file: no calls."""
        name = self.blobs.rejected_file_name(self.dest.key, start, call_type)
        if self.blobs.metadata_of(name) is None:
            return
        lines: list[bytes] = []
        aside: list[tuple[int, OversizedLine | RejectedCall]] = []
        for raw in raw_lines(self.blobs, name):
            entry = read_entry(raw)
            if entry.line is None:
                continue
            if len(entry.line) > line_cap:
                aside.append((len(lines), OversizedLine(len(entry.line), hashlib.sha256(entry.line).hexdigest(),
                                                        entry.line[:PREFIX_BYTES], line_cap)))
                continue
            lines.append(entry.line)
            if len(lines) >= self.page_lines:
                yield Page(LineBlock.from_lines(lines), tuple(aside))
                lines, aside = [], []
        if lines or aside:
            yield Page(LineBlock.from_lines(lines), tuple(aside))

    def close(self) -> None:
        """Nothing to close: the blob store is the run's."""
