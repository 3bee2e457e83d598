"""Calls -> records: the file rules of docs/file-format.md and the bad-call rules, on both paths.

Every explicit case runs through :class:`CallParser` (prefilter + fast path) *and* through
:func:`parse_call` (the reference path) line by line; the property test at the end generates
nasty calls and proves the two always agree and that the cells read back to the values sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.batching import rebatch
from shared.calltypes import CALL_TYPES, COLUMNS, KNOWN_FIELDS
from shared.columnar import ColumnarParser
from shared.lines import LineBlock
from shared.prefilter import needs_reference_path
from shared.received import MISSING, NOT_RFC3339, outside_reason
from shared.records import (
    NESTED_FIELDS,
    BadCall,
    CallParser,
    Limits,
    ParsedBatch,
    RejectedCall,
    parse_call,
    raw_cell,
)
from shared.slug import slugify_event
from shared.windows import Window
from tests.support.instants import plain_reason, received_values, windows

MODES = ("columns", "json")
NASTY = [
    "\u2028 line separator",
    "next line \u0085",
    'say "hi"',
    'back\\slash \\" \\\\',
    "new\nline\r\ncrlf",
    "tab\there",
    "nul \x00 byte",
    "emoji 🎉👩‍👩‍👧 flag 🇩🇪",
    "=SUM(A1:A2)",
    "+1 555",
    "-2",
    "@mention",
    "",
    " ",
    "ümlaut ß 注文",
    "\x7f\x1f",
    "1e400",
    "{not json}",
]


def _call(call_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": call_type, "messageId": "m-1", **fields}


def _line(value: Any, compact: bool = True) -> bytes:
    if compact:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return json.dumps(value, indent=1).encode().replace(b"\n", b" ")


def _reference(
    lines: list[bytes], call_type: str, mode: str, limits: Limits, window: Window | None = None
) -> ParsedBatch:
    """The reference path applied line by line, shaped like a ParsedBatch."""
    out: list[Any] = []
    batch = ParsedBatch(call_type, mode)  # type: ignore[arg-type]
    for line in lines:
        try:
            out.append(parse_call(line, call_type, limits, mode, window))  # type: ignore[arg-type]
            batch.input_bytes += len(line)
        except BadCall as bad:
            batch.rejected.append(RejectedCall(line, str(bad)))
    if mode == "json":
        batch.lines = out
    else:
        batch.columns = [list(c) for c in zip(*out, strict=True)] if out else [[] for _ in COLUMNS[call_type]]
    batch.count = len(out)
    return batch


def parse(
    lines: list[bytes], call_type: str, mode: str, limits: Limits | None = None, window: Window | None = None
) -> ParsedBatch:
    """Parse with the fast parser, and check the reference path gives exactly the same."""
    limits = limits or Limits()
    fast = CallParser(call_type, mode, limits, window).parse(lines)  # type: ignore[arg-type]
    reference = _reference(lines, call_type, mode, limits, window)
    assert fast == reference
    # The export hands the parsers LineBlocks (a page's buffer), the tests also plain lists.
    inputs: list[Sequence[bytes]] = [lines, LineBlock.from_lines(lines)]
    assert CallParser(call_type, mode, limits, window).parse(inputs[-1]) == reference  # type: ignore[arg-type]
    if mode == "columns":  # the Arrow fast path must agree too
        for given in inputs:
            columnar = ColumnarParser(call_type, limits, window).parse(given)
            assert columnar.rejected == reference.rejected
            assert (columnar.count, columnar.input_bytes) == (reference.count, reference.input_bytes)
            assert columnar.arrow.to_pydict() == dict(zip(COLUMNS[call_type], reference.columns, strict=True))
    return fast


def rows(batch: ParsedBatch) -> list[dict[str, Any]]:
    names = COLUMNS[batch.call_type]
    return [dict(zip(names, r, strict=True)) for r in zip(*batch.columns, strict=True)]


def one_row(value: Any, call_type: str | None = None, compact: bool = True) -> dict[str, Any]:
    call_type = call_type or value["type"]
    batch = parse([_line(value, compact)], call_type, "columns")
    assert not batch.rejected, batch.rejected
    [row] = rows(batch)
    return row


def one_document(line: bytes, call_type: str) -> bytes:
    batch = parse([line], call_type, "json")
    assert not batch.rejected, batch.rejected
    [doc] = batch.lines
    return doc


# --------------------------------------------------------------------------------------------
# Columns


FULL_CALLS: dict[str, dict[str, Any]] = {
    "identify": {"traits": {"email": "a@b.c", "plan": "pro"}},
    "track": {"event": "Order Completed", "properties": {"total": 3.5, "items": [1, 2]}},
    "page": {"name": "Home", "category": "Docs", "properties": {"path": "/"}},
    "screen": {"name": "Settings", "category": "App", "properties": {"tab": 2}},
    "group": {"groupId": "g-1", "traits": {"seats": 10}},
    "alias": {"previousId": "old-id"},
}
COMMON_VALUES: dict[str, Any] = {
    "messageId": "m-1",
    "userId": "u-1",
    "anonymousId": "a-1",
    "timestamp": "2024-05-01T12:00:00.000Z",
    "originalTimestamp": "2024-05-01T11:59:59.000Z",
    "sentAt": "2024-05-01T12:00:00.100Z",
    "receivedAt": "2024-05-01T12:00:00.200Z",
    "context": {"ip": "203.0.113.1", "library": {"name": "analytics.js"}},
    "integrations": {"All": True},
}


@pytest.mark.parametrize("call_type", CALL_TYPES)
def test_each_type_has_its_columns_in_order_and_a_last_extra_column(call_type: str) -> None:
    call = {"type": call_type, **COMMON_VALUES, **FULL_CALLS[call_type]}
    row = one_row(call)
    assert list(row) == list(COLUMNS[call_type])
    assert list(row)[:10] == [
        "messageId",
        "type",
        "userId",
        "anonymousId",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "receivedAt",
        "context",
        "integrations",
    ]
    assert list(row)[-1] == "extra"
    assert row["extra"] is None
    for name, value in call.items():
        if name == "event":
            continue
        cell = row[name]
        if isinstance(value, dict | list):
            assert json.loads(cell) == value
            assert cell == json.dumps(value, separators=(",", ":"))
        else:
            assert cell == value


def test_track_has_the_event_slug_and_the_event_text_as_sent() -> None:
    row = one_row(_call("track", event="ÜBER Event"))
    assert (row["event"], row["event_text"]) == ("uber_event", "ÜBER Event")
    row = one_row(_call("track", event="注文完了"))
    assert row["event"] == slugify_event("注文完了")
    assert row["event"].startswith("event_") and len(row["event"]) == 14
    assert row["event_text"] == "注文完了"


def test_a_track_call_without_event_has_empty_event_cells() -> None:
    row = one_row(_call("track"))
    assert row["event"] is None and row["event_text"] is None
    row = one_row(_call("track", event=None))
    assert row["event"] is None and row["event_text"] is None


def test_unknown_fields_go_to_extra_as_a_compact_json_object() -> None:
    call = _call("identify", version=2, channel="server", nested={"a": [1, {"b": None}]}, extra="x")
    row = one_row(call, compact=False)
    assert row["extra"] == '{"version":2,"channel":"server","nested":{"a":[1,{"b":null}]},"extra":"x"}'


def test_a_calls_own_event_text_goes_to_extra_in_columns() -> None:
    row = one_row(_call("track", event="Signed Up", event_text="mine"))
    assert (row["event"], row["event_text"]) == ("signed_up", "Signed Up")
    assert json.loads(row["extra"]) == {"event_text": "mine"}


def test_event_text_is_an_ordinary_extra_field_outside_track() -> None:
    row = one_row(_call("page", event_text="x", event="y"))
    assert json.loads(row["extra"]) == {"event_text": "x", "event": "y"}


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        (b"3.0", "3.0"),
        (b"1e2", "1e2"),
        (b"1E+2", "1E+2"),
        (b"-0", "-0"),
        (b"-0.0", "-0.0"),
        (b"0.1000", "0.1000"),
        (b"12345678901234567890", "12345678901234567890"),  # fits in unsigned 64 bits
        (b"-9223372036854775808", "-9223372036854775808"),
        (b"true", "true"),
        (b"false", "false"),
        (b"null", None),
        (b'""', ""),
        (b'"x"', "x"),
        (b'"\\u00e9\\/\\n"', "é/\n"),
        (b'{ "a" : [ 1 , 2.50 ] , "b" : "\\u00e9 x" }', '{"a":[1,2.50],"b":"\\u00e9 x"}'),
        (b"[ ]", "[]"),
        (b"{}", "{}"),
    ],
)
@pytest.mark.parametrize("column", ["userId", "context", "traits"])
def test_a_scalar_cell_is_its_json_text_as_sent_and_objects_are_compact(
    raw: bytes, cell: Any, column: str
) -> None:
    for line in (
        b'{"type":"identify","' + column.encode() + b'":' + raw + b"}",
        b'{ "type" : "identify" , "' + column.encode() + b'" : ' + raw + b" }",
    ):
        batch = parse([line], "identify", "columns")
        assert not batch.rejected
        assert rows(batch)[0][column] == cell


def test_an_absent_field_and_a_null_field_are_both_empty_but_an_empty_string_is_not() -> None:
    batch = parse(
        [b'{"type":"alias"}', b'{"type":"alias","previousId":null}', b'{"type":"alias","previousId":""}'],
        "alias",
        "columns",
    )
    assert [r["previousId"] for r in rows(batch)] == [None, None, ""]


@pytest.mark.parametrize("value", NASTY)
@pytest.mark.parametrize("compact", [True, False])
def test_nasty_strings_round_trip_exactly_in_cells(value: str, compact: bool) -> None:
    call = _call(
        "track", userId=value, event=value, properties={value: value, "list": [value]}, **{value: value}
    )
    row = one_row(call, compact=compact)
    assert row["userId"] == value
    assert row["event_text"] == value
    assert row["event"] == slugify_event(value)
    assert json.loads(row["properties"]) == {value: value, "list": [value]}
    if value not in KNOWN_FIELDS["track"]:
        assert json.loads(row["extra"]) == {value: value}


def test_a_line_ending_in_cr_is_accepted_and_the_cr_is_not_part_of_the_document() -> None:
    line = b'{"type":"alias","previousId":"p"}'
    assert one_row(json.loads(line), "alias")["previousId"] == "p"
    assert one_document(line + b"\r", "alias") == line


# --------------------------------------------------------------------------------------------
# JSON documents


@pytest.mark.parametrize("call_type", [t for t in CALL_TYPES if t != "track"])
def test_a_json_document_is_the_call_exactly_as_sent(call_type: str) -> None:
    lines = [
        b'{"type":"' + call_type.encode() + b'","n":3.0,"m":1e2,"s":"\\u00e9","x":{"a":[1,-0]}}',
        b'{ "type" : "' + call_type.encode() + b'" , "z" : 1E+2 }',
    ]
    assert parse(lines, call_type, "json").lines == lines


def test_a_track_document_has_the_slug_in_event_and_event_text_right_after_it() -> None:
    line = (
        b'{"messageId":"m","type":"track","event":"Order Completed","properties":{"total":3.0,"n":1e2},"z":1}'
    )
    doc = one_document(line, "track")
    assert doc == (
        b'{"messageId":"m","type":"track","event":"order_completed","event_text":"Order Completed",'
        b'"properties":{"total":3.0,"n":1e2},"z":1}'
    )


def test_a_track_document_without_event_is_the_call_as_sent() -> None:
    line = b'{"type":"track","properties":{"a":1.50}}'
    assert one_document(line, "track") == line


@pytest.mark.parametrize("value", NASTY)
def test_nasty_strings_round_trip_exactly_in_json_documents(value: str) -> None:
    call = _call("track", userId=value, event=value, properties={value: [value, 1.0]})
    doc = json.loads(one_document(_line(call), "track"))
    assert doc["userId"] == value
    assert doc["event_text"] == value
    assert doc["event"] == slugify_event(value)
    assert doc["properties"] == {value: [value, 1.0]}
    assert list(doc) == ["type", "messageId", "userId", "event", "event_text", "properties"]
    plain = _line(_call("identify", traits={value: value}, userId=value))
    assert one_document(plain, "identify") == plain


# --------------------------------------------------------------------------------------------
# Bad calls

BAD_CALLS: list[tuple[bytes, str]] = [
    (b"not json", "not valid JSON"),
    (b'{"type":"identify"', "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"type":"identify","a":"x"} trailing', "not valid JSON"),
    (b'[{"type":"identify"}]', "not a JSON object (a JSON array)"),
    (b'"identify"', "not a JSON object (a JSON string)"),
    (b"42", "not a JSON object (a JSON number)"),
    (b"null", "not a JSON object (a JSON null)"),
    (b"{}", "unknown call type None"),
    (b'{"type":"purchase"}', "unknown call type 'purchase'"),
    (b'{"type":5}', "unknown call type 5"),
    (b'{"type":"track","event":"x"}', "a track call in the identify export"),
    (b'{"type":"identify","a":"\\ud800"}', "no low surrogate"),
    (b'{"type":"identify","traits":{"a":"\\ud83d x"}}', "no low surrogate"),
    (b'{"type":"identify","a":"\\udc00"}', "surrogate"),
    (b'{"type":"identify","a":NaN}', "not valid JSON"),
    (b'{"type":"identify","traits":{"a":Infinity}}', "not valid JSON"),
    (b'{"type":"identify","traits":{"a":-Infinity}}', "not valid JSON"),
    (b'{"type":"identify","a":18446744073709551616}', "outside the 64-bit range"),
    (b'{"type":"identify","a":-9223372036854775809}', "outside the 64-bit range"),
    (b'{"type":"identify","traits":{"a":[123456789012345678901234567890]}}', "outside the 64-bit range"),
    (b'{"type":"identify","a":1e400}', "overflows a 64-bit float"),
    (b'{"type":"identify","traits":{"a":-1E+400}}', "overflows a 64-bit float"),
    (b'{"type":"identify","traits":{"a":1e1000}}', "overflows a 64-bit float"),
    (b'{"type":"identify","traits":{"a":1e0400}}', "overflows a 64-bit float"),
    (b'{"type":"identify","traits":{"a":1.8e308}}', "overflows a 64-bit float"),
    (b'{"type":"identify","traits":{"a":' + b"9" * 400 + b"}}", "outside the 64-bit range"),
    (b'{"type":"identify","traits":{"a":' + b"9" * 400 + b".5}}", "overflows a 64-bit float"),
    (b'{"type":"identify","userId":"\xff"}', "not valid UTF-8 (byte 0xff at offset 29)"),
    (b'{"type":"identify","traits":{"a":"\xc0\xaf"}}', "not valid UTF-8"),
    (b'{"type":"identify","traits":{"\xed\xa0\x80":1}}', "not valid UTF-8"),  # an encoded surrogate
    (b'{"type":"identify","x\xe2\x82":1}', "not valid UTF-8"),  # a truncated character
    (b'\xef\xbb\xbf{"type":"identify"}', "not valid JSON"),  # a byte order mark
    (b'{"type":"identify","a":"tab\there"}', "not valid JSON"),  # a raw control character
    (b'{"type":"identify","traits":{"a":"\x01"}}', "not valid JSON"),
    (b'{"type":"identify","traits":{"a":01}}', "not valid JSON"),
    (b'{"type":"identify","traits":{"a":[1,]}}', "not valid JSON"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("line", "reason"), BAD_CALLS)
def test_a_bad_call_is_rejected_with_a_clear_reason_and_the_rest_of_the_batch_is_unaffected(
    line: bytes, reason: str, mode: str
) -> None:
    good = [b'{"type":"identify","userId":"u%d","traits":{"n":%d}}' % (i, i) for i in range(4)]
    batch = parse([good[0], good[1], line, good[2], line, good[3]], "identify", mode)
    assert batch.rejected == [RejectedCall(line, batch.rejected[0].reason)] * 2
    assert reason in batch.rejected[0].reason
    assert batch.count == 4
    assert batch.input_bytes == sum(map(len, good))
    if mode == "json":
        assert batch.lines == good
    else:
        assert [r["userId"] for r in rows(batch)] == ["u0", "u1", "u2", "u3"]


@pytest.mark.parametrize("mode", MODES)
def test_the_edges_of_the_64_bit_range_are_accepted(mode: str) -> None:
    line = b'{"type":"identify","traits":{"a":[18446744073709551615,-9223372036854775808]},"userId":-1}'
    batch = parse([line], "identify", mode)
    assert not batch.rejected
    if mode == "columns":
        row = rows(batch)[0]
        assert row["traits"] == '{"a":[18446744073709551615,-9223372036854775808]}'
        assert row["userId"] == "-1"


def _nested(levels: int) -> bytes:
    """A call of ``levels`` levels of objects and arrays, the call itself being level 1."""
    inner = b'"leaf"'
    for i in range(levels - 1):
        inner = b"[" + inner + b"]" if i % 2 else b'{"k":' + inner + b"}"
    return b'{"type":"identify","traits":' + inner + b"}" if levels > 1 else b'{"type":"identify"}'


@pytest.mark.parametrize("mode", MODES)
def test_a_call_may_nest_max_depth_levels_and_no_more(mode: str) -> None:
    for max_depth in (3, 32):
        limits = Limits(max_depth=max_depth)
        ok, too_deep = _nested(max_depth), _nested(max_depth + 1)
        empty_too_deep = too_deep.replace(b'"leaf"', b"{}", 1)
        batch = parse([ok, too_deep, empty_too_deep], "identify", mode, limits)
        assert batch.count == 1
        assert [r.line for r in batch.rejected] == [too_deep, empty_too_deep]
        assert all(r.reason == f"nests deeper than {max_depth} levels" for r in batch.rejected)


@pytest.mark.parametrize("lines", [[b""], [b" "], [b"\t"], [b'{"type":"identify"},{"type":"identify"}']])
def test_a_line_that_is_not_one_value_is_rejected_even_alone_in_a_batch(lines: list[bytes]) -> None:
    batch = parse(lines, "identify", "columns")  # both inputs, as the reference path
    assert [r.line for r in batch.rejected] == lines and batch.count == 0


def test_a_raw_newline_between_tokens_is_not_read_as_a_comma() -> None:
    broken = b'{"type":"identify","userId":"u","traits":{"n":[1\n2]}}'
    good = b'{"type":"identify","userId":"v"}'
    batch = parse([good, broken], "identify", "columns")  # both inputs, as the reference path
    assert [r.line for r in batch.rejected] == [broken] and batch.count == 1


# The reproduction: an object broken over two lines, and two objects on a third line.
BROKEN_PAGE = (
    b'{"type":"track","messageId":"m1","userId":"u1"\n'
    b'"anonymousId":"a1"}\n'
    b'{"type":"track","messageId":"m2"},{"type":"track","messageId":"m3"}\n'
)


@pytest.mark.parametrize("mode", MODES)
def test_lines_that_are_not_one_object_each_are_rejected_never_merged_or_split(mode: str) -> None:
    good = b'{"type":"track","messageId":"m0"}'
    block = LineBlock.from_body(good + b"\n" + BROKEN_PAGE + good + b"\n")
    broken = list(block)[1:4]
    batch = parse(list(block), "track", mode)  # lists and LineBlocks, all parsers, as the reference
    for got in (batch, CallParser("track", mode).parse(block)):  # a page's own buffer too
        assert got.count == 2
        assert [r.line for r in got.rejected] == broken
        assert [r.reason for r in got.rejected] == [
            "not valid JSON: unexpected end of data: line 1 column 47 (char 46)",
            "not valid JSON: unexpected content after document: line 1 column 14 (char 13)",
            "not valid JSON: unexpected content after document: line 1 column 34 (char 33)",
        ]
    if mode == "columns":
        got = ColumnarParser("track").parse(block)
        assert got.arrow.column("messageId").to_pylist() == ["m0", "m0"]
        assert [r.line for r in got.rejected] == broken


@pytest.mark.parametrize("extra", [b"", b',"channel":"server"'])
def test_a_batch_the_prefilter_lets_through_whole_still_gives_one_value_per_line(extra: bytes) -> None:
    # The columnar parser decodes such a batch's text in one call; lines that pass the prefilter
    # but are not JSON (two strings in a row, a mismatched bracket) make it decode line by line.
    good = [b'{"type":"track","messageId":"m%d"%s}' % (i, extra) for i in range(3)]
    odd = [b'{"type":"track","messageId":"x""y"}', b'{"type":"track","properties":{"a":[1}]}']
    lines = [good[0], odd[0], good[1], odd[1], good[2]]
    block = LineBlock.from_lines(lines)
    assert not needs_reference_path(block, Limits()).any()
    batch = parse(lines, "track", "columns")  # every parser, lists and LineBlocks: the reference's answer
    assert [r.line for r in batch.rejected] == odd
    got = ColumnarParser("track").parse(block)
    assert got.arrow.column("messageId").to_pylist() == ["m0", "m1", "m2"]
    assert ColumnarParser("track").parse(LineBlock.from_lines(good)).count == 3


@pytest.mark.parametrize("mode", MODES)
def test_nesting_far_beyond_the_cap_is_rejected_not_a_crash(mode: str) -> None:
    line = b'{"type":"identify","traits":' + b"[" * 20000 + b"]" * 20000 + b"}"
    batch = parse([line], "identify", mode, Limits(max_call_bytes=100_000))
    assert batch.count == 0 and "nests deeper than 32 levels" in batch.rejected[0].reason


@pytest.mark.parametrize("mode", MODES)
def test_a_call_over_max_call_bytes_is_rejected_and_one_at_the_cap_is_not(mode: str) -> None:
    def sized(n: int) -> bytes:
        head = b'{"type":"identify","userId":"'
        return head + b"x" * (n - len(head) - 2) + b'"}'

    assert Limits().max_call_bytes == 65536
    at_cap, over = sized(65536), sized(65537)
    batch = parse([sized(32808), at_cap, over], "identify", mode)
    assert batch.count == 2
    assert batch.rejected == [RejectedCall(over, "call is 65537 bytes, over the 65536-byte cap")]
    small = parse([sized(100), sized(101)], "identify", mode, Limits(max_call_bytes=100))
    assert small.count == 1 and small.rejected[0].line == sized(101)


def test_an_unknown_call_type_cannot_get_a_parser() -> None:
    with pytest.raises(ValueError, match="unknown call type"):
        CallParser("purchase", "columns")


def test_an_empty_batch_has_empty_columns() -> None:
    batch = parse([], "group", "columns")
    assert batch.columns == [[] for _ in COLUMNS["group"]] and batch.count == 0


# --------------------------------------------------------------------------------------------
# The prefilter


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        (b'{"type":"identify","userId":"u"}', False),
        (b'{"type":"identify","userId":"a b\\" c","traits":{"x":"y z"}}', False),  # spaces inside strings
        (b'{"type":"identify","userId":"0123456789abcdef0123456789abcdef"}', False),  # a hex id
        (b'{"type":"identify","userId":"ab1e123"}', False),  # looks like an exponent, in a string
        (b'{"type":"identify","traits":{"n":123456789012345}}', False),  # 15 digits
        (b'{"type":"identify","traits":{"n":1.5e99}}', False),  # a 2-digit exponent
        (b'{"type":"identify","traits":{"s":"\\u00e9\\n"}}', False),
        (b'{"type":"identify","traits":{"n":1234567890123456}}', True),  # 16 digits
        (b'{"type":"identify","traits":{"n":[-1234567890123456]}}', True),
        (b'{"type":"identify","traits":{"n":1e100}}', True),  # a 3-digit exponent
        (b'{"type":"identify","traits":{"n":1E+1000}}', True),  # a 4-digit one
        (b'{"type":"identify","traits":{"n":1e0400}}', True),
        (b'{"type":"identify", "userId":"u"}', True),  # white space outside strings
        (b'{"type":"identify","userId":"a\\\\" }', True),  # after an escaped backslash
        (b'{"type":"identify","userId":"u"}\r', True),
        (b'\t{"type":"identify"}', True),
        (b'{"type":"identify","userId":"\xff"}', True),  # not UTF-8
        (b'{"type":"identify","userId":"' + b"x" * 70000 + b'"}', True),  # over the size cap
        (b'{"type":"identify","traits":' + b"[" * 32 + b"]" * 32 + b"}", True),  # 33 openers
        (b'{"type":"identify","traits":' + b"[" * 31 + b"]" * 31 + b"}", False),  # 32 openers
        (b'{"type":"identify","traits":{"a":[' + b"{}," * 40 + b'{"b":[[{}]]}]}}', False),  # 45, 6 deep
        (b'{"type":"identify","traits":{"a":[' + b"{}," * 40 + b"[" * 29 + b"]" * 29 + b"]}}", False),  # 32 deep
        (b'{"type":"identify","traits":{"a":[' + b"{}," * 40 + b"[" * 30 + b"]" * 30 + b"]}}", True),  # 33 deep
        (b'{"type":"identify","traits":{"a":[' + b"{}," * 40 + b'"x"], "b":1}}', True),  # and a space
        (b'{"type":"identify","traits":{"s":"' + b"[" * 40 + b'","t":[' + b"{}," * 40 + b"[]]}}", False),
        (b'{"type":"identify","userId":"' + b"{" * 40 + b'"}', False),  # openers in strings do not count
        (b'{"type":"identify","traits":{"s":"' + b"[" * 40 + b'"},"t":' + b"[" * 32 + b"]" * 32 + b"}", True),
        (b'{"type":"identify","userId":"12345678901234567890","traits":{"n":"1e999"}}', False),  # strings
        (b'{"type":"identify","traits":{"s":"\\\"{[ ","n":1e500}}', True),  # escapes, then a number
    ],
)
def test_the_prefilter_flags_lines_that_might_need_the_reference_path(line: bytes, flagged: bool) -> None:
    assert needs_reference_path([line], Limits()).tolist() == [flagged]
    assert needs_reference_path(LineBlock.from_lines([line]), Limits()).tolist() == [flagged]


def _chain(levels: int, wrap: str) -> str:
    inner = "1"
    for _ in range(levels):
        inner = wrap % inner
    return inner


_SHALLOW_OR_DEEP = st.recursive(
    st.one_of(
        st.sampled_from(['"x"', '"{["', "1", "-0.5e-10", "123456789012345", "null", "true", '"\\"["', "[]", "{}"]),
        st.builds(_chain, st.integers(8, 40), st.sampled_from(["[%s]", '{"d":%s}'])),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(inner, max_size=4).map(lambda items: "{" + ",".join(f'"k{i}":{v}' for i, v in enumerate(items)) + "}"),
    ),
    max_leaves=60,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max(map(_depth, children), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(st.lists(_SHALLOW_OR_DEEP, min_size=1, max_size=5), st.sampled_from([2, 3, 5, 12, 13, 20, 32]))
def test_the_prefilter_flags_a_compact_line_exactly_when_it_nests_too_deep(values: list[str], max_depth: int) -> None:
    lines = [('{"type":"identify","traits":[' + v + "]}").encode() for v in values]
    flags = needs_reference_path(LineBlock.from_lines(lines), Limits(max_depth=max_depth)).tolist()
    assert flags == [_depth(json.loads(line)) > max_depth for line in lines]


def test_the_prefilter_flags_each_line_on_its_own() -> None:
    lines = [b'{"a":1}', b'{"a": 1}', b'{"a":"\xff"}', b'{"a":2}', b"x" * 50]
    assert needs_reference_path(lines, Limits(max_call_bytes=40)).tolist() == [False, True, True, False, True]
    block = LineBlock.from_body(b"\n".join([b"x", *lines, b""]))[1:]  # a slice: offsets not from 0
    assert needs_reference_path(block, Limits(max_call_bytes=40)).tolist() == [False, True, True, False, True]
    assert needs_reference_path([], Limits()).tolist() == []


# --------------------------------------------------------------------------------------------
# Property: the fast path is the reference path, and cells read back to the values sent

_CHARS = st.one_of(
    st.sampled_from(list('\u2028\u0085"\\/\n\r\t\x00\x1f\x7f🎉é注=+-@ {}[]:,e1\ue000')),
    st.characters(codec="utf-8"),
)
# (lists of characters, not st.text: text() folds the alphabet into one uniform character range,
# which makes the hand-picked characters vanishingly rare)
_STRINGS = st.one_of(
    st.sampled_from(NASTY),
    st.lists(_CHARS, max_size=12).map("".join),
    st.lists(_CHARS, max_size=12).map("".join),
    st.lists(_CHARS, max_size=12).map("".join),
)
_LONE_SURROGATES = st.sampled_from(["\ud800", "x\udfff", "\udc00\ud800", "🎉\ud83d"])
_NUMBERS = st.one_of(
    st.integers(-(2**65), 2**65).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "3.0",
            "1e2",
            "1E+2",
            "-0",
            "-0.0",
            "0.5e-10",
            "1e400",
            "-1e400",
            "1e0400",
            "1e1000",
            "1.5E308",
            "1.8e308",
            "12345678901234567890",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "0.1234567890123456789",
            "1e-400",
            "123e99",
        ]
    ),
)
_WS = st.sampled_from(["", "", "", " ", "\t", "\r", "  ", " \t "])


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_BAD_UTF8 = ["\udcff", "\udcc0\udcaf", "\udced\udca0\udc80", "\udce2\udc82"]  # surrogateescape'd bytes


@st.composite
def _json_string(draw: st.DrawFn, value: str | None = None) -> str:
    """A JSON string literal of ``value`` (or a drawn nasty string), escaped every which way.

    A private-use ``\ue000`` sometimes becomes invalid UTF-8 bytes instead (the line is encoded
    with ``surrogateescape``).
    """
    if value is not None:
        text = value
    elif draw(st.sampled_from(range(40))) == 39:
        text = draw(_LONE_SURROGATES)
    else:
        text = draw(_STRINGS)
    out = ['"']
    for ch in text:
        code = ord(ch)
        must = ch in '"\\' or code < 0x20 or 0xD800 <= code <= 0xDFFF
        if must or draw(st.integers(0, 9)) == 0:
            if ch in _SHORT_ESCAPES and draw(st.booleans()):
                out.append(_SHORT_ESCAPES[ch])
            elif code < 0x10000:
                out.append(draw(st.sampled_from([f"\\u{code:04x}", f"\\u{code:04X}"])))
            else:
                out.append(json.dumps(ch))  # an astral character as a surrogate pair
                out[-1] = out[-1][1:-1]
        elif ch == "\ue000" and draw(st.booleans()):
            out.append(draw(st.sampled_from(_BAD_UTF8)))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@st.composite
def _json_value(draw: st.DrawFn, depth: int = 0, ws: bool = False) -> str:
    sp = (lambda: draw(_WS)) if ws else (lambda: "")
    kind = draw(
        st.sampled_from(["str", "str", "num", "lit", "obj", "arr"] if depth < 4 else ["str", "num", "lit"])
    )
    if kind == "str":
        return draw(_json_string())
    if kind == "num":
        return draw(_NUMBERS)
    if kind == "lit":
        return draw(st.sampled_from(["true", "false", "null"]))
    n = draw(st.integers(0, 3))
    if kind == "arr":
        items = [sp() + draw(_json_value(depth + 1, ws)) + sp() for _ in range(n)]
        return "[" + ",".join(items) + sp() + "]"
    members = [
        sp() + draw(_json_string()) + sp() + ":" + sp() + draw(_json_value(depth + 1, ws)) + sp()
        for _ in range(n)
    ]
    return "{" + ",".join(members) + sp() + "}"


@st.composite
def _deep(draw: st.DrawFn) -> str:
    levels = draw(st.integers(1, 36))
    inner = draw(st.sampled_from(['"x"', "{}", "[]", "1", "null"]))
    for _ in range(levels):
        inner = draw(st.sampled_from(["[%s]", '{"d":%s}'])) % inner
    return inner


@st.composite
def _call_line(draw: st.DrawFn, call_type: str) -> bytes:
    """One NDJSON line: mostly a valid call of ``call_type``, formatted and escaped every which way."""
    ws = draw(st.integers(0, 3)) == 0
    sp = (lambda: draw(_WS)) if ws else (lambda: "")
    type_value = draw(
        st.sampled_from([call_type] * 16 + [t for t in CALL_TYPES if t != call_type] + ["nope", None, 5])
    )
    members: list[tuple[str, str]] = []
    if type_value is not None:
        members.append(("type", draw(_json_string(type_value)) if isinstance(type_value, str) else "5"))
    columns = [c for c in COLUMNS[call_type] if c != "type"] * 4 + ["type"]  # a second type: rarely
    for column in draw(st.lists(st.sampled_from(columns), max_size=8)):
        if column in ("context", "integrations", "traits", "properties"):
            value = draw(
                st.one_of(_json_value(1, ws).filter(lambda v: v[:1] in "{["), _json_value(1, ws), _deep())
            )
        else:
            value = draw(st.one_of(_json_string(), _json_string(), _json_string(), _json_value(3, ws)))
        members.append((column, value))
    for _ in range(draw(st.integers(0, 2))):  # fields of its own: extra
        members.append(
            (
                draw(st.one_of(_STRINGS, st.sampled_from(["event_text", "extra", "version"]))),
                draw(_json_value(0, ws)),
            )
        )
    members = draw(st.permutations(members))
    body = ",".join(sp() + draw(_json_string(k)) + sp() + ":" + sp() + v + sp() for k, v in members)
    text = sp() + "{" + body + "}" + sp()
    line = text.encode("utf-8", "surrogateescape")
    corruption = draw(st.sampled_from(["none"] * 17 + ["truncate", "wrap", "nan"]))
    if corruption == "truncate":
        line = line[: draw(st.integers(0, len(line) - 1))]
    elif corruption == "wrap":
        line = b"[" + line + b"]"
    elif corruption == "nan":
        line = line.replace(b"1", b"NaN", 1)
    return line


_HAZARDS = [
    "1e1000",
    "-1E+0400",
    "1e400",
    "2.5e-999",
    "1.8e308",
    "12345678901234567890123",
    "-9223372036854775809",
    "18446744073709551616",
    '"\\ud800"',
    '"a\\udfff"',
    '"\udcff"',
    '"\udced\udca0\udc80"',
    '"a\tb"',
    "NaN",
    "-Infinity",
    "01",
    '"\\x"',
    '"\\u12"',
    "[1,]",
    '{"a"}',
    "tru",
    "[" * 33 + "]" * 33,
    '{"a":' * 40 + "1" + "}" * 40,
]


@st.composite
def _clean_call_line(draw: st.DrawFn, call_type: str) -> bytes:
    """A compact call with only its own fields (the fast path's home), maybe with one hazard inside."""
    members = ['"type":' + draw(_json_string(call_type))]
    for column in draw(
        st.lists(st.sampled_from([c for c in KNOWN_FIELDS[call_type] if c != "type"]), max_size=6)
    ):
        if column in ("context", "integrations", "traits", "properties"):
            value = draw(_json_value(1).filter(lambda v: v[:1] == "{"))
        else:
            value = draw(st.one_of(_json_string(), st.just("null")))
        members.append(draw(_json_string(column)) + ":" + value)
    if draw(st.booleans()):
        hazard = draw(st.sampled_from(_HAZARDS))
        where = draw(st.sampled_from(["context", "properties", "traits", "integrations", "deep"]))
        if where == "deep":
            hazard = '{"a":[{"b":' + hazard + "}]}"
        members.append(
            draw(_json_string(where if where != "deep" else "context")) + ":{" + '"h":' + hazard + "}"
        )
    members = draw(st.permutations(members))
    return ("{" + ",".join(members) + "}").encode("utf-8", "surrogateescape")


class _Pairs(list):  # type: ignore[type-arg]
    """An object as all its (key, value) pairs, duplicates included."""


def _strict_json(line: bytes, pairs: bool = False) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(name)

    hook = _Pairs if pairs else None
    return json.loads(line.decode("utf-8"), parse_constant=no_constants, object_pairs_hook=hook)


def _oracle(line: bytes, call_type: str, limits: Limits) -> dict[str, Any] | None:
    """An independent judge (Python's json): the call if it must be accepted, else None.

    What makes the text unreadable (lone surrogates, float overflow) counts anywhere in the line,
    also in a value that a later duplicate key overrides; the nesting and integer caps apply to
    the call as read (a duplicate key: the last one wins).
    """
    if len(line) > limits.max_call_bytes:
        return None
    try:
        everything = _strict_json(line, pairs=True)
    except (ValueError, RecursionError):
        return None

    def readable(v: Any) -> bool:
        if isinstance(v, _Pairs):
            return all(readable(k) and readable(x) for k, x in v)
        if isinstance(v, list):
            return all(readable(x) for x in v)
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False  # a lone surrogate
        return math.isfinite(v) if isinstance(v, float) else True

    def within_caps(v: Any, depth: int) -> bool:
        if isinstance(v, dict | list):
            items = v.values() if isinstance(v, dict) else v
            return depth <= limits.max_depth and all(within_caps(x, depth + 1) for x in items)
        if isinstance(v, int) and not isinstance(v, bool):
            return -(2**63) <= v <= 2**64 - 1
        return True

    if not isinstance(everything, _Pairs) or not readable(everything):
        return None
    value = _strict_json(line)
    return value if within_caps(value, 1) and value.get("type") == call_type else None


def _top_level_raw(line: bytes) -> dict[str, str]:
    """The raw text of each top-level scalar number/boolean of a valid line, white space removed."""
    import msgspec

    fields = msgspec.json.decode(line, type=dict[str, msgspec.Raw])
    return {k: bytes(v).decode().strip() for k, v in fields.items()}


def _assert_cell(cell: Any, value: Any, raw: str) -> None:
    if value is None:
        assert cell is None
    elif isinstance(value, str):
        assert cell == value
    elif isinstance(value, dict | list):
        assert _strict_json(cell.encode()) == value
        assert _is_compact(cell)
    else:
        assert cell == raw  # numbers and booleans: the JSON text as sent


def _is_compact(text: str) -> bool:
    """No white space outside strings."""
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in " \t\r\n":
            return False
    return True


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_the_fast_path_is_the_reference_path_and_cells_read_back_to_the_values_sent(
    data: st.DataObject,
) -> None:
    call_type = data.draw(st.sampled_from(CALL_TYPES), label="call_type")
    limits = data.draw(
        st.sampled_from([Limits(), Limits(), Limits(max_depth=3), Limits(max_call_bytes=200)]), label="limits"
    )
    lines = data.draw(
        st.lists(st.one_of(_call_line(call_type), _clean_call_line(call_type)), min_size=1, max_size=6),
        label="lines",
    )
    columns = parse(lines, call_type, "columns", limits)  # asserts fast == reference
    documents = parse(lines, call_type, "json", limits)
    expected = [(line, _oracle(line, call_type, limits)) for line in lines]
    accepted = [(line, call) for line, call in expected if call is not None]
    assert [r.line for r in columns.rejected] == [line for line, call in expected if call is None]
    assert documents.rejected == columns.rejected
    assert all(r.reason for r in columns.rejected)

    for (line, call), row, doc in zip(accepted, rows(columns), documents.lines, strict=True):
        raw = _top_level_raw(line)
        known = KNOWN_FIELDS[call_type]
        for column in COLUMNS[call_type]:
            if column == "extra":
                extra = {k: v for k, v in call.items() if k not in known}
                assert (row["extra"] is None) if not extra else (_strict_json(row["extra"].encode()) == extra)
            elif column == "event":
                event = call.get("event")
                if event is None:
                    assert row["event"] is None and row["event_text"] is None
                else:
                    _assert_cell(row["event_text"], event, raw["event"])
                    assert row["event"] == slugify_event(row["event_text"])
            elif column != "event_text":
                _assert_cell(row[column], call.get(column), raw.get(column, ""))
        if call_type != "track" or ("event" not in call and "event_text" not in call):
            assert doc == line.rstrip(b"\r")
        else:
            want = {}
            for k, v in call.items():
                if k == "event":
                    want["event"] = row["event"]
                    want["event_text"] = row["event_text"]
                elif k != "event_text":
                    want[k] = v
            got = _strict_json(doc)
            assert got == want and list(got) == list(want)


def test_one_columnar_parser_reuses_its_batch_buffer_across_batches_of_any_size() -> None:
    parser = ColumnarParser("identify")
    small = [_line({"type": "identify", "userId": "u"})]
    big = [_line({"type": "identify", "userId": f"u{i}", "traits": {"s": "x" * i}}) for i in range(50)]
    for lines in (small, big, small, big):  # the buffer grows, then is reused
        got = parser.parse(LineBlock.from_lines(lines))
        assert got.count == len(lines) and not got.rejected
        assert got.arrow.column("userId").to_pylist() == [json.loads(line)["userId"] for line in lines]


# --------------------------------------------------------------------------------------------
# Property: hostile pages (lines split, merged, blank) give the reference path's answer, line by line


def _commas_outside_strings(text: bytes) -> list[int]:
    out, in_string, escaped = [], False, False
    for i, byte in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x2C:
            out.append(i)
    return out


@st.composite
def _hostile_page(draw: st.DrawFn, call_type: str) -> bytes:
    """A page body built from calls of ``call_type``, then broken the ways a bad server breaks
    lines: an object split over lines (at a comma, so that the halves joined by a comma are one
    valid object again, or anywhere, also inside a string), several objects on one line, blank and
    white-space lines, trailing commas, a line wrapped in brackets."""
    calls = st.one_of(_clean_call_line(call_type), _call_line(call_type), _clean_call_line(call_type))
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 7))):
        line = draw(calls)
        op = draw(
            st.sampled_from(["keep", "keep", "split_comma", "split_comma", "split", "merge", "merge", "ws", "comma"])
        )
        if op == "split_comma" and (commas := _commas_outside_strings(line)):
            at = draw(st.sampled_from(commas))
            lines += [line[:at], line[at + 1 :]]
        elif op == "split" and len(line) > 1:
            at = draw(st.integers(1, len(line) - 1))
            lines += [line[:at], line[at:]]
        elif op == "merge":
            others = draw(st.lists(calls, min_size=1, max_size=2))
            sep = draw(st.sampled_from([b",", b",", b" ", b"", b", ", b"\t", b"\r"]))
            lines.append(sep.join([line, *others]))
        elif op == "ws":
            lines += [line, draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \t ", b",", b"[", b"]"]))]
        elif op == "comma":
            lines.append(line + b",")
        else:
            lines.append(line)
    return b"".join(line + b"\n" for line in lines)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_a_hostile_page_gives_every_parser_the_reference_answer_line_by_line(data: st.DataObject) -> None:
    call_type = data.draw(st.sampled_from(CALL_TYPES), label="call_type")
    limits = data.draw(st.sampled_from([Limits(), Limits(max_depth=3)]), label="limits")
    body = data.draw(_hostile_page(call_type), label="body")
    _every_parser_gives_the_reference_answer(
        body, call_type, limits, lambda: data.draw(st.integers(1, 4), label="batch size")
    )


@pytest.mark.parametrize("body", [b"", b"\n", b"\n\n \n", b"\r\n"])
@pytest.mark.parametrize("size", [1, 3])
def test_a_page_of_blank_lines_gives_every_parser_the_reference_answer(body: bytes, size: int) -> None:
    # Found by the property test above in CI: a page with no line gives no batch at all.
    for call_type in CALL_TYPES:
        _every_parser_gives_the_reference_answer(body, call_type, Limits(), lambda: size)


def _every_parser_gives_the_reference_answer(
    body: bytes, call_type: str, limits: Limits, batch_size: Callable[[], int]
) -> None:
    block = LineBlock.from_body(body)  # as the ETL client hands a page over (blank lines dropped)
    lines = list(block)
    assert lines == [line for line in body.split(b"\n") if line]
    expected = [(line, _oracle(line, call_type, limits)) for line in lines]
    for mode in MODES:
        reference = parse(lines, call_type, mode, limits)  # lists and LineBlocks agree with it
        # Every row is one line that is, alone, one valid call; every other line is rejected.
        assert [r.line for r in reference.rejected] == [line for line, call in expected if call is None]
        assert all(r.reason for r in reference.rejected)
        # The page's own buffer, whole and cut into batches (offsets not from 0), gives the same.
        size = batch_size()
        for parser in (CallParser(call_type, mode, limits), ColumnarParser(call_type, limits)):
            if mode == "json" and isinstance(parser, ColumnarParser):
                continue
            got = [parser.parse(block), *(parser.parse(b) for b in rebatch([block], size))]
            whole, batches = got[0], got[1:]
            assert whole.rejected == reference.rejected
            assert [r for b in batches for r in b.rejected] == reference.rejected
            assert (whole.count, whole.input_bytes) == (reference.count, reference.input_bytes)
            assert sum(b.count for b in batches) == reference.count
            if isinstance(parser, ColumnarParser):
                want = dict(zip(COLUMNS[call_type], reference.columns, strict=True))
                assert whole.arrow.to_pydict() == want
                joined = pa.Table.from_batches([b.arrow for b in batches], schema=whole.arrow.schema).to_pydict()
                assert joined == want
            elif mode == "json":
                assert whole.lines == reference.lines == [x for b in batches for x in b.lines]
            else:
                assert whole.columns == reference.columns
                joined_cells = [[cell for b in batches for cell in b.columns[c]] for c in range(len(whole.columns))]
                assert joined_cells == whole.columns


# --------------------------------------------------------------------------------------------
# Property: real SDK-shaped calls (fields outside the columns, big orders) stay on the fast route

_TEXT = st.one_of(st.sampled_from([*NASTY, "Übersicht \u2013 Shop", "注文完了 🎉"]), st.text(max_size=12))
_SAFE_NUMBER = st.one_of(st.integers(-(10**15) + 1, 10**15 - 1), st.floats(-1e6, 1e6).map(lambda x: round(x, 2)))


@st.composite
def _context(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):  # analytics.js in a browser
        return {
            "ip": "203.0.113.7", "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "locale": draw(st.sampled_from(["en-US", "de-DE", "ja-JP"])),
            "page": {"path": "/p", "referrer": "", "search": "", "title": draw(_TEXT), "url": "https://x.example/p"},
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
            "userAgentData": {"brands": [{"brand": "Chromium", "version": "124"}] * draw(st.integers(0, 3)),
                              "mobile": False, "platform": "Linux"},
        }
    return {"library": {"name": draw(st.sampled_from(["analytics-python", "analytics-node"])), "version": "2.4.0"}}


@st.composite
def _order(draw: st.DrawFn) -> dict[str, Any]:
    products = [
        {"product_id": draw(_TEXT), "price": draw(_SAFE_NUMBER), "quantity": draw(st.integers(1, 9)),
         "tags": draw(st.lists(_TEXT, max_size=2)), "variant": {"size": draw(_TEXT)} if draw(st.booleans()) else None}
        for _ in range(draw(st.integers(1, 20)))
    ]
    order: dict[str, Any] = {"order_id": draw(_TEXT), "total": draw(_SAFE_NUMBER), "products": products}
    if draw(st.integers(0, 4)) == 0:  # deep but within the cap (the call, properties, then the chain)
        order["deep"] = json.loads(_chain(draw(st.integers(1, 29)), '{"d":%s}'))
    return order


_OWN_FIELDS = {
    "identify": lambda: {"traits": _order()},
    "group": lambda: {"groupId": _TEXT, "traits": _order()},
    "alias": lambda: {"previousId": _TEXT},
    "track": lambda: {"event": _TEXT, "properties": _order()},
    "page": lambda: {"name": _TEXT, "category": _TEXT, "properties": _order()},
    "screen": lambda: {"name": _TEXT, "properties": _order()},
}


@st.composite
def _sdk_line(draw: st.DrawFn, call_type: str) -> bytes:
    call: dict[str, Any] = {
        "messageId": draw(_TEXT), "type": call_type, "userId": draw(st.one_of(st.none(), _TEXT)),
        "anonymousId": draw(_TEXT), "timestamp": "2024-05-01T12:00:00.000Z", "receivedAt": "2024-05-01T12:00:01Z",
        "context": draw(_context()), "integrations": {"All": True, "Mixpanel": False},
    }
    call.update({k: draw(v) for k, v in _OWN_FIELDS[call_type]().items()})
    extras: dict[str, Any] = {
        "channel": draw(st.sampled_from(["client", "server", "mobile"])), "version": 2,
        "_metadata": {"bundled": ["Segment.io"], "unbundled": draw(st.lists(_TEXT, max_size=2)), "bundledIds": []},
        "writeKey": draw(_TEXT), "projectId": draw(_TEXT), "request_id": draw(_TEXT), "event_text": draw(_TEXT),
    }
    for key in draw(st.lists(st.sampled_from(sorted(extras)), unique=True)):
        call[key] = extras[key]
    own_keys = _TEXT.filter(lambda k: k != "type" and k not in NESTED_FIELDS)
    for key in draw(st.lists(own_keys, max_size=2)):  # a source's own top-level keys (may shadow a column)
        call[key] = draw(st.one_of(_TEXT, _SAFE_NUMBER, st.none(), st.lists(_SAFE_NUMBER, max_size=3)))
    items = draw(st.permutations(list(call.items())))
    ascii_only = draw(st.booleans())
    return json.dumps(dict(items), separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


class _RowParserSpy:
    """Counts the lines a ColumnarParser hands to its row parser (the slow routes)."""

    def __init__(self, parser: ColumnarParser) -> None:
        self.inner, self.lines = parser._rows, 0
        parser._rows = self  # type: ignore[assignment]

    def parse(self, lines: Sequence[bytes], flags: Any = None) -> ParsedBatch:
        self.lines += len(lines)
        return self.inner.parse(lines, flags)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_sdk_shaped_calls_stay_on_the_vectorised_route_and_match_the_reference(data: st.DataObject) -> None:
    call_type = data.draw(st.sampled_from(CALL_TYPES), label="call_type")
    lines = data.draw(st.lists(_sdk_line(call_type), min_size=1, max_size=6), label="lines")
    for mode in MODES:
        batch = parse(lines, call_type, mode)  # every parser, lists and LineBlocks: the reference's answer
        assert not batch.rejected and batch.count == len(lines)
    block = LineBlock.from_lines(lines)
    assert not needs_reference_path(block, Limits()).any()  # within every limit: nothing flagged
    parser = ColumnarParser(call_type)
    spy = _RowParserSpy(parser)
    assert parser.parse(block).count == len(lines)
    assert spy.lines == 0  # extra fields, numbers, big orders: all on the vectorised route


# --------------------------------------------------------------------------------------------
# receivedAt inside the window the lines were served for (shared/received.py)

_W = Window.starting(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
_INSIDE = "2024-05-01T12:00:01.250Z"


def test_without_a_window_receivedat_is_not_looked_at() -> None:
    lines = [_line(_call("track")), _line(_call("track", receivedAt="yesterday")),
             _line(_call("track", receivedAt=5)), _line(_call("track", receivedAt="2024-05-01T12:10:00Z"))]
    for mode in MODES:
        assert parse(lines, "track", mode).count == 4  # parsers without a window, as before


@pytest.mark.parametrize("call_type", CALL_TYPES)
@pytest.mark.parametrize("mode", MODES)
def test_every_parser_rejects_a_call_outside_its_window_with_the_reason_in_input_order(
    call_type: str, mode: str
) -> None:
    def call(received: Any = ..., **more: Any) -> bytes:
        fields = _call(call_type, **more) if received is ... else _call(call_type, receivedAt=received, **more)
        return _line(fields)

    cases: list[tuple[bytes, str | None]] = [
        (call(_INSIDE), None),
        (call(), MISSING),
        (call(None), MISSING),
        (call("2024-05-01T12:10:00.000Z"), outside_reason(_W)),
        (call("2024-05-01T13:05:00.000+01:00"), None),
        (call("2024-05-01T12:05:00.000+01:00"), outside_reason(_W)),
        (call(1714564800000), NOT_RFC3339),
        (call({"at": _INSIDE}), NOT_RFC3339),
        (call("2024-05-01 12:05:00Z"), NOT_RFC3339),
        (call(_INSIDE, channel="server", version=2), None),  # the extras route
        (call("2024-04-30T12:05:00Z", userId=7), outside_reason(_W)),  # a number in a string column
        (call(_INSIDE, context={"deep": "\u2028"}), None),
        (call(_INSIDE, properties="not an object"), None),  # a nested field that is not an object
    ]
    # The call's own faults come first: a bad line outside the window keeps its reason.
    not_json = b'{"type":"' + call_type.encode() + b'","receivedAt":"2024-05-01T12:10:00Z","x":NaN}'
    [own] = _reference([not_json], call_type, mode, Limits()).rejected
    assert own.reason.startswith("not valid JSON")
    cases.insert(3, (not_json, own.reason))
    # Invalid UTF-8 inside a nested object sends the columnar parser's whole batch to the row parser.
    not_utf8 = call(_INSIDE)[:-1] + b',"traits":{"a":"\xff"}}'
    [own] = _reference([not_utf8], call_type, mode, Limits()).rejected
    cases.append((not_utf8, own.reason))
    lines = [line for line, _ in cases]
    batch = parse(lines, call_type, mode, window=_W)  # every parser, lists and LineBlocks: the reference's answer
    assert [(r.line, r.reason) for r in batch.rejected] == [(line, why) for line, why in cases if why is not None]
    assert batch.count == sum(1 for _, why in cases if why is None)


@st.composite
def _sdk_line_received(draw: st.DrawFn, call_type: str, window: Window) -> bytes:
    call = json.loads(draw(_sdk_line(call_type)))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        del call["receivedAt"]
    elif kind == 1:
        call["receivedAt"] = draw(st.one_of(_SAFE_NUMBER, st.booleans(), st.just({"t": _INSIDE}), st.just([])))
    else:
        call["receivedAt"] = draw(received_values(window))
    return json.dumps(call, separators=(",", ":"), ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_the_window_rule_on_every_route_is_the_plain_datetime_reference(data: st.DataObject) -> None:
    call_type = data.draw(st.sampled_from(CALL_TYPES), label="call_type")
    window = data.draw(windows(), label="window")
    lines = data.draw(st.lists(_sdk_line_received(call_type, window), min_size=1, max_size=8), label="lines")
    expected = []
    for line in lines:
        value = json.loads(line).get("receivedAt")
        cell = value if value is None or isinstance(value, str) else raw_cell(json.dumps(value).encode())
        expected.append(plain_reason(cell, window))
    for mode in MODES:
        batch = parse(lines, call_type, mode, window=window)  # every parser: the reference's answer
        assert [(r.line, r.reason) for r in batch.rejected] == [
            (line, reason) for line, reason in zip(lines, expected, strict=True) if reason is not None
        ]
    # Only the rejected lines leave the vectorised route (an offset inside the window does not).
    parser = ColumnarParser(call_type, window=window)
    spy = _RowParserSpy(parser)
    assert parser.parse(LineBlock.from_lines(lines)).count == expected.count(None)
    assert spy.lines == len(lines) - expected.count(None)
