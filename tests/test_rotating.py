"""The rotating writer (shared/writers/rotating.py): batches in, files out at the row and size caps,
at consecutive positions, every call in exactly one file in order; an error abandons the open file."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.records import ParsedBatch
from shared.writers import WriterOptions, writer_class
from shared.writers.rotating import ClosedFile, RotatingWriter


@dataclass
class Done:
    name: str
    size: int
    created: bool = True


@dataclass
class MemorySink:
    """A file in memory with the upload's three verbs (the blob store's are tested on Azurite)."""

    name: str
    data: bytearray = field(default_factory=bytearray)
    state: str = "open"

    def write(self, data: bytes | memoryview) -> int:
        self.data += data
        return len(data)

    def commit(self, rows: int) -> Done:
        assert self.state == "open"
        self.state = "committed"
        return Done(self.name, len(self.data))

    def abandon(self) -> None:
        self.state = "abandoned"


def _writer(sinks: dict[int, MemorySink], max_rows: int, max_bytes: int = 1 << 30, first: int = 7) -> RotatingWriter:
    def open_sink(position: int) -> MemorySink:
        assert position not in sinks, "a position is opened once"
        sinks[position] = MemorySink(f"f{position}")
        return sinks[position]

    return RotatingWriter(writer_class("json"), "track", WriterOptions(), first_position=first,
                          max_rows=max_rows, max_bytes=max_bytes, open_sink=open_sink)


def _batch(lines: list[bytes]) -> ParsedBatch:
    return ParsedBatch("track", "json", lines=lines, count=len(lines))


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 9), max_size=8), max_rows=st.integers(1, 6), max_bytes=st.integers(8, 80))
def test_every_call_lands_once_in_order_in_files_within_the_caps(sizes, max_rows, max_bytes):
    sinks: dict[int, MemorySink] = {}
    lines = [b'{"n":%d}' % i for i in range(sum(sizes))]
    with _writer(sinks, max_rows, max_bytes) as files:
        at = 0
        for size in sizes:
            files.write(_batch(lines[at:at + size]))
            at += size
        closed = files.close()
    assert [f.position for f in closed] == list(range(7, 7 + len(closed)))  # no gap, no repeat
    assert b"".join(sinks[f.position].data for f in closed) == b"".join(line + b"\n" for line in lines)
    assert all(s.state == "committed" for s in sinks.values()) and len(sinks) == len(closed)
    assert sum(f.rows for f in closed) == len(lines) == files.rows
    for f in closed[:-1]:  # a file ends only at a cap
        assert f.rows == max_rows or f.bytes >= max_bytes
    assert all(1 <= f.rows <= max_rows for f in closed)
    assert closed == [ClosedFile(f.position, f"f{f.position}", f.rows, len(sinks[f.position].data), True)
                      for f in closed]


def test_no_call_no_file():
    sinks: dict[int, MemorySink] = {}
    with _writer(sinks, 5) as files:
        files.write(_batch([]))
        assert files.close() == [] and sinks == {}


def test_an_error_in_the_block_abandons_the_open_file_and_commits_nothing_more():
    sinks: dict[int, MemorySink] = {}
    with pytest.raises(RuntimeError), _writer(sinks, 2) as files:
        files.write(_batch([b"{}", b"{}", b"{}"]))  # the first file is full: committed
        raise RuntimeError("the ETL API broke off")
    assert [s.state for s in sinks.values()] == ["committed", "abandoned"]
