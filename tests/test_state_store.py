"""The state store's contract against a real Azurite table (docs/design.md, invariants 4 and 5):
every write is conditional (insert-if-absent, If-Match), a row moved by another writer is that
writer's, and our own write whose response was lost (the SDK's retry then meets 409/412) is
recognised as ours, not as a rival's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.state_store import StateStore, make_table_service
from tests.support.faulty_transport import LosingTransport, is_table_conditional_write

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
W1 = W0 + timedelta(minutes=10)
KEY = "2184.13699"


@pytest.fixture
def make_store(azurite) -> Iterator:  # type: ignore[no-untyped-def]
    """A store factory on one fresh table; each store may have its own transport."""
    table = f"t{uuid.uuid4().hex[:20]}"
    stores: list[StateStore] = []

    def make(transport=None) -> StateStore:  # type: ignore[no-untyped-def]
        kwargs = {"transport": transport, "retry_backoff_factor": 0.01} if transport else {}
        store = StateStore(make_table_service(azurite.connection_string, **kwargs), table)
        stores.append(store)
        return store

    yield make
    stores[0].service.delete_table(table)
    for store in stores:
        store.service.close()


def test_create_inserts_only_if_absent_and_a_second_create_reads_the_first(make_store):
    store = make_store()
    store.ensure_table()
    store.ensure_table()  # twice is fine
    first = store.create(KEY, "track", W0)
    second = store.create(KEY, "track", W1)  # another run, another EXPORT_START: the row wins
    assert (first.position, first.window_end) == (0, W0)
    assert (second.position, second.window_end) == (0, W0)


def test_a_claim_on_a_row_another_writer_moved_is_refused(make_store):
    store = make_store()
    store.ensure_table()
    state = store.create(KEY, "track", W0)
    rival = store.claim(state, W0, "rival")
    assert rival is not None
    assert store.claim(state, W0, "us") is None  # our ETag is stale: the row is the rival's
    assert store.get(KEY, "track").pending_run == "rival"


def test_a_commit_after_another_run_took_the_claim_over_is_refused_and_the_row_stays_theirs(make_store):
    store = make_store()
    store.ensure_table()
    ours = store.claim(store.create(KEY, "track", W0), W0, "us", recipe='{"export_format":"csv"}')
    assert ours is not None and store.holds_claim(ours)
    theirs = store.claim(store.get(KEY, "track"), W0, "them")  # a later run takes the pending claim over
    assert theirs is not None and not store.holds_claim(ours)
    assert store.commit(ours, W1, 1, "us") is None
    row = store.get(KEY, "track")
    assert (row.position, row.window_end, row.pending_run) == (0, W0, "them")


def test_resuming_a_claim_keeps_its_first_position_and_its_recipe(make_store):
    store = make_store()
    store.ensure_table()
    state = store.commit(store.claim(store.create(KEY, "track", W0), W0, "r0"), W0, 7, "r0")
    first = store.claim(state, W0, "r1", recipe='{"export_format":"csv"}')
    assert first is not None and first.pending_position == 8
    again = store.claim(store.get(KEY, "track"), W0, "r2", recipe='{"export_format":"parquet"}')
    assert again is not None
    assert (again.pending_position, again.pending_recipe) == (8, '{"export_format":"csv"}')


@pytest.mark.parametrize("step", ["claim", "commit"])
def test_our_conditional_write_whose_response_was_lost_is_recognised_as_ours(make_store, step):
    """The write lands, its response is lost, the SDK resends it and meets 412 (the ETag moved,
    by us): the store reads the row, finds our run's write and returns it instead of None."""
    lose = LosingTransport(is_table_conditional_write, after=0 if step == "claim" else 1)
    store = make_store(lose)
    store.ensure_table()
    claimed = store.claim(store.create(KEY, "track", W0), W0, "us")
    assert claimed is not None and claimed.pending_run == "us"
    done = store.commit(claimed, W1, 3, "us")
    assert len(lose.fired) == 1 and lose.retried_statuses == [412]
    assert done is not None and (done.position, done.window_end, done.pending_run) == (3, W1, None)
    assert replace(store.get(KEY, "track"), etag="") == replace(done, etag="")


def test_our_insert_whose_response_was_lost_fails_transiently_and_the_next_create_reads_it(make_store):
    """An insert is a POST, which the SDK does not resend: its lost response is a transient error
    (the run retries later), and the next create meets 409 and reads the row our insert made."""
    from shared.errors import StorageError

    lose = LosingTransport(lambda r: r.method == "POST" and "Tables" not in r.url)
    store = make_store(lose)
    store.ensure_table()
    with pytest.raises(StorageError) as failed:
        store.create(KEY, "track", W0)
    assert failed.value.transient and len(lose.fired) == 1 and lose.fired[0].status == 201
    state = store.create(KEY, "track", W1)
    assert (state.position, state.window_end) == (0, W0)


def test_no_table_reads_as_no_row_but_a_write_to_a_deleted_table_is_a_clear_error(make_store):
    from shared.errors import StorageConfigError

    store = make_store()
    assert store.get(KEY, "track") is None and store.destination_keys() == set()
    store.ensure_table()
    state = store.create(KEY, "track", W0)
    store.service.delete_table(store.table_name)
    with pytest.raises(StorageConfigError, match="STATE_TABLE"):
        store.claim(state, W0, "us")
    store.ensure_table()  # for the fixture's clean-up


# -- leases (recording a replay: shared/backfill_run.py recording_replay) ---------------------------

def test_a_lease_has_one_holder_until_it_is_released_or_expires(make_store):
    store = make_store()
    assert store.take_lease("replay~default", "a", 120, W0) is None
    assert store.take_lease("replay~default", "a", 120, W0 + timedelta(seconds=5)) is None  # ours already
    assert store.take_lease("replay~default", "b", 120, W0 + timedelta(seconds=60)) == W0 + timedelta(seconds=120)
    store.release_lease("replay~default", "b")  # not b's: stays a's
    assert store.take_lease("replay~default", "b", 120, W0 + timedelta(seconds=61)) == W0 + timedelta(seconds=120)
    store.release_lease("replay~default", "a")
    assert store.take_lease("replay~default", "b", 120, W0 + timedelta(seconds=62)) is None
    # b dies holding it: once it has expired, c takes it over; b's late release leaves c's lease.
    assert store.take_lease("replay~default", "c", 120, W0 + timedelta(seconds=200)) is None
    store.release_lease("replay~default", "b")
    assert store.take_lease("replay~default", "d", 120, W0 + timedelta(seconds=201)) == W0 + timedelta(seconds=320)
    assert store.take_lease("replay~other", "d", 120, W0 + timedelta(seconds=201)) is None  # another name


def test_of_many_takers_of_an_expired_lease_exactly_one_wins(make_store):
    from concurrent.futures import ThreadPoolExecutor

    stores = [make_store() for _ in range(6)]
    assert stores[0].take_lease("replay~default", "dead", 120, W0) is None
    later = W0 + timedelta(seconds=300)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: stores[i].take_lease("replay~default", f"t{i}", 120, later), range(6)))
    assert results.count(None) == 1, results
    assert all(r == later + timedelta(seconds=120) for r in results if r is not None), results
