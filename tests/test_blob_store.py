"""The blob store's contract against a real Azurite container (docs/design.md, invariants 3 and 5):
a file is staged in blocks and committed create-only with its metadata; a name already holding
our identical file counts as done; anything else there is a conflict that names the blob."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.blob_store import BlobStore, FileIdentity, make_container_client
from shared.errors import BlobConflictError
from shared.windows import Window
from tests.support.faulty_transport import LosingTransport, is_commit_of

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOW = Window(W0, W0 + timedelta(minutes=10))
IDENTITY = FileIdentity(WINDOW.start, WINDOW.end, "track", 5)


def _store(azurite, container, block_size=8, transport=None) -> BlobStore:  # type: ignore[no-untyped-def]
    kwargs = {"transport": transport} if transport else {}
    return BlobStore(make_container_client(sas_url=azurite.sas_url(container), **kwargs), "x",
                     block_size=block_size)


def _read(azurite, container, name):  # type: ignore[no-untyped-def]
    with azurite.blob_service() as svc:
        blob = svc.get_blob_client(container, name)
        return blob.download_blob().readall(), blob.get_blob_properties().metadata


def test_a_file_is_staged_in_blocks_and_appears_only_at_its_create_only_commit(azurite, container):
    store = _store(azurite, container)
    try:
        data = b"0123456789" * 5  # 50 bytes: six 8-byte blocks and a rest
        upload = store.open("x/f.csv", IDENTITY, "text/csv")
        upload.write(data[:23])
        upload.write(data[23:])
        assert store.metadata_of("x/f.csv") is None  # staged blocks are not a blob
        done = upload.commit(rows=3)
    finally:
        store.close()
    assert (done.name, done.size, done.created) == ("x/f.csv", 50, True)
    content, metadata = _read(azurite, container, "x/f.csv")
    assert content == data
    assert metadata["sha256"] == hashlib.sha256(data).hexdigest() == done.sha256
    assert (metadata["call_type"], metadata["position"], metadata["rows"]) == ("track", "5", "3")


def test_our_identical_file_already_there_counts_as_done_and_is_not_written_again(azurite, container):
    store = _store(azurite, container)
    try:
        first = store.open("x/f.csv", IDENTITY, "text/csv")
        first.write(b"a,b\n1,2\n")
        assert first.commit(rows=1).created
        _, before = _read(azurite, container, "x/f.csv")
        again = store.open("x/f.csv", IDENTITY, "text/csv")  # a resumed window writes it again
        again.write(b"a,b\n1,2\n")
        result = again.commit(rows=1)
    finally:
        store.close()
    assert not result.created and result.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    content, after = _read(azurite, container, "x/f.csv")
    assert content == b"a,b\n1,2\n" and after == before


def test_a_lost_commit_response_is_recognised_by_the_metadata_as_our_own_blob(azurite, container):
    lose = LosingTransport(is_commit_of("f.csv"))
    store = _store(azurite, container, transport=lose)
    try:
        upload = store.open("x/f.csv", IDENTITY, "text/csv")
        upload.write(b"x" * 20)
        result = upload.commit(rows=2)
    finally:
        store.close()
    assert len(lose.fired) == 1 and lose.fired[0].status == 201  # it landed; the SDK resent it
    assert result.name == "x/f.csv" and result.size == 20
    assert _read(azurite, container, "x/f.csv")[0] == b"x" * 20


def test_a_blob_not_ours_in_the_way_is_a_conflict_that_names_the_blob_window_and_type(azurite, container):
    with azurite.blob_service() as svc:
        svc.get_blob_client(container, "x/f.csv").upload_blob(b"someone else's", metadata={"owner": "bob"})
    store = _store(azurite, container)
    try:
        with pytest.raises(BlobConflictError, match="never overwrites") as conflict:
            store.open("x/f.csv", IDENTITY, "text/csv")
    finally:
        store.close()
    assert (conflict.value.blob, conflict.value.window, conflict.value.call_type) == ("x/f.csv", WINDOW, "track")
    assert not conflict.value.transient
    assert _read(azurite, container, "x/f.csv")[0] == b"someone else's"


def test_our_file_with_other_content_is_a_conflict_and_is_left_as_it_is(azurite, container):
    store = _store(azurite, container)
    try:
        first = store.open("x/f.csv", IDENTITY, "text/csv")
        first.write(b"one")
        first.commit(rows=1)
        second = store.open("x/f.csv", IDENTITY, "text/csv")
        second.write(b"two")
        with pytest.raises(BlobConflictError, match="different content") as conflict:
            second.commit(rows=1)
    finally:
        store.close()
    assert (conflict.value.blob, conflict.value.window, conflict.value.call_type) == ("x/f.csv", WINDOW, "track")
    assert _read(azurite, container, "x/f.csv")[0] == b"one"


def test_an_abandoned_upload_leaves_no_blob(azurite, container):
    store = _store(azurite, container)
    try:
        upload = store.open("x/f.csv", IDENTITY, "text/csv")
        upload.write(b"y" * 30)
        upload.abandon()
        assert store.metadata_of("x/f.csv") is None
    finally:
        store.close()


# -- a fresh claim's file: no read of the name first (look_first=False) ------------------------------
# The create-only commit alone must keep every promise above: a name already taken is never
# overwritten, our identical file counts as done, our file with other content is a conflict.

@pytest.mark.parametrize("size", [5, 50], ids=["one-request", "staged-blocks"])
def test_without_the_first_look_a_blob_not_ours_is_still_a_conflict_and_is_left_as_it_is(azurite, container, size):
    with azurite.blob_service() as svc:
        svc.get_blob_client(container, "x/f.csv").upload_blob(b"someone else's", metadata={"owner": "bob"})
    store = _store(azurite, container)
    try:
        upload = store.open("x/f.csv", IDENTITY, "text/csv", look_first=False)  # no request: the name is not read
        upload.write(b"z" * size)
        with pytest.raises(BlobConflictError, match="never overwrites") as conflict:
            upload.commit(rows=1)
    finally:
        store.close()
    assert (conflict.value.blob, conflict.value.call_type) == ("x/f.csv", "track")
    assert _read(azurite, container, "x/f.csv") == (b"someone else's", {"owner": "bob"})


@pytest.mark.parametrize("size", [5, 50], ids=["one-request", "staged-blocks"])
def test_without_the_first_look_our_identical_file_counts_as_done_and_other_content_is_a_conflict(
        azurite, container, size):
    data = bytes(range(size))
    store = _store(azurite, container)
    try:
        first = store.open("x/f.csv", IDENTITY, "text/csv")
        first.write(data)
        assert first.commit(rows=1).created
        _, before = _read(azurite, container, "x/f.csv")
        again = store.open("x/f.csv", IDENTITY, "text/csv", look_first=False)
        again.write(data)
        result = again.commit(rows=1)
        other = store.open("x/f.csv", IDENTITY, "text/csv", look_first=False)
        other.write(data[::-1])
        with pytest.raises(BlobConflictError, match="different content"):
            other.commit(rows=1)
    finally:
        store.close()
    assert not result.created and result.sha256 == hashlib.sha256(data).hexdigest()
    assert _read(azurite, container, "x/f.csv") == (data, before)


# -- the block assembly: any sequence of writes, bytes or views of a reused buffer ---------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.tuples(st.binary(max_size=40), st.booleans()), max_size=12),
       block_size=st.integers(min_value=1, max_value=17))
def test_any_writes_in_any_pieces_commit_exactly_the_bytes_written(azurite, container, writes, block_size):
    """The writes are kept and joined once per block: a view's buffer is reused by its writer right
    after the write (as a serializer's scratch buffer is), and must not change what was written."""
    name = f"x/p-{uuid.uuid4().hex}.csv"
    store = _store(azurite, container, block_size=block_size)
    scratch = bytearray(64)
    try:
        upload = store.open(name, IDENTITY, "text/csv", look_first=False)
        for data, as_view in writes:
            if as_view:
                scratch[: len(data)] = data
                upload.write(memoryview(scratch)[: len(data)])
                scratch[:] = b"\xff" * len(scratch)  # the writer reuses its buffer
            else:
                upload.write(data)
        done = upload.commit(rows=len(writes))
    finally:
        store.close()
    expected = b"".join(d for d, _ in writes)
    assert (done.size, done.sha256) == (len(expected), hashlib.sha256(expected).hexdigest())
    assert _read(azurite, container, name)[0] == expected
