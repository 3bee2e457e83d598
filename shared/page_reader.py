"""A page body read as a bounded stream (pure logic, no I/O).

The ETL client hands every piece of a response body it receives to :class:`Inflater` (which
undoes ``Content-Encoding: gzip`` in steps of at most :data:`STEP` bytes, so a small body that
inflates to gigabytes never exists whole) and then to :class:`PageAssembler`, which keeps the
page's lines in one buffer under two caps:

* the **page cap** (``MAX_PAGE_BYTES``): the decompressed bytes of one page, every byte counted.
  Passing it raises :class:`PageTooLarge` at once; the caller reports it as a permanent error.
* the **line cap** (:func:`line_cap_for`): a line longer than this is never kept, not even for
  a moment: the bytes already buffered are cut off and the rest of the line only flows through
  a SHA-256 on its way past. What is left of it is an :class:`OversizedLine` (length, hash,
  first :data:`PREFIX_BYTES` bytes) that the export writes to the dead-letter file.

So the kept bytes of a page never pass the page cap, whatever the server sends (joined into the
page's one buffer at its end, they take twice that for a moment).
"""

from __future__ import annotations

import hashlib
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from shared.lines import LineBlock
from shared.records import RejectedCall

#: Decompressed bytes handed on per step (and raw bytes asked for per socket read).
STEP = 256 * 1024
#: Lines up to this long (or up to MAX_CALL_BYTES, if that is larger) are kept whole, so a call
#: over MAX_CALL_BYTES is still dead-lettered with its full text; longer ones only by hash.
LINE_CAP_FLOOR = 1024 * 1024
#: Bytes of an over-cap line kept for the dead-letter file.
PREFIX_BYTES = 512


def line_cap_for(max_call_bytes: int) -> int:
    """The line cap that goes with a MAX_CALL_BYTES: never below it, never below 1 MiB."""
    return max(LINE_CAP_FLOOR, max_call_bytes)


class BodyError(Exception):
    """The body is broken in transit (cut short, does not decompress): ask for the page again."""


class PageTooLarge(Exception):
    """The page passed the page cap; ``cap`` is the cap in bytes."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"more than {cap} bytes")
        self.cap = cap


@dataclass(frozen=True)
class OversizedLine:
    """A line longer than the line cap: what is kept of it instead of its bytes."""

    length: int
    sha256: str
    prefix: bytes
    cap: int

    @property
    def reason(self) -> str:
        return (
            f"line is {self.length} bytes, over the {self.cap}-byte line cap; kept as its "
            f"length, SHA-256 and first {len(self.prefix)} bytes"
        )


@dataclass(frozen=True)
class Page:
    """One page as read: its lines in one buffer, and the lines left out of it for the
    dead-letter file.

    ``set_aside`` holds ``(index, line)`` pairs: ``index`` is the number of ``lines`` that came
    before the left-out line, so the page's order is known without keeping its bytes. A left-out
    line is an :class:`OversizedLine` (over the line cap) or a :class:`RejectedCall` (a call the
    page repeats from the previous page, see :meth:`without`).
    """

    lines: LineBlock
    set_aside: tuple[tuple[int, OversizedLine | RejectedCall], ...] = ()
    nbytes: int = 0

    def without(self, drop: Sequence[int], reason: str) -> Page:
        """The page with the lines at the (ascending) indices ``drop`` moved from ``lines`` to
        the left-out lines, each as a :class:`RejectedCall` with ``reason``, in their place."""
        if not drop:
            return self
        lines = self.lines
        kept: list[LineBlock] = []
        marks: list[tuple[int, int, OversizedLine | RejectedCall]] = []
        start = 0
        for gone, i in enumerate(drop):
            kept.append(lines[start:i])
            # Sorted by (index among the kept lines, place in the page): a left-out line that
            # stood before line i sorts before line i itself.
            marks.append((i - gone, 2 * i, RejectedCall(lines[i], reason)))
            start = i + 1
        kept.append(lines[start:])
        for index, line in self.set_aside:
            before = bisect_left(drop, index)
            marks.append((index - before, 2 * index - 1, line))
        marks.sort(key=lambda mark: (mark[0], mark[1]))
        kept = [block for block in kept if len(block)]
        block = LineBlock.concat(kept) if kept else LineBlock.from_body(b"")
        return Page(block, tuple((index, line) for index, _, line in marks), self.nbytes)


class Inflater:
    """Undoes a Content-Encoding of ``gzip`` (or none) in steps of at most :data:`STEP` bytes.

    Like common HTTP clients it reads several gzip members one after the other and ignores
    bytes after a complete member that are not another member (padding some servers add).
    """

    def __init__(self, content_encoding: str, step: int = STEP) -> None:
        encoding = content_encoding.strip().lower()
        if encoding in ("", "identity"):
            self._gzip = False
        elif encoding in ("gzip", "x-gzip"):
            self._gzip = True
        else:
            raise BodyError(f"the body has Content-Encoding {encoding!r}; only gzip was asked for")
        self._step = step
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self._members = 0  # complete members before the current one
        self._swallow = False
        self._fed = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data``, one step at a time (each at most ``step`` bytes)."""
        if not data:
            return
        self._fed = True
        if self._obj is None:
            step = self._step
            if len(data) <= step:
                yield data
            else:
                view = memoryview(data)
                for i in range(0, len(data), step):
                    yield bytes(view[i : i + step])
            return
        while data and not self._swallow:
            if self._obj.eof:  # another member follows
                self._members += 1
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                piece = self._obj.decompress(data, self._step)
            except zlib.error:
                if self._members:  # bytes after a complete member that are not one
                    self._swallow = True
                    return
                raise BodyError("the gzip body does not decompress") from None
            if piece:
                yield piece
            data = self._obj.unconsumed_tail or (self._obj.unused_data if self._obj.eof else b"")

    def finish(self) -> None:
        """Raise BodyError when the body ended inside a gzip member."""
        if self._obj is not None and self._fed and not self._obj.eof and not self._swallow:
            raise BodyError("the gzip body is cut short")


class _Skipped:
    """The part of an over-cap line seen so far: only its hash, length and prefix."""

    __slots__ = ("hash", "length", "prefix")

    def __init__(self, head: bytes, prefix: bytes) -> None:
        self.hash = hashlib.sha256(head)
        self.length = len(head)
        self.prefix = prefix

    def update(self, piece: memoryview) -> None:
        self.hash.update(piece)
        self.length += len(piece)
        if len(self.prefix) < PREFIX_BYTES:
            self.prefix += bytes(piece[: PREFIX_BYTES - len(self.prefix)])


class PageAssembler:
    """Builds a :class:`Page` from decompressed pieces under the page and line caps.

    The kept pieces are joined once, at the end: one copy into the page's one buffer.
    """

    def __init__(self, page_cap: int, line_cap: int) -> None:
        self.page_cap = page_cap
        self.line_cap = line_cap
        self.nbytes = 0
        self._pieces: list[bytes | memoryview] = []  # kept bytes since the last part
        self._run = 0  # bytes of the unfinished last line at the end of _pieces
        self._skip: _Skipped | None = None
        self._parts: list[bytes | OversizedLine] = []

    def feed(self, piece: bytes) -> None:
        n = len(piece)
        if not n:
            return
        self.nbytes += n
        if self.nbytes > self.page_cap:
            raise PageTooLarge(self.page_cap)
        view = memoryview(piece)
        pos = 0
        while pos < n:
            nl = piece.find(b"\n", pos)
            end = n if nl < 0 else nl
            if self._skip is None and self._run + (end - pos) > self.line_cap:
                self._start_skip()
            if self._skip is not None:
                self._skip.update(view[pos:end])
                if nl < 0:
                    return
                self._end_skip()
                pos = nl + 1
                continue
            if nl < 0:
                self._keep(piece, view, pos, n)
                self._run += n - pos
                return
            if n - nl - 1 <= self.line_cap:
                # No line that starts after ``nl`` in this piece can pass the cap: keep the rest
                # in one go (the usual case: a piece is smaller than the cap).
                self._keep(piece, view, pos, n)
                self._run = n - piece.rfind(b"\n", nl) - 1
                return
            self._keep(piece, view, pos, nl + 1)
            self._run = 0
            pos = nl + 1

    def _keep(self, piece: bytes, view: memoryview, start: int, stop: int) -> None:
        self._pieces.append(piece if start == 0 and stop == len(piece) else view[start:stop])

    def _start_skip(self) -> None:
        """The unfinished line passed the cap: cut what is kept of it off, go on by hash."""
        need = self._run
        head: list[bytes | memoryview] = []
        while need:
            last = self._pieces.pop()
            if len(last) > need:
                self._pieces.append(last[: len(last) - need])
                last = last[len(last) - need :]
            head.append(last)
            need -= len(last)
        if self._pieces:
            self._parts.append(b"".join(self._pieces))
            self._pieces = []
        start = b"".join(reversed(head))
        self._run = 0
        self._skip = _Skipped(start, start[:PREFIX_BYTES])

    def _end_skip(self) -> None:
        skip = self._skip
        assert skip is not None
        self._parts.append(OversizedLine(skip.length, skip.hash.hexdigest(), skip.prefix, self.line_cap))
        self._skip = None

    def finish(self) -> Page:
        """The page. Raises BodyError when the body does not end with ``\\n`` (cut short)."""
        if self._skip is not None or self._run:
            raise BodyError("the page does not end with a newline (cut short)")
        if self._pieces:
            self._parts.append(b"".join(self._pieces))
            self._pieces = []
        blocks: list[LineBlock] = []
        oversized: list[tuple[int, OversizedLine]] = []
        count = 0
        for part in self._parts:
            if isinstance(part, OversizedLine):
                oversized.append((count, part))
            else:
                block = LineBlock.from_body(part)
                blocks.append(block)
                count += len(block)
        self._parts = []
        lines = LineBlock.concat(blocks) if blocks else LineBlock.from_body(b"")
        return Page(lines, tuple(oversized), self.nbytes)


def read_capped(pieces: Iterable[bytes], cap: int) -> bytes:
    """Join ``pieces`` (any iterable of bytes) into one, raising PageTooLarge past ``cap``."""
    out = bytearray()
    for piece in pieces:
        if len(out) + len(piece) > cap:
            raise PageTooLarge(cap)
        out += piece
    return bytes(out)
