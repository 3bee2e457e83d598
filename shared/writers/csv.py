"""CSV files: RFC 4180 (CRLF, quotes doubled), UTF-8 without BOM, a header row.

Written by Arrow's C++ CSV writer. Every non-null string is quoted, a null is an empty cell.
"""

from __future__ import annotations

import pyarrow.csv as pacsv

from shared.records import ParsedBatch
from shared.writers.arrow import record_batch, schema_for
from shared.writers.base import ByteSink, FormatWriter, WriterOptions, WriterSpec

_WRITE_OPTIONS = pacsv.WriteOptions(
    include_header=True, eol="\r\n", quoting_style="needed", batch_size=4096
)


class CsvWriter(FormatWriter):
    spec = WriterSpec("csv", "csv", "text/csv; charset=utf-8", "columns", supports_gzip=True)

    def __init__(self, sink: ByteSink, call_type: str, options: WriterOptions) -> None:
        super().__init__(sink, call_type, options)
        self._schema = schema_for(call_type)
        self._writer = pacsv.CSVWriter(self._counter, self._schema, write_options=_WRITE_OPTIONS)

    def _write(self, batch: ParsedBatch) -> None:
        self._writer.write_batch(
            record_batch(batch, self._schema, self.options.csv_escape_formulas)
        )

    def _close(self) -> None:
        self._writer.close()
