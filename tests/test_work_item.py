"""The work item (the queue message) and the planner's choice: pure, property-based at the boundary
that takes outside input (a message's text)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calltypes import CALL_TYPES
from shared.planner import due_items
from shared.state_store import TypeState
from shared.windows import WINDOW
from shared.work_item import BadWorkItem, WorkItem
from shared.work_markers import Marker

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
windows = st.integers(0, 10**6).map(lambda n: datetime(2020, 1, 1, tzinfo=UTC) + n * WINDOW)
ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
items = st.builds(WorkItem, names, st.sampled_from(CALL_TYPES), windows,
                  st.integers(0, 10**9).map(lambda s: datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=s)),
                  st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
# with the optional pinned ids and marker ETag (neither, or the ids, or both)
hinted = st.tuples(items, st.none() | st.tuples(ids, ids), st.none() | st.from_regex(r"[!-~]{1,200}", fullmatch=True))


@given(items)
def test_an_item_reads_back_as_it_was_written(item):
    assert WorkItem.from_text(item.to_text()) == item


@given(hinted)
def test_the_pinned_ids_and_the_marker_etag_read_back_as_written_and_decide_nothing(case):
    item, pinned, etag = case
    if pinned is not None:
        item = item.pinned(*pinned)
    if etag is not None:
        item = item.sent_with(etag)
    back = WorkItem.from_text(item.to_text())
    assert (back, back.ids, back.marker) == (item, pinned, etag or "")
    assert back.at(back.window_start + WINDOW).ids == pinned  # the chain's next item keeps the ids
    assert back == replace(back, integration_id="", action_id="", marker="")  # not part of what it asks for


def test_a_message_of_an_earlier_version_without_ids_or_marker_is_read():
    text = ('{"v":1,"destination":"default","type":"track","window":"2026-11-28T12:00:00Z",'
            '"horizon":"2026-11-28T12:31:00Z","chain":"c1"}')
    item = WorkItem.from_text(text)
    assert (item.ids, item.marker) == (None, "")


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_other_text_is_refused_in_one_line_without_echoing_it_whole(text):
    try:
        WorkItem.from_text(text)
    except BadWorkItem as exc:
        message = str(exc)
        assert "\n" not in message.replace(repr(text[:80]), "")
        assert "poison" in message or "operations.md" in message
        assert len(message) < 600


@pytest.mark.parametrize("change", [
    {"v": 2}, {"type": "click"}, {"destination": "Prod EU"}, {"window": "2026-11-28T12:05:00Z"},
    {"window": "yesterday"}, {"chain": ""}, {"horizon": 5},
    {"integration_id": "a b", "action_id": "1"}, {"integration_id": "2184"}, {"action_id": 7},
    {"marker": "x" * 201}, {"marker": "tab\there"},
])
def test_a_message_this_version_did_not_write_is_refused_naming_what_is_wrong(change):
    import json

    good = json.loads(WorkItem("prod-eu", "track", W0, W0, "abc").to_text())
    with pytest.raises(BadWorkItem, match="unreadable"):
        WorkItem.from_text(json.dumps({**good, **change}))


def test_a_huge_message_is_refused_without_parsing_it():
    with pytest.raises(BadWorkItem, match="characters"):
        WorkItem.from_text("{" + " " * 100_000 + "}")


def test_a_chain_exports_the_windows_due_at_its_horizon_and_no_later_one():
    item = WorkItem("default", "track", W0, datetime(2026, 11, 28, 12, 31, 0, tzinfo=UTC), "c1")
    assert item.due(W0 + 2 * WINDOW, 60)  # 12:20-12:30 is settled at 12:31
    assert not item.due(W0 + 3 * WINDOW, 0)
    assert not item.due(W0 + 2 * WINDOW, 61)


def _state(t, end):
    return TypeState("2184.13699", t, 0, end)


@given(st.integers(0, 12), st.integers(0, 500), st.booleans(), st.integers(5, 600))
def test_a_type_is_planned_once_due_and_only_without_a_live_item(behind, touched_ago, has_marker, lease):
    now = W0 + timedelta(minutes=10 * 12, seconds=61)
    states = {"track": _state("track", now.replace(second=0) - timedelta(minutes=1) - behind * WINDOW)}
    wall = 1_000_000.0
    marker = Marker("default~track", "c1", "x", "y", wall - touched_ago) if has_marker else None
    planned = due_items(states, {"track": marker}, now, 60, wall, lease)
    due = states["track"].window_end + WINDOW <= now.replace(second=0) - timedelta(minutes=1)
    live = has_marker and touched_ago <= 2 * lease
    assert [d.call_type for d in planned] == (["track"] if due and not live else [])
    if planned:
        assert planned[0].window_start == states["track"].window_end  # never skip a window
        assert planned[0].replacing == marker


def test_a_marker_holds_only_its_chain_at_its_window():
    item = WorkItem("default", "track", W0, W0, "c1")
    marker = Marker(item.key, "c1", "2026-11-28T12:00:00Z", "", 0.0)
    assert marker.holds(item)
    assert not marker.holds(item.at(W0 + WINDOW))
    assert not marker.holds(replace(item, chain="c2"))
