"""The fast path for CSV and Parquet: a batch of lines straight to Arrow columns.

No Python object per cell: each line is decoded on its own by msgspec into a typed struct whose
nested fields stay raw JSON text (zero-copy views of the line), then every column is gathered with
one C-level ``map`` and turned into an Arrow array; nested columns are joined into one buffer and
viewed as a string array (Arrow validates the UTF-8).

A batch the typed decode refuses (a field outside the columns, as real sources send: ``channel``,
``version``, ``_metadata``, ...; or a number in a string field) takes the fields route, still
vectorised: each line decoded into its top-level fields as raw JSON text (as the reference path
reads a call), each string column decoded in one call, ``extra`` built from the other fields.

Only the lines the prefilter flags, that are not JSON, whose type is another (or escaped), or with
a nested field that is not an object or array, take the row parser of :mod:`shared.records` (its
cheaper routes, then the reference path), and their rows are put back in input order. The result
is exactly the reference path's, line by line.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import compress, repeat
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.calltypes import COLUMNS, EXTRA_COLUMN
from shared.lines import LineBlock
from shared.prefilter import needs_reference_path
from shared.received import window_rejections
from shared.records import NESTED_FIELDS, CallParser, Limits, ParsedBatch, RejectedCall, fast_struct, raw_cell
from shared.slug import slugify_event
from shared.windows import Window

_EMPTY = msgspec.Raw(b"")  # "field absent": a present nested field is never empty text
_NULL = msgspec.Raw(b"null")
_ENCODER = msgspec.json.Encoder()
_STRINGS = msgspec.json.Decoder(list[str | None])
_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])  # as the reference path reads a call
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
_OBJECT_OR_ARRAY = (ord("{"), ord("["))


def _slug_column(names: pa.StringArray) -> pa.Array:
    """The event slugs of a column of event names: each distinct name is slugged once."""
    encoded = pc.dictionary_encode(names)
    slugs = pa.array([slugify_event(name) for name in encoded.dictionary.to_pylist()], pa.string())
    return slugs.take(encoded.indices)


def _string_cells(raws: Sequence[msgspec.Raw]) -> list[str | None]:
    """The cells of a string column from its raw values: all of them in one decode; a column that
    holds something else than strings and nulls (a number, an object) cell by cell, as the
    reference path does."""
    try:
        return _STRINGS.decode(b"[" + b",".join(raws) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [raw_cell(bytes(raw)) for raw in raws]


def _constant_column(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as a string array, without a Python object per row."""
    data = value.encode("utf-8")
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def _text_column(texts: list[bytes], empty_length: int) -> pa.Array:
    """A string array of ``texts`` (UTF-8 the caller vouches for), null where a text is
    ``empty_length`` bytes long; built on the joined text, no Python object per row."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int32, count=n)
    present = lengths != empty_length
    lengths[~present] = 0
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    everywhere = bool(present.all())
    data = b"".join(texts if everywhere else compress(texts, present.tolist()))
    validity = None if everywhere else pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), validity)


def _raw_column(raws: Sequence[msgspec.Raw]) -> tuple[pa.Array, np.ndarray]:
    """(string array of the raw texts, bool array: True where the value is not an object/array).

    Absent values (empty text) become nulls and are not flagged. The array is built straight on
    the joined text (32-bit offsets: a batch is far below 2 GiB) and its UTF-8 is validated by
    the caller, once per batch.
    """
    n = len(raws)
    lengths = np.fromiter(map(len, raws), dtype=np.int32, count=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(raws)
    present = lengths > 0
    odd = np.zeros(n, dtype=bool)
    if data:
        first = np.frombuffer(data, dtype=np.uint8)[np.minimum(offsets[:-1], len(data) - 1)]
        odd = present & (first != _OBJECT_OR_ARRAY[0]) & (first != _OBJECT_OR_ARRAY[1])
    validity = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    array = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), validity)
    return array, odd


class ColumnarParser:
    """Lines of one call type -> a :class:`ParsedBatch` holding an Arrow RecordBatch."""

    def __init__(self, call_type: str, limits: Limits | None = None, window: Window | None = None) -> None:
        self.call_type = call_type
        self.limits = limits or Limits()
        self.window = window
        self.schema = pa.schema([pa.field(c, pa.string()) for c in COLUMNS[call_type]])
        struct = fast_struct(call_type, True, raw_default=_EMPTY)
        self._decoder = msgspec.json.Decoder(struct)
        self._decode = self._decoder.decode
        self._fields = [c for c in COLUMNS[call_type] if c not in (EXTRA_COLUMN, "event_text")]
        self._getters = [operator.attrgetter(c) for c in self._fields]
        self._names = self.schema.names
        self._type_getter = operator.attrgetter("type")
        self._type_raw = msgspec.Raw(msgspec.json.encode(call_type))
        self._received = self.schema.names.index("receivedAt")
        self._rows = CallParser(call_type, "columns", self.limits, window)

    def parse(self, lines: Sequence[bytes], flags: np.ndarray | None = None) -> ParsedBatch:
        """Parse a batch (``flags`` as in :meth:`shared.records.CallParser.parse`)."""
        batch = ParsedBatch(self.call_type, "columns")
        n = len(lines)
        if flags is None:
            flags = needs_reference_path(lines, self.limits)
        arrays, fast_idx, odd = self._fast_columns(lines, flags)
        if self.window is not None and fast_idx:
            # A receivedAt outside the window (or unreadable): the row parser rejects the line
            # with the reason. The column test proves the common form; the rest are judged one
            # by one, and only the lines rejected leave the vectorised route.
            for k, _reason in window_rejections(arrays[self._received], self.window):
                odd[k] = True
        slow_idx = sorted(set(range(n)) - set(fast_idx)) if len(fast_idx) != n else []
        if odd.any():  # a nested field holding a string, number or null, or a receivedAt to reject
            keep = ~odd
            slow_idx = sorted(slow_idx + [fast_idx[i] for i in np.flatnonzero(odd)])
            fast_idx = [fast_idx[i] for i in np.flatnonzero(keep)]
            mask = pa.array(keep)
            arrays = [a.filter(mask) for a in arrays]
        try:
            for name, array in zip(self._names, arrays, strict=True):
                if name in NESTED_FIELDS:
                    array.validate(full=True)  # UTF-8 (msgspec skipped over the nested text)
        except pa.ArrowInvalid:  # invalid UTF-8 inside a nested object: the row parser words it
            rows = self._rows.parse(lines, flags)
            rows.arrow, rows.columns = self._cells_batch(rows), []
            return rows
        fast = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        if isinstance(lines, LineBlock):
            accepted_bytes = int(lines.lengths[fast_idx].sum())
        else:
            accepted_bytes = sum(len(lines[i]) for i in fast_idx)
        if slow_idx:
            # The rest take the row parser: its cheaper routes first (extra fields, a number in a
            # string field), the reference path for what they refuse.
            slow_lines = [lines[i] for i in slow_idx]
            rows = self._rows.parse(slow_lines, flags[slow_idx])
            batch.rejected = rows.rejected
            accepted_bytes += rows.input_bytes
            if rows.count:
                positions = _accepted_positions(slow_idx, slow_lines, rows.rejected)
                fast = _merge(fast, fast_idx, self._cells_batch(rows), positions)
        batch.arrow = fast
        batch.count = fast.num_rows
        batch.input_bytes = accepted_bytes
        return batch

    def _fast_columns(
        self, lines: Sequence[bytes], flags: np.ndarray
    ) -> tuple[list[pa.Array], list[int], np.ndarray]:
        """The columns of the lines that take a fast route, their positions, and which of them
        hold a nested field that is not an object or array (those go to the row parser).

        A row comes from exactly one line that alone is one JSON object. Several lines are never
        decoded as one text unless the prefilter let every one of them through: an object broken
        over two lines and two objects on a third line decode as three values from three lines,
        and a count cannot tell. A line the prefilter lets through is one compact object whose
        brackets balance, with no newline and nothing else outside it, so in the batch's text the
        object that starts a line ends with it: ``decode_lines`` over that text gives each line's
        value, or fails (then, and for a batch with flagged lines, each line is decoded on its
        own, from a zero-copy view of the page's buffer).

        First the typed struct decode (only the columns' own fields, all strings); a batch it
        refuses (a field outside the columns, such as ``channel``, or a number in a string field)
        takes the fields route, still vectorised.
        """
        if isinstance(lines, LineBlock) and not flags.any():
            # Every line is one compact object (the prefilter's guarantee): the batch's text is
            # decoded in one call, a value per line (a count that differs, or any error: each line
            # on its own, below).
            positions: Sequence[int] = range(len(lines))
            try:
                structs = self._decoder.decode_lines(lines.text())
            except (*_DECODE_ERRORS, RecursionError):
                rows = _whole(lines)
                if rows is not None:
                    return self._fields_columns(rows, positions)
            else:
                if len(structs) == len(lines):
                    return self._struct_columns(structs, positions)
        texts: Sequence[Any] = lines.views() if isinstance(lines, LineBlock) else lines
        if flags.any():
            positions = np.flatnonzero(~flags).tolist()
            texts = [texts[i] for i in positions]
        else:
            positions = range(len(lines))
        try:
            structs = list(map(self._decode, texts))
        except (*_DECODE_ERRORS, RecursionError):
            return self._fields_columns(*_each(texts, positions))
        return self._struct_columns(structs, positions)

    def _struct_columns(
        self, structs: list[Any], positions: Sequence[int]
    ) -> tuple[list[pa.Array], list[int], np.ndarray]:
        types = list(map(self._type_getter, structs))
        if types.count(self.call_type) != len(structs):
            keep = [k for k, t in enumerate(types) if t == self.call_type]
            structs, positions = [structs[k] for k in keep], [positions[k] for k in keep]
        arrays, odd = self._columns(structs)
        return arrays, list(positions), odd

    def _fields_columns(
        self, rows: list[dict[str, msgspec.Raw]], positions: Sequence[int]
    ) -> tuple[list[pa.Array], list[int], np.ndarray]:
        """The fields route: the lines decoded into their top-level fields as raw JSON text (what
        the reference path shapes its cells from), each column then decoded in one go."""
        n = len(rows)
        pop = dict.pop
        # Each column is popped off the rows (C-level maps, no Python per row), so what is left in
        # a row afterwards are its other fields, in the order the call has them: its extra.
        types = list(map(pop, rows, repeat("type", n), repeat(_NULL, n)))
        if types.count(self._type_raw) != n:  # another or an escaped type: the row parser decides
            keep = [k for k, t in enumerate(types) if t == self._type_raw]
            rows, positions = [rows[k] for k in keep], [positions[k] for k in keep]
            n = len(rows)
        arrays: list[pa.Array] = []
        odd = np.zeros(n, dtype=bool)
        for name in self._fields:
            if name == "type":
                arrays.append(_constant_column(self.call_type, n))
            elif name in NESTED_FIELDS:
                array, odd_here = _raw_column(list(map(pop, rows, repeat(name, n), repeat(_EMPTY, n))))
                odd |= odd_here
                arrays.append(array)
            else:
                text = pa.array(_string_cells(list(map(pop, rows, repeat(name, n), repeat(_NULL, n)))), pa.string())
                if name == "event":
                    arrays.append(_slug_column(text))
                arrays.append(text)
        # The prefilter guaranteed compact values: the encoded rest is the reference's cell as is.
        # An empty rest encodes as "{}" (2 bytes; a rest with a field is longer): null.
        arrays.append(_text_column(list(map(_ENCODER.encode, rows)), empty_length=2))
        return arrays, list(positions), odd

    def _columns(self, structs: list[Any]) -> tuple[list[pa.Array], np.ndarray]:
        arrays: list[pa.Array] = []
        n = len(structs)
        odd = np.zeros(n, dtype=bool)
        for name, getter in zip(self._fields, self._getters, strict=True):
            if name == "type":  # the same on every row (_decode_all checked it)
                arrays.append(_constant_column(self.call_type, n))
                continue
            values = list(map(getter, structs))
            if name in NESTED_FIELDS:
                array, odd_here = _raw_column(values)
                odd |= odd_here
                arrays.append(array)
            elif name == "event":
                text = pa.array(values, pa.string())
                arrays.append(_slug_column(text))
                arrays.append(text)
            else:
                arrays.append(pa.array(values, pa.string()))
        arrays.append(pa.nulls(n, pa.string()))  # extra: the struct forbids unknown fields
        return arrays, odd

    def _cells_batch(self, rows: ParsedBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in rows.columns], schema=self.schema)

def _whole(lines: LineBlock) -> list[dict[str, msgspec.Raw]] | None:
    """The top-level fields of every line of a batch the prefilter let through whole, decoded
    in one call; None when a line is not JSON (or the count differs): then line by line."""
    try:
        rows = _FIELDS.decode_lines(lines.text())
    except (*_DECODE_ERRORS, RecursionError):
        return None
    return rows if len(rows) == len(lines) else None


def _each(texts: Sequence[Any], positions: Sequence[int]) -> tuple[list[dict[str, msgspec.Raw]], list[int]]:
    """The top-level fields of each line decoded on its own, and the positions of those that are
    JSON (the others go to the row parser, which words why)."""
    decode = _FIELDS.decode
    try:
        return list(map(decode, texts)), list(positions)
    except (*_DECODE_ERRORS, RecursionError):
        pass
    rows, kept = [], []
    for k, text in zip(positions, texts, strict=True):
        try:
            rows.append(decode(text))
        except (*_DECODE_ERRORS, RecursionError):
            continue
        kept.append(k)
    return rows, kept


def _accepted_positions(
    indexes: list[int], lines: list[bytes], rejected: list[RejectedCall]
) -> list[int]:
    """The input positions of the lines the row parser accepted (it keeps the order, and a
    rejection holds the very line object it was given)."""
    out: list[int] = []
    k = 0
    for index, line in zip(indexes, lines, strict=True):
        if k < len(rejected) and rejected[k].line is line:
            k += 1
        else:
            out.append(index)
    return out


def _merge(fast: pa.RecordBatch, fast_idx: list[int], slow: pa.RecordBatch, slow_pos: list[int]) -> pa.RecordBatch:
    """Fast rows and row-parser rows back in input order."""
    table = pa.Table.from_batches([fast, slow], schema=fast.schema)
    positions = np.array(fast_idx + slow_pos, dtype=np.int64)
    order = np.argsort(positions, kind="stable")
    return table.take(pa.array(order)).combine_chunks().to_batches()[0] if table.num_rows else fast


def parser_for(
    call_type: str, mode: str, limits: Limits | None = None, window: Window | None = None
) -> ColumnarParser | CallParser:
    """The parser a writer of ``mode`` wants: Arrow columns for CSV/Parquet, documents for JSON.

    ``window``: the window the lines are served for; a call whose ``receivedAt`` is not inside it
    is rejected (:mod:`shared.received`). Without it, ``receivedAt`` is not looked at."""
    if mode == "columns":
        return ColumnarParser(call_type, limits, window)
    return CallParser(call_type, "json", limits, window)
