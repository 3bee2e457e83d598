"""JSON files: newline-delimited, one call per line, the call as sent (track: event slugged)."""

from __future__ import annotations

from shared.records import ParsedBatch
from shared.writers.base import FormatWriter, WriterSpec


class JsonWriter(FormatWriter):
    spec = WriterSpec("json", "json", "application/x-ndjson", "json", supports_gzip=True)

    def _write(self, batch: ParsedBatch) -> None:
        self._counter.write(b"\n".join(batch.lines) + b"\n")
