"""Two writers of one blob never make a mixed file (issue 9, item 7).

Block ids are unique to each upload attempt, so a commit can only list the committing writer's own
blocks; and a writer checks that it still holds its claim before each create-only commit, so a run
whose window was taken over stops instead of committing. What the check cannot cover (a takeover
between the check and the commit) is covered by the create-only commit and the SHA-256 in the
metadata: one writer's whole file gets in, the other finds it and verifies it.

All against Azurite with small blocks, with real second writers: a second upload of the same name,
or a whole second run started at an exact moment of the first (a transport that calls back before
sending a given request, then sends it for real).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.blob_store import BlobStore, FileIdentity, make_container_client
from shared.clients import build_clients, close_clients
from shared.errors import BlobConflictError
from shared.export import run_export
from tests.support.calls import make_call, make_window_calls
from tests.support.faulty_transport import CallbackTransport, is_commit_of, is_stage_of
from tests.support.invariants import check_container, ids_of
from tests.support.runs import FAST_ETL, committed, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z", "MAX_FILE_ROWS": "10"}
NOW = "2026-11-28T12:11:01Z"


def _store(azurite, container, block_size=8) -> BlobStore:
    return BlobStore(make_container_client(sas_url=azurite.sas_url(container)), "x", block_size=block_size)


IDENTITY = FileIdentity(W0, W0 + timedelta(minutes=10), "track", 1)


@pytest.mark.parametrize("first", ["A", "B"])
def test_two_writers_staging_the_same_blob_never_commit_a_mixed_file(azurite, container, first):
    a_store, b_store = _store(azurite, container), _store(azurite, container)
    try:
        a = a_store.open("x/f.csv", IDENTITY, "text/csv")
        b = b_store.open("x/f.csv", IDENTITY, "text/csv")
        a_bytes, b_bytes = b"AAAAAAAA" + b"aaaaaaaa" + b"a1", b"BBBBBBBB" + b"bb"
        a.write(a_bytes[:16])  # A staged blocks 0 and 1
        b.write(b_bytes[:8])  # B staged its own block 0
        a.write(a_bytes[16:])
        b.write(b_bytes[8:])
        winner, loser = (a, b) if first == "A" else (b, a)
        won = winner.commit(rows=1)
        assert won.created
        with pytest.raises(BlobConflictError, match="different content"):
            loser.commit(rows=1)
    finally:
        a_store.close()
        b_store.close()
    with azurite.blob_service() as svc:
        blob = svc.get_blob_client(container, "x/f.csv")
        data = blob.download_blob().readall()
        metadata = blob.get_blob_properties().metadata
    assert data == (a_bytes if first == "A" else b_bytes)  # one writer's file, whole
    assert metadata["sha256"] == hashlib.sha256(data).hexdigest()


def _run(harness, transport=None, block_size=2048):
    """One run with small blocks (both writers alike, as two copies of the exporter would be)."""
    settings = harness.settings(**START)
    clients = build_clients(settings, blob_kwargs={"transport": transport} if transport else {},
                            etl_kwargs=FAST_ETL)
    clients.blobs.block_size = block_size
    try:
        return run_export(settings, clients, datetime.fromisoformat(NOW.replace("Z", "+00:00")))
    finally:
        close_clients(clients)


def _late_call() -> dict:
    import random

    call = make_call("track", W0 + timedelta(minutes=9, seconds=59, milliseconds=999), random.Random(3))
    call["messageId"] = f"late-{uuid.uuid4()}"
    return call


@pytest.mark.parametrize("moment", ["staging", "committing"])
def test_a_run_whose_window_is_taken_over_mid_file_never_commits_over_the_new_owner(harness, moment):
    """Run A streams track 12:00 into three files. While A is at its second file, run B takes the
    window over and finishes it, with one call more (a late call: B's last file differs from A's).

    * ``staging``: B runs while A stages file 2; A's claim check before the commit sees B's claim
      is gone and A stops ("busy"). Before the check, A went on to commit its own file 3 over B's:
      a conflict error.
    * ``committing``: B runs between A's check and A's commit of file 2 (the window the check
      cannot cover): the create-only commit refuses A, A finds B's identical file 2 in place, and
      its next check stops it before file 3.
    """
    calls = make_window_calls(W0, per_type={"track": 25}, seed=31)
    harness.source.add(calls)
    late = _late_call()
    outcome = {}

    def second_writer() -> None:
        harness.source.add([late])
        outcome["b"] = _run(harness)

    match = is_stage_of(".2.track.csv") if moment == "staging" else is_commit_of(".2.track.csv")
    transport = CallbackTransport(match, second_writer)
    a = _run(harness, transport)

    assert transport.fired and outcome["b"].ok, outcome["b"].error
    b_track = next(u for u in outcome["b"].units if u.call_type == "track")
    assert b_track.status == "exported" and b_track.rows == 26
    assert a.error is None, a.error
    a_track = next(u for u in a.units if u.call_type == "track")
    assert a_track.status == "busy"
    # A lists what it committed before it stopped: file 1 (B found it in place), never file 2 or 3.
    created_by_a = [f.name.rsplit("/", 1)[1] for f in a_track.files if f.created]
    assert created_by_a == ["2184.13699.1.track.csv"]
    found_by_b = [f.name.rsplit("/", 1)[1] for f in b_track.files if not f.created]
    assert "2184.13699.1.track.csv" in found_by_b
    check_container(harness.blobs(), expected_ids=ids_of([*calls, late]))
    blobs = harness.data_blobs()
    assert sorted(b.metadata["rows"] for b in blobs.values()) == ["10", "10", "6"]
    assert committed(state_rows(harness))["track"] == (3, W0 + timedelta(minutes=10))


def test_a_small_file_commits_even_where_another_writer_left_uncommitted_blocks(azurite, container):
    """A writer with blocks (another version, a bigger split) stages and dies; the next writer's
    file is small enough for one request, which Azurite refuses create-only while uncommitted
    blocks hold the name. It commits as a block list instead of failing until the blocks expire."""
    with azurite.blob_service() as svc:  # the other writer: a block staged, never committed
        svc.get_blob_client(container, "x/f.csv").stage_block(base64.b64encode(b"X" * 16).decode(), b"D" * 20)
    store = _store(azurite, container, block_size=1024)
    try:
        upload = store.open("x/f.csv", IDENTITY, "text/csv")
        upload.write(b"small file")
        assert upload.commit(rows=1).created
    finally:
        store.close()
    with azurite.blob_service() as svc:
        blob = svc.get_blob_client(container, "x/f.csv")
        assert blob.download_blob().readall() == b"small file"
        assert blob.get_blob_properties().metadata["sha256"] == hashlib.sha256(b"small file").hexdigest()


def test_a_taken_over_writer_that_finds_the_next_windows_file_at_its_name_stops_as_busy(harness):
    """Run A streams track 12:00 into three files (fresh claim). Between A's claim check and its
    commit of file 3, run B takes 12:00 over while the ETL API serves it with 5 calls fewer (a
    closed window that changed): B finds files 1 and 2 in place, ends 12:00 at position 2, and
    its fresh claim of 12:10 writes position 3. A's create-only commit of file 3 then finds B's
    file of 12:10 there. A lost its claim: it must stop as busy and judge nothing. Before, it
    reported a permanent "already exists and was not written by this export ... move it away"
    naming B's good file (moving it away would leave a gap in track's positions)."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=34)
    following = make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=35)
    harness.source.add([*calls, *following])
    served = sorted(calls, key=lambda c: (c["receivedAt"], c["messageId"]))  # the emulator's order
    now = datetime(2026, 11, 28, 12, 21, 1, tzinfo=UTC)  # 12:00 and 12:10 due
    outcome = {}

    def run(transport=None):
        settings = harness.settings(**START)
        clients = build_clients(settings, blob_kwargs={"transport": transport} if transport else {},
                                etl_kwargs=FAST_ETL)
        try:
            return run_export(settings, clients, now)
        finally:
            close_clients(clients)

    def second_writer() -> None:
        harness.source.remove(c["messageId"] for c in served[20:])
        outcome["b"] = run()

    transport = CallbackTransport(is_commit_of(".3.track.csv"), second_writer)
    a = run(transport)
    assert transport.fired and outcome["b"].ok, outcome["b"].error
    assert a.error is None, a.error
    assert [u.status for u in a.units if u.call_type == "track"] == ["busy"]
    b_track = [u for u in outcome["b"].units if u.call_type == "track"]
    assert [(u.window.start, [(f.position, f.created) for f in u.files]) for u in b_track] == [
        (W0, [(1, False), (2, False)]), (W0 + timedelta(minutes=10), [(3, True)])]
    third = harness.data_blobs()["exports/segment/2184.13699.3.track.csv"]
    assert third.metadata["window_start"] == "2026-11-28T12:10:00Z"
    assert committed(state_rows(harness))["track"] == (3, W0 + timedelta(minutes=20))
