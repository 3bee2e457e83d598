"""The files written for a fixed input are byte-identical from one version of the code to the next.

A change that is meant to keep behaviour (a reshaping, a speed-up) must not change a single byte
of any file; this test pins the SHA-256 of every file written for one deterministic window of
calls (hard values, extra top-level fields, a file split by the row cap, dead letters) in every
format and codec. If a change is *meant* to alter the bytes, regenerate the pins with
``UPDATE_GOLDEN=1 scripts/test tests/test_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.calltypes import CALL_TYPES
from tests.support.calls import make_window_calls

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PINS = Path(__file__).parent / "golden" / "file_sha256.json"

CASES = {
    "csv": {"EXPORT_FORMAT": "csv"},
    "csv-gzip-escaped": {"EXPORT_FORMAT": "csv", "EXPORT_COMPRESSION": "gzip", "CSV_ESCAPE_FORMULAS": "true"},
    "json": {"EXPORT_FORMAT": "json"},
    "json-gzip": {"EXPORT_FORMAT": "json", "EXPORT_COMPRESSION": "gzip"},
    "parquet": {"EXPORT_FORMAT": "parquet"},
    "parquet-zstd": {"EXPORT_FORMAT": "parquet", "PARQUET_COMPRESSION": "zstd"},
    "parquet-none": {"EXPORT_FORMAT": "parquet", "PARQUET_COMPRESSION": "none"},
}

BAD_LINES = [
    b'{"type":"track","messageId":"bad-1"',  # cut short
    b"not json at all",
    b"[1,2,3]",
]


def _calls() -> list[dict]:
    calls = make_window_calls(W0, per_type={t: 40 for t in CALL_TYPES}, seed=11)
    for i, call in enumerate(calls):  # fields real sources add, outside the columns
        if i % 3 == 0:
            call["channel"] = "client" if i % 2 else "server"
        if i % 5 == 0:
            call["_metadata"] = {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []}
        if i % 7 == 0:
            call["version"] = 2
    return calls


def _digests(harness, overrides: dict[str, str]) -> dict[str, str]:
    harness.source.add(_calls())
    for line in BAD_LINES:
        harness.source.add([("track", W0 + timedelta(minutes=5), line)])
    summary = harness.run(W0 + timedelta(minutes=11, seconds=1), EXPORT_START="2026-11-28T12:00:00Z",
                          MAX_FILE_ROWS="25", **overrides)
    assert summary.ok, summary.error
    return {name: hashlib.sha256(blob.data).hexdigest() for name, blob in sorted(harness.blobs().items())
            if "/_manifests/" not in name}  # the window's manifest: tests/test_manifests.py


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_files_for_a_fixed_input_are_byte_identical_to_the_pinned_ones(harness, case):
    digests = _digests(harness, CASES[case])
    assert any(".2." in name for name in digests), "the row cap must split at least one file"
    assert any("_rejected/" in name for name in digests), "the bad lines must be dead-lettered"
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if os.environ.get("UPDATE_GOLDEN") == "1":
        pins[case] = digests
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    assert case in pins, "no pins yet: run with UPDATE_GOLDEN=1 once"
    assert digests == pins[case]
