"""File rotation: batches in, closed files out, each file within the row and size caps.

The writer layer's answer to "where does one file end": a :class:`RotatingWriter` takes parsed
batches, splits a batch where a file reaches ``max_rows``, closes the file once it reaches
``max_rows`` rows or ``max_bytes`` bytes before compression, commits it through its sink and opens
the next one at the next position. It is a context manager: an error leaving the block abandons
the open file (its staged blocks are never committed). Like dlt's ``BufferedDataWriter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.abandoning import AbandonedOnError
from shared.crashpoints import crashpoint
from shared.memory import release_free_memory
from shared.records import ParsedBatch
from shared.writers.base import FormatWriter, WriterOptions


class Committed(Protocol):
    """What a sink's commit tells (read-only: :class:`shared.blob_store.CommitResult` is frozen)."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def created(self) -> bool: ...


class FileSink(Protocol):
    """Where one file's bytes go (:class:`shared.blob_store.StagedUpload` is one)."""

    def write(self, data: bytes | memoryview) -> int: ...
    def commit(self, rows: int) -> Committed: ...
    def abandon(self) -> None: ...


@dataclass(frozen=True)
class ClosedFile:
    """A committed file and its metrics."""

    position: int
    name: str
    rows: int
    bytes: int
    created: bool  # False: the identical file was already there (a resumed window)


class RotatingWriter(AbandonedOnError):
    """One (window, type)'s data files, at consecutive positions from ``first_position``.

    ``open_sink(position)`` opens the sink of the file at a position. :attr:`files` lists the
    files committed so far; :meth:`close` commits the last one.
    """

    def __init__(
        self,
        writer_cls: type[FormatWriter],
        call_type: str,
        options: WriterOptions,
        *,
        first_position: int,
        max_rows: int,
        max_bytes: int,
        open_sink: Callable[[int], FileSink],
    ) -> None:
        self.writer_cls = writer_cls
        self.call_type = call_type
        self.options = options
        self.position = first_position  # of the file open now, or of the next one
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.open_sink = open_sink
        self.files: list[ClosedFile] = []
        self.rows = 0  # rows in committed files
        self._sink: FileSink | None = None
        self._writer: FormatWriter | None = None

    def write(self, batch: ParsedBatch) -> None:
        """Write a batch's calls, committing each file that reaches a cap on the way."""
        offset = 0
        max_rows = self.max_rows
        while offset < batch.count:
            writer = self._writer or self._open()
            take = min(max_rows - writer.rows, batch.count - offset)
            writer.write(batch if (offset == 0 and take == batch.count) else _slice(batch, offset, take))
            offset += take
            crashpoint("after_stage")
            if writer.rows >= max_rows or writer.size_before_compression >= self.max_bytes:
                self._commit()

    def close(self) -> list[ClosedFile]:
        """Commit the last file (if one is open); every file of the window, in order."""
        self._commit()
        return self.files

    def abandon(self) -> None:
        """Drop the open file: its staged blocks are never committed."""
        if self._sink is not None:
            self._sink.abandon()

    def _open(self) -> FormatWriter:
        self._sink = self.open_sink(self.position)
        self._writer = self.writer_cls(self._sink, self.call_type, self.options)
        return self._writer

    def _commit(self) -> None:
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        committed = self._sink.commit(self._writer.rows)
        crashpoint("after_file_commit")
        self.files.append(ClosedFile(self.position, committed.name, self._writer.rows, committed.size,
                                     committed.created))
        self.rows += self._writer.rows
        self.position += 1
        release_free_memory()
        self._writer = None
        self._sink = None


def _slice(batch: ParsedBatch, offset: int, count: int) -> ParsedBatch:
    end = offset + count
    return ParsedBatch(
        call_type=batch.call_type,
        mode=batch.mode,
        columns=[col[offset:end] for col in batch.columns],
        lines=batch.lines[offset:end],
        count=count,
        arrow=batch.arrow.slice(offset, count) if batch.arrow is not None else None,
    )
