"""The writer interface: one class per format, each writing one file into a byte sink."""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

from shared.records import Mode, ParsedBatch

GZIP_LEVEL = 6  # gzip's own default: the usual size/speed balance for files people download


class ByteSink(Protocol):
    """Where a writer's bytes go (a staged blob upload, or a buffer in tests)."""

    def write(self, data: bytes | memoryview) -> int: ...


@dataclass(frozen=True)
class WriterSpec:
    """What a format is: the file extension, its content type and the records it consumes."""

    name: str
    extension: str
    content_type: str
    mode: Mode
    supports_gzip: bool


@dataclass(frozen=True)
class WriterOptions:
    """Format options from the settings."""

    gzip: bool = False
    parquet_compression: str = "snappy"
    csv_escape_formulas: bool = False


class CountingSink:
    """Counts the bytes passing through (the size before compression) and forwards them.

    It is also the file object Arrow's writers are given, hence the file-like members; closing
    it only marks it closed (the writer's caller finishes the real sink).
    """

    def __init__(self, inner: ByteSink) -> None:
        self._inner = inner
        self.count = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes | memoryview) -> int:
        self.count += len(data)
        self._inner.write(data)
        return len(data)


class GzipSink:
    """Gzip-compresses into ``inner``; ``close`` writes the trailer (does not close ``inner``)."""

    def __init__(self, inner: ByteSink, level: int = GZIP_LEVEL) -> None:
        self._inner = inner
        # wbits=31: a gzip member with header and CRC, readable by gunzip, pandas, DuckDB, Spark.
        # mtime is zlib's 0, so the same input always gives the same bytes.
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes | memoryview) -> int:
        out = self._z.compress(data)
        if out:
            self._inner.write(out)
        return len(data)

    def close(self) -> None:
        self._inner.write(self._z.flush())


class FormatWriter(ABC):
    """Writes one file: construct, ``write`` batches, ``close`` once.

    ``rows`` and ``size_before_compression`` drive the file size cap (:mod:`shared.writers.rotating`).
    """

    spec: ClassVar[WriterSpec]

    def __init__(self, sink: ByteSink, call_type: str, options: WriterOptions) -> None:
        self.call_type = call_type
        self.options = options
        self.rows = 0
        self._gzip = GzipSink(sink) if self.gzipped(options) else None
        self._counter = CountingSink(self._gzip if self._gzip else sink)

    @classmethod
    def gzipped(cls, options: WriterOptions) -> bool:
        return options.gzip and cls.spec.supports_gzip

    @classmethod
    def extension_for(cls, options: WriterOptions) -> str:
        """``csv``, ``json``, ``parquet``; ``csv.gz`` / ``json.gz`` when gzipped."""
        return cls.spec.extension + (".gz" if cls.gzipped(options) else "")

    @classmethod
    def content_type_for(cls, options: WriterOptions) -> str:
        return "application/gzip" if cls.gzipped(options) else cls.spec.content_type

    @property
    def extension(self) -> str:
        return self.extension_for(self.options)

    @property
    def content_type(self) -> str:
        return self.content_type_for(self.options)

    @property
    def size_before_compression(self) -> int:
        return self._counter.count

    def write(self, batch: ParsedBatch) -> None:
        if batch.count:
            self._write(batch)
            self.rows += batch.count

    def close(self) -> None:
        self._close()
        if self._gzip:
            self._gzip.close()

    @abstractmethod
    def _write(self, batch: ParsedBatch) -> None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Write the footer, if the format has one."""
