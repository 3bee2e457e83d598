"""NDJSON lines held in the buffer they arrived in (:class:`LineBlock`)."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import pyarrow as pa

_NEWLINE = 10


class LineBlock(Sequence[bytes]):
    """NDJSON lines kept in the buffer they arrived in: line ``i`` is
    ``data[starts[i] : starts[i + 1] - 1]``, each line followed by exactly one ``\\n``.

    One allocation per page instead of one per line: no split copy, nothing to join for the
    prefilter (:meth:`binary_array` is a zero-copy view), one buffer for a batch decode
    (:meth:`json_array`), and the memory goes back to the OS in one piece when the page is done.
    Indexing and iteration hand out the lines as ``bytes`` for the paths that want them.
    """

    __slots__ = ("_data", "_starts")

    def __init__(self, data: bytes, starts: np.ndarray) -> None:
        self._data = data
        self._starts = starts  # int64, len(self) + 1 entries, need not start at 0

    @classmethod
    def from_body(cls, body: bytes) -> LineBlock:
        """The lines of a page body that is empty or ends with ``\\n`` (blank lines dropped)."""
        if not body:
            return cls(b"", np.zeros(1, dtype=np.int64))
        ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == _NEWLINE)
        starts = np.empty(len(ends) + 1, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends + 1
        if len(ends) and (np.diff(starts) == 1).any():  # blank lines carry no call
            return cls.from_lines([line for line in body.split(b"\n") if line])
        return cls(body, starts)

    @classmethod
    def from_lines(cls, lines: Sequence[bytes]) -> LineBlock:
        n = len(lines)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=n) + 1, out=starts[1:])
        return cls(b"\n".join([*lines, b""]) if n else b"", starts)

    @classmethod
    def concat(cls, blocks: Sequence[LineBlock]) -> LineBlock:
        if len(blocks) == 1:
            return blocks[0]
        data = b"".join(memoryview(b._data)[b._starts[0] : b._starts[-1]] for b in blocks)
        starts = np.zeros(sum(len(b) for b in blocks) + 1, dtype=np.int64)
        at = 0
        for b in blocks:
            n = len(b)
            starts[at + 1 : at + n + 1] = b._starts[1:] - b._starts[0] + starts[at]
            at += n
        return cls(data, starts)

    def __len__(self) -> int:
        return len(self._starts) - 1

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> LineBlock: ...
    def __getitem__(self, index: int | slice) -> bytes | LineBlock:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                raise ValueError("a LineBlock slice takes every line (step 1)")
            stop = max(start, stop)
            return LineBlock(self._data, self._starts[start : stop + 1])
        i = operator.index(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("line index out of range")
        return self._data[int(self._starts[i]) : int(self._starts[i + 1]) - 1]

    def __iter__(self) -> Iterator[bytes]:
        data = self._data
        starts = self._starts.tolist()
        return (data[starts[k] : starts[k + 1] - 1] for k in range(len(starts) - 1))

    @property
    def lengths(self) -> np.ndarray:
        """Bytes of each line (without its ``\\n``), int64."""
        return np.diff(self._starts) - 1

    def binary_array(self) -> pa.LargeBinaryArray:
        """The lines as an Arrow binary array, zero-copy; each value keeps its trailing ``\\n``."""
        return pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(self), [None, pa.py_buffer(self._starts), pa.py_buffer(self._data)]
        )

    def json_array(self, into: bytearray | None = None) -> memoryview:
        """The lines as one JSON array text, ``[line0,line1,...]``.

        Raises ValueError when a line holds a raw ``\\n`` (possible only for a block made with
        :meth:`from_lines`; a page's lines are split at every ``\\n``): turned into a comma it
        could make a broken line decode as a different value.

        Written into ``into`` (grown when too small) so that a caller parsing batch after batch
        reuses one buffer instead of faulting in fresh pages for every batch. The view is only
        valid until ``into`` is used again; decoded raw values point into it.
        """
        buf = bytearray() if into is None else into
        n = len(self)
        if not n:
            return memoryview(b"[]")
        s0, s1 = int(self._starts[0]), int(self._starts[-1])
        size = s1 - s0 + 1  # "[" + the lines, each with its "\n" (the last one becomes "]")
        if len(buf) < size:
            buf.extend(bytes(size - len(buf)))
        buf[0] = 0x5B  # "["
        buf[1:size] = memoryview(self._data)[s0:s1]
        text = np.frombuffer(buf, dtype=np.uint8, count=size)
        newlines = text == _NEWLINE
        del text
        if int(np.count_nonzero(newlines)) != n:
            raise ValueError("a line holds a raw newline: it cannot be read as one array element")
        np.copyto(np.frombuffer(buf, dtype=np.uint8, count=size), 0x2C, where=newlines)  # "\n" -> ","
        buf[size - 1] = 0x5D  # the last line's "," -> "]"
        return memoryview(buf)[:size]
