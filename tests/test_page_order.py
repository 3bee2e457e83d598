"""The order check at page boundaries (shared/page_order.py) and Page.without, against simple
references on generated pages (the end-to-end cases are in tests/test_attack_etl.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.lines import LineBlock
from shared.page_order import REPEAT_REASON, OutOfOrder, PageOrder, instant_ns, line_key
from shared.page_reader import OversizedLine, Page
from shared.records import RejectedCall

BASE = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
UNREADABLE = [
    b"not json",
    b"[1, 2]",
    b'{"messageId":"m"}',
    b'{"receivedAt":"2026-11-28T12:00:00Z"}',
    b'{"receivedAt":"2026-11-28T12:00:00","messageId":"m"}',  # no offset
    b'{"receivedAt":"2026-11-28T12:00:00Z","messageId":7}',
    b'{"receivedAt":"2026-02-30T12:00:00Z","messageId":"m"}',
    b'{"receivedAt":"2026-11-28T12:00:00Z","messageId":"m"',  # cut
]


def text_of(ns: int, offset_minutes: int, extra_zeros: int) -> str:
    """One of the many RFC 3339 spellings of the instant ``ns`` after BASE."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    tz = timezone(timedelta(minutes=offset_minutes))
    local = (BASE + timedelta(seconds=seconds)).astimezone(tz)
    head = local.strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    frac = f".{digits}{'0' * extra_zeros}" if digits or extra_zeros else ""
    if offset_minutes == 0:
        suffix = "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        suffix = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    return head + frac + suffix


# A key is (ns after BASE, messageId); small domains so that equal keys and ties are common.
keys = st.tuples(st.integers(0, 5).map(lambda k: k * 500_000_000), st.sampled_from(["a", "b", "c", "é"]))
spelling = st.tuples(st.sampled_from([0, 120, -330, 60 * 14]), st.integers(0, 3))


@st.composite
def lines_of(draw, page_keys: list[tuple[int, str] | None]) -> list[bytes]:
    out = []
    for key in page_keys:
        if key is None:
            out.append(draw(st.sampled_from(UNREADABLE)))
        else:
            offset, zeros = draw(spelling)
            out.append(orjson.dumps({"type": "track", "receivedAt": text_of(key[0], offset, zeros),
                                     "messageId": key[1], "n": draw(st.integers(0, 9))}))
    return out


def reference(pages: list[list[tuple[int, str] | None]]) -> list[list[int]] | int:
    """The repeats of each page, or the index of the first page that goes back; keeps every key
    seen, not only the last one."""
    history: list[tuple[int, str]] = []
    out: list[list[int]] = []
    for p, page in enumerate(pages):
        readable = [(i, k) for i, k in enumerate(page) if k is not None]
        repeats: list[int] = []
        if history:
            j = 0
            while j < len(readable) and readable[j][1] == history[-1]:
                repeats.append(readable[j][0])
                j += 1
            if j < len(readable) and readable[j][1] < history[-1]:
                return p
        history += [k for _, k in readable]
        out.append(repeats)
    return out


def absolute(key: tuple[int, str]) -> tuple[int, str]:
    base = int(BASE.timestamp()) * 1_000_000_000
    return base + key[0], key[1]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_boundary_check_matches_a_reference_that_keeps_every_key(data):
    pages = data.draw(st.lists(st.lists(st.one_of(st.none(), keys), max_size=5), min_size=1, max_size=6))
    expected = reference(pages)
    order = PageOrder()
    got: list[list[int]] = []
    for p, page in enumerate(pages):
        lines = data.draw(lines_of(page))
        try:
            got.append(order.check(lines))
        except OutOfOrder:
            assert expected == p
            return
        readable = [absolute(k) for k in page if k is not None]
        if readable:
            assert order.last == readable[-1]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_sorted_stream_paged_anywhere_with_repeats_at_the_boundaries_comes_out_whole(data):
    stream = sorted(set(data.draw(st.lists(keys, max_size=20))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    pages = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    order = PageOrder()
    kept: list[tuple[int, str]] = []
    inserted = 0
    last: tuple[int, str] | None = None
    for page in pages:
        served: list[tuple[int, str] | None] = list(page)
        if last is not None and page:
            repeats = data.draw(st.integers(0, 2))
            served = [last] * repeats + served
            inserted += repeats
        garbage_at = data.draw(st.lists(st.integers(0, len(served)), max_size=2))
        for at in sorted(garbage_at, reverse=True):
            served.insert(at, None)
        lines = data.draw(lines_of(served))
        dropped = set(order.check(lines))
        kept += [k for i, k in enumerate(served) if k is not None and i not in dropped]
        inserted -= len(dropped)
        if page:
            last = page[-1]
    assert kept == stream
    assert inserted == 0


def test_a_page_that_starts_below_the_last_call_is_out_of_order():
    order = PageOrder()
    order.check([orjson.dumps({"receivedAt": "2026-11-28T12:00:01Z", "messageId": "b"})])
    # 12:00:00.5 at +01:00 is an hour earlier as an instant, whatever the text says.
    with pytest.raises(OutOfOrder, match="below the previous page's last call"):
        order.check([b"garbage", orjson.dumps({"receivedAt": "2026-11-28T13:00:00.5+01:00", "messageId": "z"})])


def test_instants_are_compared_whatever_the_spelling():
    same = ["2026-11-28T12:00:00.5Z", "2026-11-28T12:00:00.500000000000Z", "2026-11-28T14:00:00.5+02:00",
            "2026-11-28t11:30:00.5-00:30"]
    assert len({instant_ns(t) for t in same}) == 1
    assert instant_ns("2026-11-28T12:00:00.4999999999Z") < instant_ns("2026-11-28T12:00:00.5Z")
    for line in UNREADABLE:
        assert line_key(line) is None, line


def _flat(page: Page) -> list[object]:
    """The page's lines and left-out lines in the page's order."""
    out: list[object] = []
    marks = list(page.set_aside)
    m = 0
    for i, line in enumerate(page.lines):
        while m < len(marks) and marks[m][0] <= i:
            out.append(marks[m][1])
            m += 1
        out.append(line)
    out += [line for _, line in marks[m:]]
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=12), st.data())
def test_without_moves_the_dropped_lines_out_in_their_place(kinds, data):
    # kinds: True = a kept line, False = an over-cap line left out by the reader
    items: list[object] = []
    lines: list[bytes] = []
    marks: list[tuple[int, OversizedLine]] = []
    for k, is_line in enumerate(kinds):
        if is_line:
            lines.append(b'{"n":%d}' % k)
            items.append(lines[-1])
        else:
            big = OversizedLine(10 + k, f"{k:064x}", b"x", 8)
            marks.append((len(lines), big))
            items.append(big)
    page = Page(LineBlock.from_lines(lines), tuple(marks), 1)
    assert _flat(page) == items
    drop = sorted(data.draw(st.sets(st.integers(0, max(0, len(lines) - 1)))) if lines else set())
    after = page.without(drop, REPEAT_REASON)
    gone = {lines[i] for i in drop}
    assert _flat(after) == [RejectedCall(x, REPEAT_REASON) if isinstance(x, bytes) and x in gone else x
                            for x in items]
    assert list(after.lines) == [x for i, x in enumerate(lines) if i not in set(drop)]
