"""One writer per format behind one registry: adding a format touches one file and this table."""

from __future__ import annotations

from shared.formats import FORMATS
from shared.writers.base import ByteSink, FormatWriter, WriterOptions, WriterSpec
from shared.writers.csv import CsvWriter
from shared.writers.jsonl import JsonWriter
from shared.writers.parquet import ParquetWriter

WRITERS: dict[str, type[FormatWriter]] = {
    w.spec.name: w for w in (CsvWriter, JsonWriter, ParquetWriter)
}
if tuple(WRITERS) != FORMATS:  # shared/formats.py names the formats settings accept
    raise ImportError(f"writers {tuple(WRITERS)} do not match shared.formats.FORMATS {FORMATS}")


class UnknownFormatError(ValueError):
    """The format is not one of FORMATS."""


def writer_class(name: str) -> type[FormatWriter]:
    try:
        return WRITERS[name]
    except KeyError:
        raise UnknownFormatError(
            f"unknown format {name!r}: use one of {', '.join(FORMATS)}"
        ) from None


__all__ = ["FORMATS", "WRITERS", "ByteSink", "FormatWriter", "UnknownFormatError", "WriterOptions",
           "WriterSpec", "writer_class"]
