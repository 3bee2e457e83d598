"""The Parquet writer's way to its sink (shared/writers/parquet.py, SINK_BUFFER_BYTES): Arrow
collects the encoder's writes in a buffer before it hands them to the Python sink. These tests hold
that the buffer changes nothing but the number of hand-overs: the same bytes as writing straight
into the sink, every byte in the blob before its create-only commit (SHA-256, size and rows in the
metadata match the blob), a sink's error surfacing as itself, no byte of an abandoned file going
anywhere (Arrow flushes a dropped writer's buffer when it is garbage collected), and no buffer
outliving its file."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import struct
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.core.exceptions import ResourceNotFoundError
from hypothesis import given, settings
from hypothesis import strategies as st

import shared.writers.parquet as parquet_module
from shared.blob_store import BlobStore, FileIdentity, StagedUpload, make_container_client
from shared.errors import BlobConflictError, ClaimLost, StorageError, StoragePermissionError
from shared.records import CallParser, ParsedBatch
from shared.writers import WriterOptions, writer_class
from shared.writers.parquet import ParquetWriter
from shared.writers.rotating import RotatingWriter
from tests.support.faulty_transport import FailingTransport, is_stage_of

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
W1 = W0 + timedelta(minutes=10)
DEFAULT_BUFFER = parquet_module.SINK_BUFFER_BYTES


def _call(i: int, call_type: str, text: str, big: int, null: bool) -> dict[str, Any]:
    call: dict[str, Any] = {
        "messageId": f"m-{i}",
        "type": call_type,
        "userId": None if null else text,
        "anonymousId": f"a-{i}",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "context": {"s": text, "pad": "p" * big},
    }
    if call_type == "track":
        call["event"] = text or "Order Completed"
        call["properties"] = {"label": text, "n": i}
    return call


def _batches(calls: list[dict[str, Any]], call_type: str, size: int) -> list[ParsedBatch]:
    parser = CallParser(call_type, "columns")
    lines = [json.dumps(c, ensure_ascii=False).encode() for c in calls]
    out = []
    for k in range(0, len(lines), size):
        batch = parser.parse(lines[k:k + size])
        assert not batch.rejected
        out.append(batch)
    return out


class Recording:
    """A byte sink that keeps every write as it came."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self.writes.append(bytes(data))
        return len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)


def _write_file(batches: list[ParsedBatch], call_type: str, options: WriterOptions) -> Recording:
    sink = Recording()
    writer = ParquetWriter(sink, call_type, options)
    for batch in batches:
        writer.write(batch)
    writer.close()
    return sink


@contextmanager
def _direct() -> Iterator[None]:
    """The writer as it was before the buffer: Arrow writes straight into the Python sink."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pa, "BufferedOutputStream", lambda raw, size: raw)
        yield


@settings(max_examples=40, deadline=None)
@given(
    call_type=st.sampled_from(["track", "identify", "alias"]),
    rows=st.lists(st.tuples(st.text(max_size=12), st.sampled_from([0, 0, 0, 300, 5000]), st.booleans()),
                  min_size=1, max_size=60),
    batch=st.integers(1, 25),
    group_rows=st.sampled_from([1, 3, 10, 122_880]),
    buffer=st.sampled_from([1, 100, 4096, DEFAULT_BUFFER]),
    compression=st.sampled_from(["snappy", "zstd", "none"]),
)
def test_the_buffer_changes_only_the_hand_overs_never_the_bytes(
    call_type: str, rows: list[tuple[str, int, bool]], batch: int, group_rows: int, buffer: int, compression: str
) -> None:
    calls = [_call(i, call_type, text, big, null) for i, (text, big, null) in enumerate(rows)]
    options = WriterOptions(parquet_compression=compression)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parquet_module, "ROW_GROUP_ROWS", group_rows)
        mp.setattr(parquet_module, "SINK_BUFFER_BYTES", buffer)
        with _direct():
            direct = _write_file(_batches(calls, call_type, batch), call_type, options)
        buffered = _write_file(_batches(calls, call_type, batch), call_type, options)
    assert buffered.data == direct.data
    assert pq.ParquetFile(io.BytesIO(buffered.data)).metadata.num_rows == len(calls)
    # Each hand-over is a full buffer, or a write bigger than the buffer and the flush before it.
    assert len(buffered.writes) <= 2 * (len(buffered.data) // buffer) + 2


ERRORS = [
    StorageError("blob storage failed: the next run retries"),
    StoragePermissionError("blob storage refused the request: the exporter needs the write permission"),
    BlobConflictError("x/f.parquet is not ours: move it away"),
    ClaimLost("another run took the window over"),
]


class Failing(Recording):
    """Raises ``error`` from its ``fail_at``-th write (0 = the first)."""

    def __init__(self, error: Exception, fail_at: int) -> None:
        super().__init__()
        self.error = error
        self.fail_at = fail_at

    def write(self, data: bytes | memoryview) -> int:
        if len(self.writes) == self.fail_at:
            raise self.error
        return super().write(data)


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize(("buffer", "fail_at"), [
    (DEFAULT_BUFFER, 0),  # the whole small file in one hand-over, at close, on this thread
    (256, 0),  # the first hand-over, on the encoder thread
    (256, 5),  # one in the middle of the file
    (256, -1),  # the last one: the rest of the buffer, at close (set below)
])
def test_a_sink_error_comes_out_of_arrow_as_itself(error: Exception, buffer: int, fail_at: int) -> None:
    calls = [_call(i, "track", f"text {i}", 100, i % 3 == 0) for i in range(60)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parquet_module, "ROW_GROUP_ROWS", 10)
        mp.setattr(parquet_module, "SINK_BUFFER_BYTES", buffer)
        if fail_at < 0:
            fail_at = len(_write_file(_batches(calls, "track", 7), "track", WriterOptions()).writes) - 1
        sink = Failing(error, fail_at)
        writer = ParquetWriter(sink, "track", WriterOptions())
        with pytest.raises(type(error)) as raised:
            for batch in _batches(calls, "track", 7):
                writer.write(batch)
            writer.close()
    assert raised.value is error  # not an ArrowIOError/OSError wrapping it: the same object
    assert str(raised.value) == str(error)
    assert len(sink.writes) == fail_at


# On Azurite: a rotating window of Parquet files through real staged uploads.


def _store(azurite: Any, container: str, block_size: int, **client: Any) -> BlobStore:
    return BlobStore(make_container_client(sas_url=azurite.sas_url(container), **client), "x",
                     block_size=block_size)


def _rotating(store: BlobStore, max_rows: int) -> RotatingWriter:
    def open_sink(position: int) -> StagedUpload:
        return store.open(f"x/d.{position}.track.parquet", FileIdentity(W0, W1, "track", position),
                          "application/vnd.apache.parquet", look_first=False)

    return RotatingWriter(writer_class("parquet"), "track", WriterOptions(), first_position=1,
                          max_rows=max_rows, max_bytes=1 << 40, open_sink=open_sink)


def _blobs(azurite: Any, container: str) -> dict[str, tuple[bytes, dict[str, str]]]:
    with azurite.blob_service() as svc:
        c = svc.get_container_client(container)
        out = {}
        for props in c.list_blobs(include=["metadata"]):
            out[props.name] = (c.get_blob_client(props.name).download_blob().readall(), props.metadata)
        return out


def _uncommitted(azurite: Any, container: str, name: str) -> int:
    with azurite.blob_service() as svc:
        try:
            _, uncommitted = svc.get_blob_client(container, name).get_block_list("uncommitted")
        except ResourceNotFoundError:
            return 0
        return len(uncommitted)


@pytest.mark.parametrize("buffer", [DEFAULT_BUFFER, 3000])
def test_every_byte_of_every_rotated_file_is_in_its_blob_before_the_commit(
    azurite: Any, container: str, monkeypatch: pytest.MonkeyPatch, buffer: int
) -> None:
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", 4)
    monkeypatch.setattr(parquet_module, "SINK_BUFFER_BYTES", buffer)
    calls = [_call(i, "track", f"t{i} \u2028 注文", 200 * (i % 5), i % 4 == 0) for i in range(36)]
    store = _store(azurite, container, block_size=2048)
    try:
        with _rotating(store, max_rows=7) as files:  # 5 files of 7 calls and one of a single call
            for batch in _batches(calls, "track", 5):
                files.write(batch)
            closed = files.close()
        with _rotating(store, max_rows=7) as empty:  # a type with no calls: no file
            assert empty.close() == []
    finally:
        store.close()
    assert [f.rows for f in closed] == [7, 7, 7, 7, 7, 1]
    blobs = _blobs(azurite, container)
    assert sorted(blobs) == sorted(f.name for f in closed)
    ids = []
    for f in closed:
        content, metadata = blobs[f.name]
        assert len(content) == f.bytes
        assert metadata["sha256"] == hashlib.sha256(content).hexdigest()
        assert metadata["rows"] == str(f.rows)
        table = pq.read_table(io.BytesIO(content))
        assert table.num_rows == f.rows
        ids += table.column("messageId").to_pylist()
    assert ids == [c["messageId"] for c in calls]


def test_a_footer_bigger_than_the_buffer_lands_whole(
    azurite: Any, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row group per call, and long values whose min/max statistics every row group keeps.
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", 1)
    calls = [{"messageId": f"m-{i}", "type": "track", "event": f"e{i}" + "e" * 3000, "userId": f"u{i}" + "u" * 3000,
              "anonymousId": "a" * 3000, "properties": {"x": "p" * 3000}, "context": {"c": "c" * 3000},
              "timestamp": "2024-05-01T12:00:00.000Z"} for i in range(120)]
    store = _store(azurite, container, block_size=1024 * 1024)
    try:
        with _rotating(store, max_rows=1000) as files:
            for batch in _batches(calls, "track", 50):
                files.write(batch)
            [f] = files.close()
    finally:
        store.close()
    content, metadata = _blobs(azurite, container)[f.name]
    footer = struct.unpack("<I", content[-8:-4])[0]
    assert footer > DEFAULT_BUFFER  # the case under test
    assert len(content) == f.bytes and metadata["sha256"] == hashlib.sha256(content).hexdigest()
    assert pq.ParquetFile(io.BytesIO(content)).metadata.num_row_groups == f.rows == len(calls)


def test_a_refused_block_surfaces_as_itself_and_nothing_is_committed(azurite: Any, container: str) -> None:
    # The file (well under the buffer) reaches the upload in one hand-over at close: blocks of 1 KiB
    # are staged from inside Arrow's flush, and the third one waits for the first, which was refused.
    refuse = FailingTransport(is_stage_of(".parquet"), times=1000, status=403)
    store = _store(azurite, container, block_size=1024, transport=refuse)
    calls = [_call(i, "track", f"text {i}", 300, False) for i in range(40)]
    try:
        with (pytest.raises(StoragePermissionError, match="the exporter needs the write permission") as raised,
              _rotating(store, max_rows=1000) as files):
            for batch in _batches(calls, "track", 8):
                files.write(batch)
            files.close()
        frames = [entry.name for entry in raised.traceback]
        assert "_close" in frames and "commit" not in frames  # out of Arrow's flush, before any commit
        del files
        gc.collect()
    finally:
        store.close()
    assert refuse.fired
    assert _blobs(azurite, container) == {}


def test_an_abandoned_file_takes_no_bytes_after_abandon(
    azurite: Any, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups encoded into Arrow's buffer (under its size: nothing has reached the upload), then
    # an error leaves the block and the file is abandoned. When the dropped writer is collected,
    # Arrow writes the footer and flushes its buffer into the upload: none of it may be staged.
    monkeypatch.setattr(parquet_module, "ROW_GROUP_ROWS", 20)
    calls = [_call(i, "track", f"text {i}", 300, False) for i in range(100)]
    name = "x/d.1.track.parquet"
    store = _store(azurite, container, block_size=1024)
    try:
        with pytest.raises(RuntimeError, match="the ETL API broke off"), _rotating(store, max_rows=1000) as files:
            for batch in _batches(calls, "track", 30):
                files.write(batch)
            staged_before = _uncommitted(azurite, container, name)
            raise RuntimeError("the ETL API broke off")
        upload = files._sink
        assert upload is not None
        del files
        gc.collect()
        assert _uncommitted(azurite, container, name) == staged_before
        upload.write(b"late bytes" * 200)  # an encoder thread still writing, say
        with pytest.raises(RuntimeError, match="abandoned"):
            upload.commit(rows=100)
    finally:
        store.close()
    assert _uncommitted(azurite, container, name) == staged_before
    assert _blobs(azurite, container) == {}


def test_no_writer_or_buffer_outlives_its_file() -> None:
    class Sink(Recording):
        def commit(self, rows: int) -> Any:
            return type("Done", (), {"name": f"f{uuid.uuid4().hex}", "size": len(self.data), "created": True})()

        def abandon(self) -> None:
            pass

    alive: list[weakref.ref[ParquetWriter]] = []

    class Watched(ParquetWriter):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            alive.append(weakref.ref(self))

    batches = _batches([_call(i, "track", f"t{i}", 50, False) for i in range(40)], "track", 4)
    files = RotatingWriter(Watched, "track", WriterOptions(), first_position=1, max_rows=3, max_bytes=1 << 40,
                           open_sink=lambda position: Sink())
    gc.collect()
    gc.disable()  # freed when its file is done, not at some later collection
    try:
        before = pa.total_allocated_bytes()
        for batch in batches:
            files.write(batch)
        closed = files.close()
        after = pa.total_allocated_bytes()
    finally:
        gc.enable()
    assert len(closed) == len(alive) == 14
    assert [ref() for ref in alive] == [None] * 14
    assert after - before < DEFAULT_BUFFER  # 14 files: a buffer kept per file would be 56 MiB
