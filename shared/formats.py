"""The names of the file formats, without their writers.

Settings validate ``EXPORT_FORMAT`` against this tuple without loading pyarrow; the writer
registry (:mod:`shared.writers`) checks at import that it has one writer for each name.
"""

from __future__ import annotations

FORMATS: tuple[str, ...] = ("csv", "json", "parquet")
