"""Parquet files: one nullable string column per field, snappy by default (zstd, none).

Row groups hold up to ROW_GROUP_ROWS calls and up to ROW_GROUP_BYTES of cell text (a single call
bigger than that gets a row group of its own): big enough for DuckDB/Spark/Synapse to scan
efficiently (DuckDB's own row group is 122,880 rows; 16 MiB is about 11,000 typical calls of
1.4 KB, 1.5-2.5 MB compressed), small enough to keep the exporter's memory flat: one row group
is being encoded while the next one fills, so two are in memory (32 MiB was 20 MB more peak RSS).
The boundaries depend only on the sequence of rows; the export feeds fixed-size batches
(shared.batching), so two runs that export the same calls write the same bytes even if the ETL
API paged them differently.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shared.records import ParsedBatch
from shared.writers.arrow import record_batch, schema_for
from shared.writers.base import ByteSink, FormatWriter, WriterOptions, WriterSpec

ROW_GROUP_ROWS = 122_880
#: Columns whose values (almost) never repeat: dictionary-encoding them only to fall back to plain
#: pages costs time and bytes (about 15% of the encode and 7% of the file here).
UNIQUE_COLUMNS = frozenset({"messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt"})
ROW_GROUP_BYTES = 16 * 1024 * 1024
#: Arrow collects the encoder's writes (a page header, a page, a column chunk's dictionary: about
#: 5,500 per million calls) into buffers of this size before it hands them to the Python sink. Each
#: hand-over takes the GIL from the parsing thread; buffered, 19 do per 73 MB file instead of 1,038.
SINK_BUFFER_BYTES = 4 * 1024 * 1024


def _row_sizes(rb: pa.RecordBatch) -> np.ndarray:
    """Bytes of cell text per row (nulls count 0), from the string offsets: no Python per row."""
    sizes = np.zeros(rb.num_rows, dtype=np.int64)
    for column in rb.columns:
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
        offsets = offsets[column.offset : column.offset + len(column) + 1]
        sizes += np.diff(offsets)
    return sizes


class ParquetWriter(FormatWriter):
    spec = WriterSpec(
        "parquet", "parquet", "application/vnd.apache.parquet", "columns", supports_gzip=False
    )

    def __init__(self, sink: ByteSink, call_type: str, options: WriterOptions) -> None:
        super().__init__(sink, call_type, options)
        self._schema = schema_for(call_type)
        self._stream = pa.BufferedOutputStream(pa.PythonFile(self._counter, mode="w"), SINK_BUFFER_BYTES)
        self._writer = pq.ParquetWriter(
            self._stream,
            self._schema,
            compression=options.parquet_compression,
            version="2.6",
            write_statistics=True,
            use_dictionary=[c for c in self._schema.names if c not in UNIQUE_COLUMNS],
        )
        # Row groups are encoded and compressed on a thread of their own (Arrow releases the GIL),
        # overlapping the parsing of the next batches; one at a time, in order.
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="parquet")
        self._encoding: Future[None] | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_sizes: list[np.ndarray] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._arrow_bytes = 0

    @property
    def size_before_compression(self) -> int:
        """Uncompressed Arrow bytes of the cells written so far: text plus a 4-byte offset per cell.

        Counted per row (not per batch), so it does not depend on how the calls were batched.
        """
        return self._arrow_bytes

    def _write(self, batch: ParsedBatch) -> None:
        rb = record_batch(batch, self._schema)
        sizes = _row_sizes(rb)
        self._pending.append(rb)
        self._pending_sizes.append(sizes)
        self._pending_rows += rb.num_rows
        self._pending_bytes += int(sizes.sum())
        self._arrow_bytes += int(sizes.sum()) + 4 * rb.num_columns * rb.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes > ROW_GROUP_BYTES:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write every full row group pending (and, when ``final``, the rest as the last one)."""
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending, schema=self._schema)
        sizes = np.concatenate(self._pending_sizes)
        ends = np.cumsum(sizes)  # ends[i]: bytes of rows 0..i
        n = table.num_rows
        start = 0
        while start < n:
            before = int(ends[start - 1]) if start else 0
            fit = int(np.searchsorted(ends, before + ROW_GROUP_BYTES, side="right")) - start
            if not final and fit >= n - start and n - start < ROW_GROUP_ROWS:
                break  # not full yet: the next batch may add to this row group
            size = max(1, min(ROW_GROUP_ROWS, fit))
            self._encode(table.slice(start, size))
            start += size
        rest = table.slice(start)
        self._pending = rest.to_batches()
        self._pending_sizes = [sizes[start:]] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        self._pending_bytes = int(sizes[start:].sum())

    def _encode(self, group: pa.Table) -> None:
        if self._encoding is not None:
            self._encoding.result()  # the previous row group is in the file (or its error raised)
        self._encoding = self._encoder.submit(self._write_group, group)

    def _write_group(self, group: pa.Table) -> None:
        self._writer.write_table(group, row_group_size=group.num_rows)

    def _close(self) -> None:
        try:
            self._flush(final=True)
            if self._encoding is not None:
                self._encoding.result()
            self._writer.close()
            self._stream.close()  # the rest of the buffer (the footer) into the sink
        finally:
            self._encoder.shutdown(wait=True)
