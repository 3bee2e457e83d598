"""The writers: every format x type written into memory, read back with the usual readers, and
compared with the calls sent (docs/file-format.md)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import shared.writers.parquet as parquet_module
from shared.calltypes import CALL_TYPES, COLUMNS, KNOWN_FIELDS
from shared.records import CallParser
from shared.slug import slugify_event
from shared.writers import FORMATS, UnknownFormatError, WriterOptions, writer_class
from shared.writers.arrow import escape_formula, escape_formula_array, record_batch, schema_for
from tests.support.expected import cell

NASTY = [
    "\u2028 and \u2029",
    "next line \u0085",
    'say "hi", twice ""',
    "back\\slash",
    "new\nline",
    "cr\r\nlf",
    "lone cr\r",
    "tab\there",
    "nul \x00 byte",
    "emoji 🎉👩‍👩‍👧",
    "=SUM(A1:A2)",
    "+1 555",
    "-2",
    "@mention",
    "\tstarts with a tab",
    "\rstarts with a cr",
    "",
    " ",
    "NULL",
    "null",
    "N/A",
    "ümlaut ß 注文",
    "a,b;c|d",
]


def calls_for(call_type: str, n: int = 30) -> list[dict[str, Any]]:
    """Calls of one type with every nasty string in every kind of field, and nulls and absences."""
    out = []
    for i in range(n):
        s = NASTY[i % len(NASTY)]
        call: dict[str, Any] = {
            "messageId": f"m-{i}",
            "type": call_type,
            "userId": s,
            "anonymousId": None if i % 3 == 0 else f"a-{i}",
            "timestamp": "2024-05-01T12:00:00.000Z",
            "context": {"s": s, "n": [1, 2.5, True, None], "deep": {"k": s}},
            "integrations": {},
        }
        if i % 4:
            call["receivedAt"] = "2024-05-01T12:00:01.000Z"
        if call_type == "track":
            call["event"] = s or "Order Completed"
            call["properties"] = {"revenue": 3.0, "label": s}
        elif call_type in ("page", "screen"):
            call["name"] = s
            call["category"] = None
            call["properties"] = {"path": s}
        elif call_type in ("identify", "group"):
            call["traits"] = {"email": s}
            if call_type == "group":
                call["groupId"] = s
        elif call_type == "alias":
            call["previousId"] = s
        if i % 5 == 0:
            call["version"] = 2
            call[s or "empty"] = {"x": s}
        if call_type == "track" and i % 7 == 0:
            call["event_text"] = "sent by the caller"
        out.append(call)
    return out


def encode(call: dict[str, Any]) -> bytes:
    return json.dumps(call, separators=(",", ":"), ensure_ascii=False).encode()


def expected_cells(call: dict[str, Any], call_type: str) -> list[str | None]:
    """The cells of a call, worked out from the rules (not from the parser)."""
    out: list[str | None] = []
    for column in COLUMNS[call_type]:
        if column == "extra":
            extra = {k: v for k, v in call.items() if k not in KNOWN_FIELDS[call_type]}
            out.append(cell(extra) if extra else None)
        elif column == "event":
            out.append(slugify_event(call["event"]) if call.get("event") is not None else None)
        elif column == "event_text":
            out.append(call.get("event"))
        else:
            out.append(cell(call.get(column)))
    return out


def write(
    fmt: str,
    call_type: str,
    calls: list[dict[str, Any]],
    options: WriterOptions | None = None,
    batch: int = 7,
) -> tuple[bytes, Any]:
    """Write the calls in batches of ``batch`` lines; return the file's bytes and the writer."""
    cls = writer_class(fmt)
    parser = CallParser(call_type, cls.spec.mode)
    sink = io.BytesIO()
    writer = cls(sink, call_type, options or WriterOptions())
    lines = [encode(c) for c in calls]
    for k in range(0, len(lines), batch):
        parsed = parser.parse(lines[k : k + batch])
        assert not parsed.rejected
        writer.write(parsed)
    writer.close()
    return sink.getvalue(), writer


def all_strings(call_type: str) -> pacsv.ConvertOptions:
    # Arrow's CSV reader: every column a string; an unquoted empty cell is null, a quoted one ("")
    # is the empty string. Our writer quotes every non-null string, so "NULL", "N/A" etc. (Arrow's
    # default null spellings) stay strings too.
    return pacsv.ConvertOptions(
        column_types={c: pa.string() for c in COLUMNS[call_type]},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


# --------------------------------------------------------------------------------------------
# CSV


@pytest.mark.parametrize("call_type", CALL_TYPES)
def test_a_csv_file_reads_back_with_pythons_csv_module(call_type: str) -> None:
    calls = calls_for(call_type)
    data, writer = write("csv", call_type, calls)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == list(COLUMNS[call_type])
    # Python's csv module cannot tell an empty cell from "": both read as "".
    assert rows[1:] == [["" if c is None else c for c in expected_cells(call, call_type)] for call in calls]
    assert writer.rows == len(calls)


@pytest.mark.parametrize("call_type", CALL_TYPES)
def test_a_csv_file_reads_back_with_arrow_and_null_is_not_the_empty_string(call_type: str) -> None:
    calls = calls_for(call_type)
    data, _ = write("csv", call_type, calls)
    table = pacsv.read_csv(
        io.BytesIO(data),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=all_strings(call_type),
    )
    assert table.column_names == list(COLUMNS[call_type])
    assert [list(r.values()) for r in table.to_pylist()] == [expected_cells(c, call_type) for c in calls]


def test_csv_is_utf8_without_bom_with_a_header_first_and_crlf_line_ends() -> None:
    calls = [{"type": "alias", "messageId": f"m{i}", "previousId": "ü"} for i in range(3)]
    data, writer = write("csv", "alias", calls)
    assert not data.startswith(b"\xef\xbb\xbf")
    header = b",".join(b'"' + c.encode() + b'"' for c in COLUMNS["alias"]) + b"\r\n"
    assert data.startswith(header)
    assert data.count(b"\r\n") == data.count(b"\n") == 4
    assert data.endswith(b"\r\n")
    assert data.split(b"\r\n")[1] == b'"m0","alias",,,,,,,,,"\xc3\xbc",'
    assert writer.size_before_compression == len(data)
    assert (writer.extension, writer.content_type) == ("csv", "text/csv; charset=utf-8")


def test_csv_quotes_are_doubled_and_values_with_line_breaks_are_quoted() -> None:
    data, _ = write("csv", "alias", [{"type": "alias", "previousId": 'a "b"\r\nc'}])
    assert b'"a ""b""\r\nc"' in data


def test_an_empty_csv_file_is_its_header() -> None:
    sink = io.BytesIO()
    writer = writer_class("csv")(sink, "group", WriterOptions())
    writer.close()
    assert sink.getvalue() == b",".join(b'"' + c.encode() + b'"' for c in COLUMNS["group"]) + b"\r\n"
    assert writer.rows == 0


@pytest.mark.parametrize("call_type", ["track", "identify"])
def test_formula_escaping_is_opt_in_and_prefixes_a_quote(call_type: str) -> None:
    calls = calls_for(call_type)
    plain, _ = write("csv", call_type, calls)
    escaped, _ = write("csv", call_type, calls, WriterOptions(csv_escape_formulas=True))
    plain_rows = list(csv.reader(io.StringIO(plain.decode(), newline="")))
    escaped_rows = list(csv.reader(io.StringIO(escaped.decode(), newline="")))
    assert escaped_rows[0] == plain_rows[0]
    risky = 0
    for p_row, e_row in zip(plain_rows[1:], escaped_rows[1:], strict=True):
        for p, e in zip(p_row, e_row, strict=True):
            if p[:1] in ("=", "+", "-", "@", "\t", "\r"):
                assert e == "'" + p
                risky += 1
            else:
                assert e == p
    assert risky >= 6  # each of = + - @ tab CR at least once
    assert any(c in ("=SUM(A1:A2)", "+1 555", "-2", "@mention") for r in plain_rows for c in r)


def test_formula_escaping_of_an_arrow_array_is_the_cell_rule() -> None:
    cells = [*NASTY, None, "'=already", "a=b", "ok-", "\u2028=x"]
    escaped = escape_formula_array(pa.array(cells, pa.string())).to_pylist()
    assert escaped == [escape_formula(c) for c in cells]
    assert escape_formula("=1") == "'=1" and escape_formula(None) is None and escape_formula("") == ""


def test_formula_escaping_leaves_json_and_parquet_alone() -> None:
    calls = calls_for("alias")
    for fmt in ("json", "parquet"):
        assert (
            write(fmt, "alias", calls)[0]
            == write(fmt, "alias", calls, WriterOptions(csv_escape_formulas=True))[0]
        )


# --------------------------------------------------------------------------------------------
# JSON


@pytest.mark.parametrize("call_type", CALL_TYPES)
def test_a_json_file_is_one_call_per_line_as_sent(call_type: str) -> None:
    calls = calls_for(call_type)
    data, writer = write("json", call_type, calls)
    assert data.endswith(b"\n") and b"\r\n" not in data
    lines = data.split(b"\n")[:-1]  # \u2028 and \u0085 are not line ends here
    assert len(lines) == len(calls) == writer.rows
    for line, call in zip(lines, calls, strict=True):
        if call_type != "track":
            assert line == encode(call)
            continue
        want: dict[str, Any] = {}
        for key, value in call.items():
            if key == "event":
                want["event"] = slugify_event(value)
                want["event_text"] = value
            elif key != "event_text":
                want[key] = value
        got = json.loads(line)
        assert got == want and list(got) == list(want)
    assert (writer.extension, writer.content_type) == ("json", "application/x-ndjson")


def test_json_keeps_numbers_as_sent() -> None:
    line = b'{"type":"identify","traits":{"a":3.0,"b":1e2,"c":-0,"d":1E+2,"e":0.10}}'
    parsed = CallParser("identify", "json").parse([line])
    sink = io.BytesIO()
    writer = writer_class("json")(sink, "identify", WriterOptions())
    writer.write(parsed)
    writer.close()
    assert sink.getvalue() == line + b"\n"


# --------------------------------------------------------------------------------------------
# Parquet


@pytest.mark.parametrize("call_type", CALL_TYPES)
def test_a_parquet_file_has_one_string_column_per_field_and_reads_back_exactly(call_type: str) -> None:
    calls = calls_for(call_type)
    data, writer = write("parquet", call_type, calls)
    table = pq.read_table(io.BytesIO(data))
    assert table.schema == pa.schema([pa.field(c, pa.string()) for c in COLUMNS[call_type]])
    assert [list(r.values()) for r in table.to_pylist()] == [expected_cells(c, call_type) for c in calls]
    assert writer.rows == len(calls)
    assert (writer.extension, writer.content_type) == ("parquet", "application/vnd.apache.parquet")


def test_parquet_keeps_null_and_the_empty_string_apart() -> None:
    calls = [{"type": "alias"}, {"type": "alias", "previousId": None}, {"type": "alias", "previousId": ""}]
    data, _ = write("parquet", "alias", calls)
    assert pq.read_table(io.BytesIO(data)).column("previousId").to_pylist() == [None, None, ""]


@pytest.mark.parametrize(
    ("codec", "stored"), [("snappy", "SNAPPY"), ("zstd", "ZSTD"), ("none", "UNCOMPRESSED")]
)
def test_parquet_compression_is_readable(codec: str, stored: str) -> None:
    calls = calls_for("page")
    data, _ = write("parquet", "page", calls, WriterOptions(parquet_compression=codec))
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.row_group(0).column(0).compression == stored
    assert [list(r.values()) for r in pq.read_table(io.BytesIO(data)).to_pylist()] == [
        expected_cells(c, "page") for c in calls
    ]


def test_snappy_is_the_default() -> None:
    data, _ = write("parquet", "alias", calls_for("alias"))
    assert pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_parquet_size_before_compression_is_the_cell_text_plus_offsets_whatever_the_batches() -> None:
    calls = calls_for("track")
    cells = [expected_cells(c, "track") for c in calls]
    text = sum(len(c.encode()) for row in cells for c in row if c is not None)
    offsets = 4 * len(COLUMNS["track"]) * len(calls)
    for batch in (1, 7, 30):
        _, writer = write("parquet", "track", calls, batch=batch)
        assert writer.size_before_compression == text + offsets


def _row_groups(data: bytes) -> list[int]:
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def test_parquet_row_groups_split_at_row_group_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", 5)
    calls = calls_for("identify", 23)
    for batch in (1, 3, 7, 23):
        data, _ = write("parquet", "identify", calls, batch=batch)
        assert _row_groups(data) == [5, 5, 5, 5, 3]
        assert [list(r.values()) for r in pq.read_table(io.BytesIO(data)).to_pylist()] == [
            expected_cells(c, "identify") for c in calls
        ]


def test_the_default_row_group_is_duckdbs_122880_rows_or_16_mib() -> None:
    assert parquet_module.ROW_GROUP_ROWS == 122_880
    assert parquet_module.ROW_GROUP_BYTES == 16 * 1024 * 1024


def test_parquet_dictionary_encodes_repeating_columns_but_not_ids_and_timestamps() -> None:
    data, _ = write("parquet", "track", calls_for("track", 50), batch=10)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    encodings = {
        meta.schema.column(i).name: set(meta.row_group(0).column(i).encodings) for i in range(meta.num_columns)
    }
    dictionary = {"RLE_DICTIONARY", "PLAIN_DICTIONARY"}
    for name in ("messageId", "timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        assert not encodings[name] & dictionary, name
    for name in ("type", "event", "context", "properties"):
        assert encodings[name] & dictionary, name


def test_parquet_row_groups_split_at_row_group_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet_module, "ROW_GROUP_BYTES", 1000)
    calls = [{"type": "alias", "previousId": "x" * (100 + 37 * (i % 11))} for i in range(40)]
    data, _ = write("parquet", "alias", calls, batch=9)
    groups = _row_groups(data)
    assert sum(groups) == 40 and len(groups) > 1
    sizes = [len("alias") + len(c["previousId"]) for c in calls]
    start = 0
    for n in groups:
        assert sum(sizes[start : start + n]) <= 1000 or n == 1
        start += n


def test_a_call_bigger_than_a_row_group_gets_one_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet_module, "ROW_GROUP_BYTES", 100)
    calls = [{"type": "alias", "previousId": "x" * n} for n in (10, 500, 10, 10)]
    data, _ = write("parquet", "alias", calls, batch=4)
    assert _row_groups(data) == [1, 1, 2]


@pytest.mark.parametrize("rows_cap", [4, 122_880])
def test_parquet_bytes_do_not_depend_on_how_the_calls_were_batched(
    monkeypatch: pytest.MonkeyPatch, rows_cap: int
) -> None:
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", rows_cap)
    calls = calls_for("track", 50)
    files = {write("parquet", "track", calls, batch=b)[0] for b in (1, 6, 17, 50)}
    assert len(files) == 1


# --------------------------------------------------------------------------------------------
# Compression and the registry


@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("call_type", ["track", "group"])
def test_gzip_files_decompress_to_the_plain_file(fmt: str, call_type: str) -> None:
    calls = calls_for(call_type)
    plain, _ = write(fmt, call_type, calls)
    packed, writer = write(fmt, call_type, calls, WriterOptions(gzip=True))
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == plain
    assert writer.size_before_compression == len(plain)
    assert writer.extension == fmt + ".gz"
    assert writer.content_type == "application/gzip"
    assert write(fmt, call_type, calls, WriterOptions(gzip=True))[0] == packed  # same input, same bytes


def test_gzip_does_not_apply_to_parquet() -> None:
    calls = calls_for("alias")
    packed, writer = write("parquet", "alias", calls, WriterOptions(gzip=True))
    assert packed == write("parquet", "alias", calls)[0]
    assert packed[:4] == b"PAR1"
    assert writer.extension == "parquet"


def test_the_formats_and_an_unknown_one() -> None:
    assert FORMATS == ("csv", "json", "parquet")
    with pytest.raises(UnknownFormatError, match="unknown format 'xml': use one of csv, json, parquet"):
        writer_class("xml")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_batch_writes_no_rows(fmt: str) -> None:
    cls = writer_class(fmt)
    sink = io.BytesIO()
    writer = cls(sink, "screen", WriterOptions())
    writer.write(CallParser("screen", cls.spec.mode).parse([]))
    writer.write(CallParser("screen", cls.spec.mode).parse([b"not json"]))
    writer.close()
    assert writer.rows == 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_batch_already_in_arrow_is_written_like_its_cells(fmt: str) -> None:
    calls = calls_for("page")
    parsed = CallParser("page", "columns").parse([encode(c) for c in calls])
    as_arrow = CallParser("page", "columns").parse([encode(c) for c in calls])
    as_arrow.arrow, as_arrow.columns = record_batch(as_arrow, schema_for("page")), []
    outputs = []
    for batch in (parsed, as_arrow):
        sink = io.BytesIO()
        writer = writer_class(fmt)(sink, "page", WriterOptions(csv_escape_formulas=True))
        writer.write(batch)
        writer.close()
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1]
