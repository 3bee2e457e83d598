"""Positions are Edm.Int64 in the state table, and Int32 rows of earlier versions read the same
(issue 9, item 10: position 2**31 raised a raw TypeError and the type was stuck)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from azure.data.tables import EdmType, TableServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.state_store import StateStore, make_table_service
from tests.support.blobs import rows_of
from tests.support.calls import make_window_calls
from tests.support.invariants import ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
INT32_MAX = 2**31 - 1


def test_a_type_at_the_int32_limit_goes_on_to_position_2_to_the_31_and_beyond(harness):
    calls = [*make_window_calls(W0, per_type={"track": 3}, seed=1),
             *make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=2)]
    harness.source.add(calls)
    table = TableServiceClient.from_connection_string(harness.azurite.connection_string).get_table_client(
        harness.table)
    table.create_table()
    table.create_entity({  # as an earlier version wrote it: plain ints are Edm.Int32
        "PartitionKey": "2184.13699", "RowKey": "track", "position": INT32_MAX,
        "window_end": "2026-11-28T12:00:00Z", "pending_start": "", "pending_position": -1,
        "pending_run": "", "pending_recipe": "", "last_run": "old",
    })
    assert state_rows(harness)["track"].position == INT32_MAX  # an Int32 row reads as it did

    summary = run_with(harness, "2026-11-28T12:21:01Z")
    assert summary.ok, summary.error
    names = sorted(f.name.rsplit("/", 1)[1] for f in summary.files)
    assert names == ["2184.13699.2147483648.track.csv", "2184.13699.2147483649.track.csv"]
    got = {r["messageId"] for b in harness.data_blobs().values() for r in rows_of(b.name, b.data)}
    assert got == ids_of(calls)
    assert committed(state_rows(harness))["track"] == (2**31 + 1, W0 + timedelta(minutes=20))
    row = table.get_entity("2184.13699", "track")
    assert row["position"].edm_type == EdmType.INT64


@settings(max_examples=25, deadline=None)
@given(position=st.integers(min_value=0, max_value=2**63 - 2))
def test_any_position_round_trips_through_claim_and_commit(azurite, position):
    store = StateStore(make_table_service(azurite.connection_string), f"t{uuid.uuid4().hex[:20]}")
    try:
        store.ensure_table()
        state = store.create("2184.13699", "track", W0)
        state = store.commit(state, W0, position, "r0")
        assert state is not None and store.get("2184.13699", "track").position == position
        claimed = store.claim(store.get("2184.13699", "track"), W0, "r1")
        assert claimed is not None
        again = store.get("2184.13699", "track")
        assert again.pending_position == position + 1 and again.position == position
        done = store.commit(again, W0 + timedelta(minutes=10), position + 1, "r1")
        assert done is not None and store.get("2184.13699", "track").position == position + 1
    finally:
        store.service.delete_table(store.table_name)
        store.service.close()
