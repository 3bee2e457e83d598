"""Pages held as one buffer (LineBlock), fixed-size batches, read-ahead: pure logic."""

from __future__ import annotations

import threading

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.batching import prefetch, rebatch
from shared.lines import LineBlock

_line = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b)


@given(st.lists(_line, max_size=30))
def test_a_page_body_reads_back_as_its_lines(lines: list[bytes]) -> None:
    body = b"".join(line + b"\n" for line in lines)
    block = LineBlock.from_body(body)
    assert list(block) == lines
    assert [block[i] for i in range(len(block))] == lines
    assert block.lengths.tolist() == [len(line) for line in lines]
    assert block.binary_array().to_pylist() == [line + b"\n" for line in lines]
    assert [bytes(view) for view in block.views()] == lines
    assert LineBlock.from_lines(lines).binary_array().to_pylist() == block.binary_array().to_pylist()


def test_blank_lines_carry_no_call() -> None:
    assert list(LineBlock.from_body(b'{"a":1}\n\n{"b":2}\n\n')) == [b'{"a":1}', b'{"b":2}']
    assert list(LineBlock.from_body(b"")) == []
    assert list(LineBlock.from_body(b"\n\n")) == []


def test_negative_and_out_of_range_indexes_behave_like_a_list() -> None:
    block = LineBlock.from_body(b"a\nbb\nccc\n")
    assert block[-1] == b"ccc"
    with pytest.raises(IndexError):
        block[3]
    assert list(block[1:]) == [b"bb", b"ccc"] and list(block[5:]) == []
    with pytest.raises(ValueError, match="step 1"):
        block[::2]


@given(st.lists(st.lists(_line, max_size=7), max_size=6), st.integers(min_value=1, max_value=5))
def test_rebatch_gives_batches_of_exactly_size_in_order_whatever_the_paging(
    pages: list[list[bytes]], size: int
) -> None:
    flat = [line for page in pages for line in page]
    blocks = [LineBlock.from_body(b"".join(line + b"\n" for line in page)) for page in pages]
    batches = [list(b) for b in rebatch(blocks, size)]
    assert [line for b in batches for line in b] == flat
    assert all(len(b) == size for b in batches[:-1]) and all(batches)
    # The same lines paged differently give the same batches (file splits depend on them only).
    assert [list(b) for b in rebatch([flat], size)] == batches


def test_a_batch_across_pages_is_one_buffer_with_the_lines_of_both() -> None:
    first, second = LineBlock.from_body(b"1\n2\n3\n"), LineBlock.from_body(b"4\n5\n")
    batches = list(rebatch([first, second], 2))
    assert [list(b) for b in batches] == [[b"1", b"2"], [b"3", b"4"], [b"5"]]
    crossing = batches[1]
    assert [bytes(view) for view in crossing.views()] == [b"3", b"4"]
    assert crossing.binary_array().to_pylist() == [b"3\n", b"4\n"]


@given(st.lists(_line, min_size=1, max_size=8), st.integers(min_value=0, max_value=8))
def test_the_views_of_a_slice_are_its_own_lines_without_a_copy(lines: list[bytes], skip: int) -> None:
    block = LineBlock.from_body(b"".join(line + b"\n" for line in lines))
    views = block[skip:].views()
    assert [bytes(view) for view in views] == lines[skip:]
    assert all(view.obj is block._data for view in views)  # views of the page's one buffer


def test_prefetch_hands_on_items_in_order_and_reraises_where_it_failed() -> None:
    def items():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise RuntimeError("page 3 failed")

    got = []
    with pytest.raises(RuntimeError, match="page 3 failed"):
        for item in prefetch(items(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_runs_the_producer_on_a_thread_of_the_given_name() -> None:
    def items():  # type: ignore[no-untyped-def]
        yield threading.current_thread().name

    assert list(prefetch(items(), depth=1, name="screen")) == ["screen"]
    assert list(prefetch(items())) == ["prefetch"]


def test_prefetch_closed_early_stops_its_thread() -> None:
    produced = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(1000):
            produced.append(i)
            yield i

    before = threading.active_count()
    it = prefetch(items(), depth=1)
    assert next(it) == 0
    it.close()
    assert threading.active_count() == before
    assert len(produced) < 10


def test_a_raw_newline_inside_a_line_stays_in_that_line() -> None:
    block = LineBlock.from_lines([b'{"a":1}', b'{"a":[1\n2]}'])  # broken JSON; "[1,2]" would not be
    assert list(block) == [b'{"a":1}', b'{"a":[1\n2]}']
    assert [bytes(view) for view in block.views()] == list(block)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(block.views()[1])
