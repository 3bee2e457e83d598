"""Parquet files: one nullable string column per field, snappy by default (zstd, none).

Row groups hold up to ROW_GROUP_ROWS calls or ROW_GROUP_BYTES of Arrow data, whichever comes
first: big enough for DuckDB/Spark/Synapse to scan efficiently (DuckDB's own row group is
122,880 rows), small enough to keep the exporter's memory flat.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from shared.records import ParsedBatch
from shared.writers.arrow import record_batch, schema_for
from shared.writers.base import ByteSink, FormatWriter, WriterOptions, WriterSpec

ROW_GROUP_ROWS = 122_880
ROW_GROUP_BYTES = 64 * 1024 * 1024


class ParquetWriter(FormatWriter):
    spec = WriterSpec(
        "parquet", "parquet", "application/vnd.apache.parquet", "columns", supports_gzip=False
    )

    def __init__(self, sink: ByteSink, call_type: str, options: WriterOptions) -> None:
        super().__init__(sink, call_type, options)
        self._schema = schema_for(call_type)
        codec = options.parquet_compression
        self._writer = pq.ParquetWriter(
            self._counter,
            self._schema,
            compression="none" if codec == "none" else codec,
            version="2.6",
            write_statistics=True,
        )
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._arrow_bytes = 0

    @property
    def size_before_compression(self) -> int:
        """Arrow (uncompressed) bytes of the data written so far."""
        return self._arrow_bytes

    def _write(self, batch: ParsedBatch) -> None:
        rb = record_batch(batch, self._schema)
        self._pending.append(rb)
        self._pending_rows += rb.num_rows
        self._pending_bytes += rb.nbytes
        self._arrow_bytes += rb.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
            self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def _close(self) -> None:
        self._flush()
        self._writer.close()
