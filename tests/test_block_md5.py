"""Every staged block carries its MD5, so storage refuses a block damaged on the way instead of
committing a file whose bytes are not the ones written (and whose sha256 metadata would then be
wrong). Against Azurite, with a transport that flips one byte of a block after the SDK sent its
MD5 along."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from azure.core.pipeline.transport import RequestsTransport

from shared.blob_store import BLOCK_SIZE
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import is_stage_of
from tests.support.invariants import check_container, ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = "2026-11-28T12:11:01Z"
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


class DamagingTransport(RequestsTransport):
    """Flips one byte in the body of the first request ``match`` accepts, as a broken proxy or
    NIC would, after the SDK computed whatever it sends along."""

    def __init__(self, match, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.match = match
        self.damaged = 0
        self._lock = threading.Lock()

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        with self._lock:
            damage = not self.damaged and self.match(request)
            self.damaged += damage
        if damage:
            body = bytearray(request.body)
            body[len(body) // 2] ^= 0x01
            request.set_bytes_body(bytes(body))
        return super().send(request, **kwargs)


def test_a_block_damaged_on_the_way_is_refused_and_the_file_lands_whole_on_the_next_run(harness):
    calls = make_window_calls(W0, per_type={"track": BLOCK_SIZE // 12_000 + 100}, seed=3)
    for call in calls:  # ~12 KB each: the CSV file is two staged blocks
        call["properties"] = {"pad": "p" * 12_000}
    harness.source.add(calls)
    damaging = DamagingTransport(is_stage_of(".track.csv"))
    summary = run_with(harness, NOW, blob_transport=damaging, **START)
    assert damaging.damaged == 1
    assert summary.error is None  # a transient failure of the unit: the run goes on
    [failed] = summary.failures  # storage refused the block (Md5Mismatch): nothing committed
    assert failed.call_type == "track" and "damaged on the way" in (failed.error or "")
    assert not [n for n in harness.blobs() if ".track." in n]
    assert committed(state_rows(harness)).get("track") == (0, W0)
    again = run_with(harness, NOW, **START)
    assert again.ok, (again.error, [u.error for u in again.failures])
    check_container(harness.blobs(), expected_ids=ids_of(calls))  # sha256 metadata = the bytes stored
