"""Calls -> records: validate each NDJSON line of the ETL API and shape it for a writer.

Pure logic, no I/O. Two paths produce the same result:

* the *reference* path (:func:`parse_call`) validates one line completely and builds its cells;
* the *fast* path (:meth:`CallParser.parse`) decodes a whole batch with a typed msgspec decoder
  that keeps nested objects as their raw JSON text (no decode/re-encode), after a numpy
  prefilter (:mod:`shared.prefilter`) has sent every line that might need the reference path's
  extra care (size, deep nesting, huge numbers, non-compact whitespace) to the reference path.

A line that is not a valid call is never dropped: it becomes a :class:`RejectedCall` with a
reason, which the export writes to the dead-letter blob.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from shared.calltypes import CALL_TYPES, COLUMNS, EXTRA_COLUMN, KNOWN_FIELDS
from shared.limits import Limits, RejectedCall
from shared.prefilter import needs_reference_path
from shared.received import received_reason, window_rejections
from shared.slug import slugify_event
from shared.windows import Window

Mode = Literal["columns", "json"]
Cell = str | None

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

#: Fields that hold objects (kept as compact JSON text in CSV/Parquet cells).
NESTED_FIELDS = frozenset({"context", "integrations", "traits", "properties"})
_raw_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_str_decoder = msgspec.json.Decoder(str)
_encoder = msgspec.json.Encoder()
_JSON_KIND: dict[type, str] = {
    dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
    type(None): "null",
}


@dataclass
class ParsedBatch:
    """The valid calls of a batch, shaped for one writer, plus the rejected lines.

    ``columns`` (mode "columns"): one list per column of ``COLUMNS[type]``, all the same length.
    ``lines`` (mode "json"): one output JSON document per call, without line terminator.
    ``arrow`` (mode "columns", optional): the same cells already as an Arrow RecordBatch of
    ``COLUMNS[type]`` string columns; when set, writers use it instead of ``columns``.
    ``input_bytes``: bytes of the accepted input lines.
    """

    call_type: str
    mode: Mode
    columns: list[list[Cell]] = field(default_factory=list)
    arrow: Any = None
    lines: list[bytes] = field(default_factory=list)
    rejected: list[RejectedCall] = field(default_factory=list)
    count: int = 0
    input_bytes: int = 0


class BadCall(ValueError):
    """Raised by :func:`parse_call` for a line that is not a valid call of the window's type."""


# --------------------------------------------------------------------------------------------
# Cells


def raw_cell(raw: bytes) -> Cell:
    """The CSV/Parquet cell of one JSON value given as raw text (docs/file-format.md, "Cells").

    Strings as they are, ``null`` -> None, objects and arrays as compact JSON text,
    numbers and booleans as their JSON text (as sent: ``3.0`` stays ``3.0``).
    """
    first = raw[:1]
    if first == b'"':
        return _str_decoder.decode(raw)
    if first in (b"{", b"["):
        return msgspec.json.format(raw, indent=-1).decode("utf-8")
    if raw == b"null":
        return None
    return raw.decode("utf-8")


def _check_value(value: Any, depth: int, limits: Limits) -> str | None:
    """Return why a decoded JSON value is not acceptable, or None.

    ``depth`` counts the objects and arrays down to and including ``value`` (the call itself is
    level 1): a call may nest ``max_depth`` levels, whatever the innermost level holds.
    """
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= UINT64_MAX:
            return "holds an integer outside the 64-bit range"
        return None
    if depth > limits.max_depth:
        return f"nests deeper than {limits.max_depth} levels"
    for v in children:
        reason = _check_value(v, depth + 1, limits)
        if reason:
            return reason
    return None


def _json_error(line: bytes, exc: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = line[err.start : err.start + 1]
        return f"not valid UTF-8 (byte 0x{bad.hex()} at offset {err.start})"
    # orjson words the common faults better than msgspec ("no low surrogate in string" rather
    # than "Input data was truncated"); it is only asked once msgspec has already refused.
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as err:
        return f"not valid JSON: {err}"
    return f"not valid JSON: {exc}"


def over_cap(size: int, cap: int) -> str:
    """The reason of a call over ``MAX_CALL_BYTES``."""
    return f"call is {size} bytes, over the {cap}-byte cap"


def validate_call(line: bytes, call_type: str, limits: Limits) -> dict[str, msgspec.Raw]:
    """Validate one line completely; return its top-level fields as raw JSON text.

    Raises :class:`BadCall` with the reason when the line is not a valid call of ``call_type``.
    """
    if len(line) > limits.max_call_bytes:
        raise BadCall(over_cap(len(line), limits.max_call_bytes))
    try:
        value = msgspec.json.decode(line)
    except RecursionError:
        raise BadCall(f"nests deeper than {limits.max_depth} levels") from None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        if "recursion" in str(exc):
            raise BadCall(f"nests deeper than {limits.max_depth} levels") from None
        if isinstance(exc, msgspec.ValidationError) and "out of range" in str(exc):
            raise BadCall("holds a number that overflows a 64-bit float") from None
        raise BadCall(_json_error(line, exc)) from None
    if not isinstance(value, dict):
        raise BadCall(f"not a JSON object (a JSON {_JSON_KIND.get(type(value), 'value')})")
    reason = _check_value(value, 1, limits)
    if reason:
        raise BadCall(reason)
    found = value.get("type")
    if found not in CALL_TYPES:
        raise BadCall(f"unknown call type {found!r}")
    if found != call_type:
        raise BadCall(f"a {found} call in the {call_type} export")
    return _raw_fields_decoder.decode(line)


def _event_pair(raw: msgspec.Raw | None) -> tuple[Cell, Cell]:
    """(event slug, event_text) for a track call's raw ``event`` value."""
    if raw is None:
        return None, None
    text = raw_cell(bytes(raw))
    if text is None:
        return None, None
    return slugify_event(text), text


def _extra_cell(fields: dict[str, msgspec.Raw], call_type: str) -> Cell:
    known = KNOWN_FIELDS[call_type]
    extra = {k: v for k, v in fields.items() if k not in known}
    if not extra:
        return None
    return msgspec.json.format(_encoder.encode(extra), indent=-1).decode("utf-8")


def cells_of(fields: dict[str, msgspec.Raw], call_type: str) -> list[Cell]:
    """The CSV/Parquet cells of a validated call, in ``COLUMNS[call_type]`` order."""
    out: list[Cell] = []
    for column in COLUMNS[call_type]:
        if column == EXTRA_COLUMN:
            out.append(_extra_cell(fields, call_type))
        elif column == "event":
            slug, text = _event_pair(fields.get("event"))
            out.append(slug)
            out.append(text)
        elif column == "event_text":
            continue  # appended together with "event"
        else:
            raw = fields.get(column)
            out.append(None if raw is None else raw_cell(bytes(raw)))
    return out


def json_document(line: bytes, fields: dict[str, msgspec.Raw], call_type: str) -> bytes:
    """The JSON-file document of a validated call.

    The call exactly as sent (numbers and escapes untouched), except for track: ``event`` is
    slugged and ``event_text`` (the name as sent) follows it.
    """
    if call_type != "track" or ("event" not in fields and "event_text" not in fields):
        return line.rstrip(b"\r")
    out: dict[str, Any] = {}
    for key, raw in fields.items():
        if key == "event_text":
            # Replaced by the derived one, also when the call has no `event` (then there is none):
            # a sent `event_text` never passes for the name (it stays in CSV/Parquet `extra`).
            continue
        if key == "event":
            out["event"], out["event_text"] = _event_pair(raw)
        else:
            out[key] = raw
    return _encoder.encode(out)


def parse_call(
    line: bytes, call_type: str, limits: Limits, mode: Mode, window: Window | None = None
) -> list[Cell] | bytes:
    """Reference path for one line: its cells (mode "columns") or its JSON document.

    Raises :class:`BadCall` for a line that is not a valid call of ``call_type`` or, given the
    ``window`` the line was served for, whose ``receivedAt`` is not inside it
    (:mod:`shared.received`).
    """
    fields = validate_call(line, call_type, limits)
    if window is not None:
        raw = fields.get("receivedAt")
        reason = received_reason(None if raw is None else raw_cell(bytes(raw)), window)
        if reason is not None:
            raise BadCall(reason)
    try:
        if mode == "json":
            return json_document(line, fields, call_type)
        return cells_of(fields, call_type)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadCall(f"not valid UTF-8 or JSON: {exc}") from None


# --------------------------------------------------------------------------------------------
# Fast path


def fast_struct(
    call_type: str, forbid_unknown_fields: bool, raw_default: msgspec.Raw | None = None
) -> type[msgspec.Struct]:
    """A struct of the type's own fields: strings as ``str | None``, nested objects kept as raw
    JSON text (``raw_default`` when absent).

    Not tracked by the garbage collector (``gc=False``): it only ever holds strings and raw
    text, so it cannot be part of a cycle, and a million short-lived tracked structs per window
    would trigger a collection every 700 of them (about a quarter of the decode time)."""
    fields: list[tuple[str, Any, Any]] = []
    for column in COLUMNS[call_type]:
        if column in (EXTRA_COLUMN, "event_text"):
            continue
        if column in NESTED_FIELDS:
            fields.append((column, msgspec.Raw, raw_default))
        else:
            fields.append((column, str | None, None))
    return msgspec.defstruct(
        f"Fast{call_type.title()}Call",
        fields,
        forbid_unknown_fields=forbid_unknown_fields,
        array_like=False,
        gc=False,
    )


class _TypeOnly(msgspec.Struct, gc=False):
    """A call's ``type`` and ``receivedAt``; msgspec skips (and syntax-checks) every other field."""

    type: str | None = None
    receivedAt: str | None = None  # the field's name in the call


_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


class CallParser:
    """Turns batches of NDJSON lines of one call type into a :class:`ParsedBatch`.

    Each line the prefilter lets through is tried on a fast route, cheapest first; any line a
    fast route does not accept outright goes to :func:`parse_call`, which either accepts it the
    same way or rejects it with the reason. So the result is always exactly the reference
    path's, line by line (tests/test_records.py proves it on generated calls):

    * columns, calls whose own fields are strings/objects: a typed struct decode, nested objects
      kept as their raw (compact) text, plus a decode into raw fields for the ``extra`` cell when
      the call has fields of its own;
    * JSON, not track: the line itself, once a skip-decode has checked it and read its type;
    * anything else (numbers or booleans in string fields, track JSON): one decode
      into raw fields, shaped by the reference path's own :func:`cells_of` / :func:`json_document`.

    Given the ``window`` the lines were served for, a call whose ``receivedAt`` is not inside it
    is rejected (:mod:`shared.received`): the fast routes' values are checked per batch, as a
    column, the reference path checks its own lines.
    """

    def __init__(
        self, call_type: str, mode: Mode, limits: Limits | None = None, window: Window | None = None
    ) -> None:
        if call_type not in CALL_TYPES:
            raise ValueError(f"unknown call type {call_type!r}")
        self.call_type = call_type
        self.mode = mode
        self.limits = limits or Limits()
        self.window = window
        self._decoder = msgspec.json.Decoder(fast_struct(call_type, True))
        self._lenient_decoder = msgspec.json.Decoder(fast_struct(call_type, False))
        self._type_decoder = msgspec.json.Decoder(_TypeOnly)
        self._type_raw = b'"' + call_type.encode() + b'"'
        fast_columns = [c for c in COLUMNS[call_type] if c not in (EXTRA_COLUMN, "event_text")]
        self._nested_idx = [i for i, c in enumerate(fast_columns) if c in NESTED_FIELDS]
        self._event_idx = fast_columns.index("event") if "event" in fast_columns else -1
        self._type_idx = fast_columns.index("type")
        self._received_idx = COLUMNS[call_type].index("receivedAt")
        self._fast: Callable[[bytes], tuple[list[Cell] | bytes, Cell] | None]
        if mode == "columns":
            self._fast = self._fast_row_received
        elif call_type == "track":
            self._fast = self._track_document
        else:
            self._fast = self._fast_document

    def parse(self, lines: Sequence[bytes], flags: np.ndarray | None = None) -> ParsedBatch:
        """Parse a batch; the order of the valid calls is the order of the lines.

        ``flags``: :func:`needs_reference_path` of these lines with these limits, when the
        caller has already computed it (the export does, on its read-ahead thread).
        """
        batch = ParsedBatch(self.call_type, self.mode)
        slow = needs_reference_path(lines, self.limits) if flags is None else flags
        fast = self._fast
        window = self.window
        out: list[Any] = []  # cell rows (columns mode) or JSON documents
        # The rows of the fast routes, for the window check: (their place in ``out``, their line,
        # the line's place in the batch), and their receivedAt cells.
        fast_rows: list[tuple[int, bytes, int]] = []
        received: list[Cell] = []
        rejected: list[tuple[int, RejectedCall]] = []
        accepted_bytes = 0
        for i, line in enumerate(lines):
            if not slow[i]:
                result = fast(line)
                if result is not None:
                    if window is not None:
                        fast_rows.append((len(out), line, i))
                        received.append(result[1])
                    out.append(result[0])
                    accepted_bytes += len(line)
                    continue
            try:
                out.append(parse_call(line, self.call_type, self.limits, self.mode, window))
            except BadCall as bad:
                rejected.append((i, RejectedCall(line, str(bad))))
                continue
            accepted_bytes += len(line)
        if window is not None and fast_rows:
            outside = window_rejections(received, window)
            if outside:
                drop = set()
                for k, reason in outside:
                    at, line, i = fast_rows[k]
                    drop.add(at)
                    rejected.append((i, RejectedCall(line, reason)))
                    accepted_bytes -= len(line)
                out = [row for at, row in enumerate(out) if at not in drop]
                rejected.sort(key=lambda item: item[0])
        batch.rejected = [bad for _, bad in rejected]
        if self.mode == "json":
            batch.lines = out
        else:
            width = len(COLUMNS[self.call_type])
            batch.columns = [list(c) for c in zip(*out, strict=True)] if out else [[] for _ in range(width)]
        batch.count = len(out)
        batch.input_bytes = accepted_bytes
        return batch

    def _fast_row_received(self, line: bytes) -> tuple[list[Cell], Cell] | None:
        """Columns: the cells of a prefiltered line and its receivedAt cell, or None."""
        cells = self._fast_row(line)
        if cells is None:
            return None
        return cells, cells[self._received_idx]

    def _fast_row(self, line: bytes) -> list[Cell] | None:
        """Cells of a prefiltered line, or None to send it to the reference path."""
        try:
            row = msgspec.structs.astuple(self._decoder.decode(line))
        except _DECODE_ERRORS:
            return self._extras_route(line)
        if row[self._type_idx] != self.call_type:
            return None
        return self._fast_cells(row)

    def _extras_route(self, line: bytes) -> list[Cell] | None:
        """Cells of a prefiltered line with extra fields (or a scalar that is not a string)."""
        try:
            row = msgspec.structs.astuple(self._lenient_decoder.decode(line))
            fields = _raw_fields_decoder.decode(line)
        except _DECODE_ERRORS:  # a number or boolean in a string column
            own = self._own_fields(line)
            return None if own is None else cells_of(own, self.call_type)
        if row[self._type_idx] != self.call_type:
            return None
        cells = self._fast_cells(row)
        if cells is not None:
            cells[-1] = _extra_cell(fields, self.call_type)
        return cells

    def _fast_document(self, line: bytes) -> tuple[bytes, Cell] | None:
        """JSON, not track: a prefiltered line is its own document, once its type is right."""
        try:
            call = self._type_decoder.decode(line)
        except _DECODE_ERRORS:  # also a receivedAt that is not a string: the reference path
            return None
        return (line, call.receivedAt) if call.type == self.call_type else None

    def _track_document(self, line: bytes) -> tuple[bytes, Cell] | None:
        """JSON, track: the reference shaping without the full decode, for a prefiltered line."""
        fields = self._own_fields(line)
        if fields is None:
            return None
        raw = fields.get("receivedAt")
        return json_document(line, fields, self.call_type), None if raw is None else raw_cell(bytes(raw))

    def _own_fields(self, line: bytes) -> dict[str, msgspec.Raw] | None:
        """The top-level fields of a prefiltered line of this parser's type, or None."""
        try:
            fields = _raw_fields_decoder.decode(line)
        except _DECODE_ERRORS:
            return None
        found = fields.get("type")
        if found is None or bytes(found) != self._type_raw:
            return None  # wrong, missing or escaped type: the reference path decides
        return fields

    def _fast_cells(self, row: tuple[Any, ...]) -> list[Cell] | None:
        """Cells of a fast-decoded call, or None to send the line to the reference path.

        Nested values are kept as their raw text: the prefilter guaranteed it is compact.
        """
        cells = list(row)
        try:
            for i in self._nested_idx:
                raw = cells[i]
                if raw is not None:
                    b = bytes(raw)
                    if b[:1] == b'"':
                        cells[i] = _str_decoder.decode(b)
                    elif b == b"null":
                        cells[i] = None
                    else:
                        cells[i] = b.decode("utf-8")
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None  # cannot happen after the prefilter's UTF-8 check; kept as a guard
        event_idx = self._event_idx
        if event_idx >= 0:
            text = cells[event_idx]
            cells[event_idx : event_idx + 1] = [None if text is None else slugify_event(text), text]
        cells.append(None)  # extra: the fast struct forbids unknown fields, so there are none
        return cells
