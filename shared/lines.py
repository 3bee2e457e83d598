"""NDJSON lines held in the buffer they arrived in (:class:`LineBlock`)."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import overload

import numpy as np
import pyarrow as pa

_NEWLINE = 10


class LineBlock(Sequence[bytes]):
    """NDJSON lines kept in the buffer they arrived in: line ``i`` is
    ``data[starts[i] : starts[i + 1] - 1]``, each line followed by exactly one ``\\n``.

    One allocation per page instead of one per line: no split copy, nothing to join for the
    prefilter (:meth:`binary_array` is a zero-copy view), no copy per line for the decoder
    (:meth:`views`), and the memory goes back to the OS in one piece when the page is done.
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

    def text(self) -> memoryview:
        """The lines as one zero-copy view of the buffer, each followed by its ``\\n``."""
        return memoryview(self._data)[int(self._starts[0]) : int(self._starts[-1])]

    def binary_array(self) -> pa.LargeBinaryArray:
        """The lines as an Arrow binary array, zero-copy; each value keeps its trailing ``\\n``."""
        return pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(self), [None, pa.py_buffer(self._starts), pa.py_buffer(self._data)]
        )

    def views(self) -> list[memoryview]:
        """Each line as a zero-copy view of the buffer (without its ``\\n``), for a decoder that
        reads one line at a time without a ``bytes`` copy of it. A line is always decoded on its
        own: nothing that merges or splits lines (a line holding two objects, an object broken
        over two lines) can then pass for one call per line."""
        data = memoryview(self._data)
        starts = self._starts.tolist()
        return [data[a : b - 1] for a, b in pairwise(starts)]
