"""Attacks on the consumer-trust work of issue 14 (manifests, verify, backfill, replay): each test
is damage or a situation that the checks must notice, made with the account key against Azurite and
the emulator (tests/test_verify.py's harness)."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from shared.manifest import canonical
from tests.test_verify import FOLDER, KEY, _container, _export, _verify


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
