"""Attacks on the consumer-trust work of issue 14 (manifests, verify, backfill, replay): each test
is damage or a situation that the checks must notice, made with the account key against Azurite and
the emulator (tests/test_verify.py's harness)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta

from shared.manifest import canonical
from tests.support.calls import make_window_calls
from tests.test_verify import FOLDER, KEY, START, W0, _container, _export, _verify


def _newest_manifest(harness):
    names = sorted(n for n in harness.manifests() if n.startswith(f"{FOLDER}/_manifests/"))
    return names[-1]


def test_the_newest_manifest_edited_consistently_with_its_file_is_caught(harness):
    """The newest manifest has no successor naming its SHA-256, but the manifest cursor in
    STATE_TABLE holds it: a forged file (metadata and newest manifest edited to agree) must not
    pass ``verify --deep``."""
    _export(harness)
    container = _container(harness)
    name = _newest_manifest(harness)
    doc = json.loads(container.get_blob_client(name).download_blob().readall())
    listed = doc["types"]["track"]["files"][0]
    blob = container.get_blob_client(listed["name"])
    data, metadata = blob.download_blob().readall(), blob.get_blob_properties().metadata
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows[:-1])  # one call dropped
    forged = out.getvalue().encode("utf-8")
    assert forged != data
    digest = hashlib.sha256(forged).hexdigest()
    blob.upload_blob(forged, overwrite=True,
                     metadata={**metadata, "sha256": digest, "rows": str(len(rows) - 2)})
    listed.update(bytes=len(forged), sha256=digest, rows=len(rows) - 2)
    doc["types"]["track"]["rows"] = sum(f["rows"] for f in doc["types"]["track"]["files"])
    new = canonical(doc)
    container.get_blob_client(name).upload_blob(
        new, overwrite=True, metadata={**container.get_blob_client(name).get_blob_properties().metadata,
                                       "sha256": hashlib.sha256(new).hexdigest()})
    code, problems, _ = _verify(harness, "--deep")
    assert code == 1 and any(p.startswith(f"chain: {name}:") for p in problems), problems


def test_a_forged_manifest_of_a_window_not_yet_committed_is_caught(harness):
    """A manifest for the next window, chained correctly but written before the exporter's types
    committed it (a false completion signal: a loader would take the window as empty)."""
    _export(harness)
    container = _container(harness)
    newest = _newest_manifest(harness)
    data = container.get_blob_client(newest).download_blob().readall()
    doc = json.loads(data)
    doc["window"] = {"start": "2026-11-28T12:30:00Z", "end": "2026-11-28T12:40:00Z"}
    doc["previous"] = {"name": newest, "sha256": hashlib.sha256(data).hexdigest()}
    for outcome in doc["types"].values():
        outcome.update(status="no calls", files=[], rows=0, rejected=None)
    forged = f"{FOLDER}/_manifests/{KEY}.20261128T1230Z.json"
    container.upload_blob(forged, canonical(doc), metadata={"kind": "manifest"})
    code, problems, _ = _verify(harness)
    assert code == 1 and any(forged in p for p in problems), problems


def test_a_crash_before_a_manifest_then_a_blob_path_move_does_not_stop_the_chain(harness):
    """Window 12:00 committed in exports/old, the run killed before its manifest; BLOB_PATH then
    moves: the next runs must still complete the chain (every window gets its manifest)."""
    harness.source.add(make_window_calls(W0, per_type={"track": 2}, seed=9)
                       + make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 3}, seed=10))
    harness.env.update(START)
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"EXPORTER_CRASH_AT": "before_manifest_commit", "BLOB_PATH": "exports/old"})
    assert proc.returncode == 137, proc.stderr
    assert harness.run("2026-11-28T12:21:01Z").ok  # BLOB_PATH exports/segment from here on
    assert harness.run("2026-11-28T12:31:01Z").ok
    stamps = sorted(n.rsplit(".", 2)[1] for n in harness.manifests())
    assert stamps == ["20261128T1200Z", "20261128T1210Z", "20261128T1220Z"], stamps


def test_a_replay_whose_types_end_in_different_windows_announces_every_window(harness):
    """Dead letters of track in 12:00 and 12:20, of page in 12:00 only: the replay's page row
    stops at 12:10; every window of the replay's range must still get its manifest (a loader
    waits for the one of 12:20, which holds a file)."""
    from tests.test_replay import _setup

    _, now = _setup(harness)
    harness.env["MAX_CALL_BYTES"] = "200000"
    proc = harness.cli("rejected", "replay", "--id", "r1", "--now", now)
    assert proc.returncode == 0 and "replay r1 done" in proc.stdout, (proc.stdout, proc.stderr)
    stamps = sorted(n.rsplit(".", 2)[1] for n in harness.manifests() if "/_backfill/r1/" in n)
    assert stamps == ["20261128T1200Z", "20261128T1210Z", "20261128T1220Z"], stamps
    audit = harness.cli("verify", "--backfill", "r1")
    assert audit.returncode == 0 and "3 manifest(s)" in audit.stdout, audit.stdout
