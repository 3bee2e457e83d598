"""What docs/guarantees.md tells loaders, run: every manifest the exporter writes is valid under
docs/manifest.schema.json, and the DuckDB ``load_window`` snippet of that page (executed from the
page's text) loads exactly one window's calls from its manifest, in every format."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.calltypes import CALL_TYPES
from tests.support.calls import make_window_calls

duckdb = pytest.importorskip("duckdb")  # requirements-dev.txt
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "2184.13699"


def _snippet() -> dict:
    text = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- duckdb-load-window -->\n```python\n(.*?)```", text, re.S)
    assert match, "the DuckDB snippet is not in docs/guarantees.md"
    namespace: dict = {}
    exec(compile(match.group(1), "docs/guarantees.md (load_window)", "exec"), namespace)
    return namespace


def _export(harness, tmp_path, fmt, **env):
    first = make_window_calls(W0, per_type={"track": 7, "identify": 2}, seed=3)
    second = make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 5}, seed=4)
    harness.source.add(first + second + [("track", "2026-11-28T12:04:00.000Z", b"[1]")])
    summary = harness.run("2026-11-28T12:21:01Z", EXPORT_START="2026-11-28T12:00:00Z", EXPORT_FORMAT=fmt,
                          MAX_FILE_ROWS="3", **env)
    assert summary.ok
    for name, blob in harness.blobs().items():  # a local copy of the container: DuckDB's az:// needs the network
        path = tmp_path / harness.container / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob.data)
    return first, second


@pytest.mark.parametrize(("fmt", "env"), [("csv", {}), ("json", {"EXPORT_COMPRESSION": "gzip"}),
                                           ("parquet", {})])
def test_the_duckdb_snippet_loads_exactly_one_window_from_its_manifest(harness, tmp_path, fmt, env):
    first, _ = _export(harness, tmp_path, fmt, **env)
    load_window = _snippet()["load_window"]
    con = duckdb.connect()
    root = str(tmp_path / harness.container)
    manifest = f"exports/segment/_manifests/{KEY}.20261128T1200Z.json"
    assert load_window(con, root, manifest, "track", "track_calls") == 7
    assert load_window(con, root, manifest, "alias", "alias_calls") == 0
    ids = {str(r[0]) for r in con.execute("SELECT messageId FROM track_calls").fetchall()}
    assert ids == {c["messageId"] for c in first if c["type"] == "track"}
    assert load_window(con, root, f"exports/segment/_manifests/{KEY}.20261128T1210Z.json", "track",
                       "track_calls") == 5
    assert con.execute("SELECT count(*) FROM track_calls").fetchall() == [(12,)]


def test_every_manifest_the_exporter_writes_is_valid_under_the_documented_schema(harness, tmp_path):
    _export(harness, tmp_path, "csv")
    schema = json.loads((ROOT / "docs" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    manifests = harness.manifests()
    assert len(manifests) == 2
    for blob in manifests.values():
        doc = json.loads(blob.data)
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
        assert set(doc["types"]) == set(CALL_TYPES)
    broken = json.loads(next(iter(manifests.values())).data)
    broken["types"]["track"]["status"] = "done"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)
