"""Reading a committed file back, streaming, for ``verify`` (pure apart from the chunks it is given).

:func:`read_back` hashes the stored bytes as they come and counts the rows (CSV records after the
header, JSON and dead-letter lines, Parquet's footer ``num_rows``) and, when asked, collects the
``messageId`` of every row (of every dead-letter line whose original line is a JSON object).
Memory: one chunk, plus a Parquet file spooled to disk past 64 MiB, plus the ids when asked (one
file's).
"""

from __future__ import annotations

import base64
import codecs
import csv
import gzip
import hashlib
import io
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

DATA_EXTENSIONS = ("csv", "csv.gz", "json", "json.gz", "parquet")
_SPOOL = 64 * 1024 * 1024


@dataclass
class ReadBack:
    sha256: str
    rows: int
    ids: list[str] = field(default_factory=list)


class _Hashing(io.RawIOBase):
    """A readable stream over chunks that hashes every byte it hands out."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            self.hash.update(self._buffer)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def read_back(name: str, chunks: Iterable[bytes], *, ids: bool = False) -> ReadBack:
    """The SHA-256 of the stored bytes and the rows of the file ``name`` (its extension says how)."""
    raw = _Hashing(chunks)
    out = ReadBack("", 0)
    if name.endswith(".parquet"):
        _parquet(raw, out, ids)
    else:
        stream: io.BufferedIOBase = io.BufferedReader(raw, 1 << 20)
        if name.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
        if name.endswith((".csv", ".csv.gz")):
            _csv(stream, out, ids)
        else:
            _lines(stream, out, ids, rejected=name.endswith(".ndjson"))
        while stream.read(1 << 20):  # a gzip trailer, or bytes after the last row
            pass
    raw.drain()
    out.sha256 = raw.hash.hexdigest()
    return out


def _csv(stream: io.BufferedIOBase, out: ReadBack, ids: bool) -> None:
    text = codecs.getreader("utf-8")(stream)  # type: ignore[arg-type]
    reader = csv.reader(_Lines(text))
    header = next(reader, None)
    if header is None:
        return
    column = header.index("messageId") if "messageId" in header else None
    for row in reader:
        out.rows += 1
        if ids and column is not None and column < len(row):
            out.ids.append(row[column])


class _Lines:
    """Text lines keeping their line ends (the csv module needs them inside quoted values)."""

    def __init__(self, text: codecs.StreamReader) -> None:
        self._text = text

    def __iter__(self) -> Iterator[str]:
        pending = ""
        while True:
            chunk = self._text.read(1 << 20)
            if not chunk:
                break
            pending += chunk
            *whole, pending = pending.split("\n")
            for line in whole:
                yield line + "\n"
        if pending:
            yield pending


def _lines(stream: io.BufferedIOBase, out: ReadBack, ids: bool, *, rejected: bool) -> None:
    for line in stream:
        out.rows += 1
        if not ids:
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if rejected and isinstance(doc, dict):
            original = doc.get("line")
            if original is None and isinstance(doc.get("line_base64"), str):
                original = base64.b64decode(doc["line_base64"])
            try:
                doc = orjson.loads(original) if original is not None else None
            except orjson.JSONDecodeError:
                continue
        if isinstance(doc, dict) and isinstance(doc.get("messageId"), str):
            out.ids.append(doc["messageId"])


def _parquet(raw: _Hashing, out: ReadBack, ids: bool) -> None:
    import pyarrow.parquet as pq

    with tempfile.SpooledTemporaryFile(_SPOOL) as spool:
        while chunk := raw.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        try:
            parquet = pq.ParquetFile(spool)
            out.rows = parquet.metadata.num_rows
            if ids:
                out.ids = [str(v) for v in parquet.read(columns=["messageId"]).column(0).to_pylist()]
        except Exception:  # not Parquet (overwritten): its hash says so; no rows
            out.rows = -1
