"""What the exporter reads back from its own records: the state rows and pins
(shared/state_store.py) and a pending claim's recipe (shared/recipe.py).

Both come from outside the process (an operator's `az storage entity merge`, another version of
the exporter), so both are read at one boundary, strictly: whatever the row or recipe holds, the
reader returns what was written or raises the one error that names the row and the fix, never a
raw ValueError and never a default (docs/operations.md, "A state row the exporter cannot read",
"A pending window this version cannot read").
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import StateConflictError
from shared.recipe import Recipe, UnreadableRecipe
from shared.state_store import (
    DestinationPin,
    TypeState,
    _entity_to_pin,
    _entity_to_state,
    _pin_to_entity,
    _state_to_entity,
)

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "2184.13699"
TABLE = "exporterpositions"

RECIPE = Recipe(export_format="csv", gzip=False, parquet_compression="zstd", csv_escape_formulas=True,
                max_file_rows=1000, max_file_bytes=1 << 20, max_call_bytes=65536,
                container="https://acct.blob.core.windows.net/exports", blob_path="segment")
HERE = replace(RECIPE, container="https://acct.blob.core.windows.net/other", blob_path="moved", max_file_rows=7)

windows = st.integers(0, 10**6).map(lambda n: W0 + timedelta(minutes=10) * n)
positions = st.integers(0, 2**62)


def _row(**fields: object) -> dict:
    entity = _state_to_entity(TypeState(KEY, "track", position=4, window_end=W0))
    entity.update(fields)
    return entity


# -- state rows ----------------------------------------------------------------------------------

@given(position=positions, window_end=windows, pending=st.none() | st.tuples(windows, st.integers(1, 2**62)),
       run=st.text(max_size=8))
def test_a_row_the_exporter_wrote_reads_back_as_written(position, window_end, pending, run):
    state = TypeState(KEY, "track", position=position, window_end=window_end,
                      pending_start=pending[0] if pending else None,
                      pending_position=pending[1] if pending else None,
                      pending_run=(run or None) if pending else None,
                      pending_recipe=RECIPE.to_json() if pending else None, last_run=run or None)
    assert _entity_to_state(_state_to_entity(state), TABLE) == state


_values = st.none() | st.text(max_size=30) | st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.floats()


@given(field=st.sampled_from(["position", "window_end", "pending_start", "pending_position",
                              "pending_run", "pending_recipe", "last_run"]),
       value=_values, claimed=st.booleans())
def test_any_value_in_any_field_reads_as_a_state_or_as_one_error_naming_the_row_and_the_field(field, value, claimed):
    entity = _row(**({"pending_start": "2026-11-28T12:10:00Z", "pending_position": 5} if claimed else {}))
    entity[field] = value
    try:
        state = _entity_to_state(entity, TABLE)
    except StateConflictError as exc:
        message = str(exc)
        assert f"STATE_TABLE {TABLE}, row {KEY}/track: {field}" in message and "docs/operations.md" in message
        assert "\n" not in message and exc.call_type == "track" and not exc.transient
        return
    assert isinstance(state.position, int) and state.position >= 0
    assert state.window_end.tzinfo is not None and state.window_end.year > 1970
    assert state.pending_position is None or state.pending_position >= 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"position": "12a"}, "position"),
    ({"position": -1}, "position"),
    ({"position": True}, "position"),
    ({"position": None}, "position"),
    ({"window_end": ""}, "window_end"),
    ({"window_end": None}, "window_end"),
    ({"window_end": "2026-11-28 12:00"}, "window_end"),
    ({"window_end": "2026-11-28T12:05:00Z"}, "window_end"),  # not a window boundary
    ({"pending_start": "soon"}, "pending_start"),
    ({"pending_start": "2026-11-28T12:00:00Z", "pending_position": "one"}, "pending_position"),
    ({"pending_start": "2026-11-28T12:00:00Z", "pending_position": 0}, "pending_position"),
])
def test_the_values_an_operator_can_type_by_mistake_are_refused(fields, field):
    with pytest.raises(StateConflictError, match=f"row {KEY}/track: {field} "):
        _entity_to_state(_row(**fields), TABLE)


def test_what_az_storage_entity_writes_as_text_is_read_when_it_is_plain():
    state = _entity_to_state(_row(position="12", window_end="2026-11-28T13:00:00+01:00"), TABLE)
    assert (state.position, state.window_end) == (12, W0)
    # no claim: a leftover pending_position is ignored, whatever it holds (docs/operations.md)
    assert _entity_to_state(_row(pending_start="", pending_position="junk"), TABLE).pending_position is None


@given(start=st.none() | windows)
def test_a_pin_reads_back_as_written_and_a_pin_without_a_start_is_one_of_an_earlier_version(start):
    pin = DestinationPin("default", "2184", "13699", container="c", blob_path="p", start=start)
    assert _entity_to_pin(_pin_to_entity(pin), TABLE) == pin
    earlier = _pin_to_entity(pin)
    del earlier["start"]
    assert _entity_to_pin(earlier, TABLE).start is None
    with pytest.raises(StateConflictError, match="row destinations/default: start "):
        _entity_to_pin({**earlier, "start": "tomorrow"}, TABLE)


# -- a pending claim's recipe --------------------------------------------------------------------

def test_a_recipe_reads_back_as_written():
    assert Recipe.from_json(RECIPE.to_json(), HERE) == RECIPE


def test_a_recipe_of_a_version_before_the_place_was_recorded_is_finished_in_the_current_place():
    stored = asdict(RECIPE)
    del stored["container"], stored["blob_path"]
    assert Recipe.from_json(json.dumps(stored), HERE) == replace(RECIPE, container=HERE.container,
                                                                 blob_path=HERE.blob_path)


@pytest.mark.parametrize(("edit", "says"), [
    (lambda r: {**r, "row_group_rows": 50000}, "does not know: row_group_rows"),
    (lambda r: {k: v for k, v in r.items() if k != "max_call_bytes"}, "needs: max_call_bytes"),
    (lambda r: {k: v for k, v in r.items() if k != "blob_path"}, "needs: blob_path"),  # half a place
    (lambda r: {**r, "max_file_rows": "1000"}, "max_file_rows is '1000', not of type int"),
    (lambda r: {**r, "max_file_rows": True}, "max_file_rows is True"),
    (lambda r: {**r, "gzip": 1}, "gzip is 1, not of type bool"),
    (lambda r: {**r, "export_format": "avro"}, "export_format 'avro'"),
    (lambda r: [r], "not a JSON object"),
])
def test_a_recipe_this_version_cannot_read_exactly_is_refused_never_replaced(edit, says):
    with pytest.raises(UnreadableRecipe, match=says.replace("(", r"\(")):
        Recipe.from_json(json.dumps(edit(asdict(RECIPE))), HERE)


@given(st.text(max_size=300) | st.builds(lambda n: RECIPE.to_json()[:n], st.integers(0, 400)))
def test_any_text_is_the_recipe_it_holds_or_refused(text):
    try:
        recipe = Recipe.from_json(text, HERE)
    except UnreadableRecipe as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert recipe == RECIPE  # only the whole recipe reads
