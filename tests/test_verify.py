"""``verify`` (issue 14, item 2): silent on a healthy container, and each kind of damage made with
the account key (a blob deleted, overwritten, its metadata edited, a foreign blob, a manifest
removed) caught, named, exit 1; ``--deep`` re-reads the bytes, ``--against-etl`` finds calls the
ETL API added to or dropped from an exported window. Real CLI, Azurite, the emulator."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.file_audit import read_back
from shared.state_store import StateStore, make_table_service
from tests.support.calls import make_call, make_window_calls
from tests.test_destinations import add, env_of, ok
from tests.test_destinations import others as others

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:31:01Z"
KEY = "2184.13699"
FOLDER = "exports/segment"


def _export(harness, **env):
    calls = make_window_calls(W0, per_type={"track": 4, "identify": 2}, seed=1)
    calls += make_window_calls(W0 + timedelta(minutes=20), per_type={"track": 3, "page": 1}, seed=2)
    harness.source.add([*calls, ("track", "2026-11-28T12:03:00.000Z", b"not json")])
    harness.env.update(START)
    harness.env.update(env)
    assert harness.run(NOW).ok
    return calls


def _verify(harness, *args):
    proc = harness.cli("verify", *args)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("verify default in exports/segment: "), proc.stdout
    return proc.returncode, lines[:-1], lines[-1]


def _container(harness):
    return harness.azurite.blob_service().get_container_client(harness.container)


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_a_healthy_container_is_silent_with_every_flag(harness, fmt):
    _export(harness, EXPORT_FORMAT=fmt, EXPORT_COMPRESSION="gzip" if fmt == "json" else "none")
    code, problems, summary = _verify(harness, "--deep", "--against-etl")
    assert (code, problems) == (0, []), summary
    assert "3 manifest(s)" in summary and "no problem" in summary and "3 window(s) read again" in summary


def _file(harness, position=1, call_type="track"):
    return f"{FOLDER}/{KEY}.{position}.{call_type}.csv"


def test_a_deleted_blob_is_named(harness):
    _export(harness)
    _container(harness).delete_blob(_file(harness))
    code, problems, _ = _verify(harness)
    assert code == 1
    assert any(p.startswith(f"missing: {_file(harness)}: listed in") for p in problems), problems
    assert any(p.startswith("gap: ") and "track position 1" in p for p in problems), problems


def test_a_gap_is_reported_over_the_whole_sequence_even_with_since_and_says_so(harness):
    _export(harness)
    _container(harness).delete_blob(_file(harness))  # track position 1, window W0
    code, problems, _ = _verify(harness, "--since", "2026-11-28T12:20:00Z")
    assert code == 1
    assert not [p for p in problems if p.startswith("missing: ")], problems  # W0's manifest is out of range
    gaps = [p for p in problems if p.startswith("gap: ")]
    assert len(gaps) == 1 and "track position 1" in gaps[0], problems
    assert "gaps are checked over the whole sequence, whatever --since/--until" in gaps[0]
    _, plain, _ = _verify(harness)
    assert not any("whole sequence" in p for p in plain)


def test_a_blob_overwritten_with_other_bytes_is_named(harness):
    _export(harness)
    _container(harness).upload_blob(_file(harness), b"messageId\r\nx\r\n", overwrite=True)
    code, problems, _ = _verify(harness)
    assert code == 1 and any(p.startswith(f"metadata: {_file(harness)}:") for p in problems), problems


def test_a_blob_overwritten_with_its_metadata_kept_is_found_by_deep_only(harness):
    _export(harness)
    blob = _container(harness).get_blob_client(_file(harness))
    data, metadata = blob.download_blob().readall(), blob.get_blob_properties().metadata
    forged = data.replace(b"user-", b"USER-") if b"user-" in data else data[:-3] + b"zz\n"
    assert len(forged) == len(data) and forged != data
    blob.upload_blob(forged, overwrite=True, metadata=metadata)
    assert _verify(harness)[:2] == (0, [])  # the listing cannot tell: same size, same metadata
    code, problems, _ = _verify(harness, "--deep")
    assert code == 1 and problems == [f"content: {_file(harness)}: its bytes hash to "
                                      f"{__import__('hashlib').sha256(forged).hexdigest()}, not the recorded "
                                      f"{metadata['sha256']}: it was overwritten"]
    # --since past its window leaves it out of the deep read
    assert _verify(harness, "--deep", "--since", "2026-11-28T12:10:00Z")[:2] == (0, [])


def test_a_blob_with_edited_metadata_is_named(harness):
    _export(harness)
    blob = _container(harness).get_blob_client(_file(harness, 2))
    metadata = blob.get_blob_properties().metadata
    blob.set_blob_metadata({**metadata, "rows": "99"})
    code, problems, _ = _verify(harness)
    assert code == 1 and problems and all(_file(harness, 2) in p for p in problems), problems
    assert any(p.startswith("metadata: ") for p in problems)


def test_a_foreign_blob_is_named(harness):
    _export(harness)
    _container(harness).upload_blob(f"{FOLDER}/notes.txt", b"hello")
    _container(harness).upload_blob(f"{FOLDER}/{KEY}.9.track.csv", b"x")
    code, problems, _ = _verify(harness)
    assert code == 1
    assert any(p.startswith(f"foreign: {FOLDER}/notes.txt:") for p in problems), problems
    assert any(p.startswith(f"metadata: {FOLDER}/{KEY}.9.track.csv:") for p in problems), problems


@pytest.mark.parametrize("which", [0, 1, 2])
def test_a_removed_manifest_is_named(harness, which):
    _export(harness)
    start = W0 + timedelta(minutes=10 * which)
    name = f"{FOLDER}/_manifests/{KEY}.{start.strftime('%Y%m%dT%H%MZ')}.json"
    _container(harness).delete_blob(name)
    code, problems, _ = _verify(harness)
    assert code == 1 and problems, problems
    assert all(p.startswith("chain: ") for p in problems), problems
    assert any(name in p or start.strftime("%Y-%m-%dT%H:%M:%SZ") in p for p in problems), problems


def test_calls_added_to_and_dropped_from_an_exported_window_are_drift_with_their_ids(harness):
    calls = _export(harness)
    late = make_call("track", W0 + timedelta(minutes=4), __import__("random").Random(5))
    harness.source.add([late])
    gone = next(c for c in calls if c["type"] == "identify")
    assert harness.source.remove([gone["messageId"]]) == 1
    assert _verify(harness)[:2] == (0, [])  # only the ETL API knows
    code, problems, _ = _verify(harness, "--against-etl")
    assert code == 1 and len(problems) == 2, problems
    assert any(p.startswith("drift: track 2026-11-28T12:00:00Z") and late["messageId"] in p and "added" in p
               for p in problems), problems
    assert any(p.startswith("drift: identify 2026-11-28T12:00:00Z") and gone["messageId"] in p
               and "dropped" in p for p in problems), problems


def test_a_backfill_is_audited_in_its_folder_and_the_live_audit_leaves_it_out(harness):
    _export(harness)
    proc = harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:20:00Z",
                       "--types", "track,identify", "--id", "b1", "--now", NOW)
    assert proc.returncode == 0, proc.stderr
    assert any("/_backfill/b1/_manifests/" in n for n in harness.blobs())
    assert _verify(harness)[:2] == (0, ["backfills and replays in exports/segment/_backfill/ (not audited here; "
                                        "`verify --backfill ID` audits one): b1"])
    proc = harness.cli("verify", "--backfill", "b1")
    assert proc.returncode == 0, proc.stdout
    assert "verify default backfill b1 in exports/segment/_backfill/b1: 2 manifest(s)" in proc.stdout
    manifest = json.loads(harness.blobs()[f"{FOLDER}/_backfill/b1/_manifests/{KEY}.20261128T1200Z.json"].data)
    assert sorted(manifest["types"]) == ["identify", "track"]
    assert manifest["sequence"] == {"destination": "default", "backfill": "b1"}
    # a file of a type the backfill does not export is foreign there
    _container(harness).upload_blob(f"{FOLDER}/_backfill/b1/{KEY}.1.page.csv", b"x")
    proc = harness.cli("verify", "--backfill", "b1")
    assert proc.returncode == 1 and f"foreign: {FOLDER}/_backfill/b1/{KEY}.1.page.csv:" in proc.stdout
    # an id never recorded (never started, refused, mistyped) is a usage error naming the recorded ones
    proc = harness.cli("verify", "--backfill", "nope")
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stdout
    assert proc.stderr.splitlines() == [f"error: --backfill nope: destination default has no backfill or replay "
                                        f"of that id in STATE_TABLE {harness.table} (it has b1); `status` lists them"]


def test_the_live_audit_names_a_folder_of_backfill_that_no_backfill_recorded(harness):
    _export(harness)
    for n in (1, 2, 3):  # left by a backfill whose state was deleted, or copied in by hand
        _container(harness).upload_blob(f"{FOLDER}/_backfill/old/{KEY}.{n}.track.csv", b"x")
    code, problems, summary = _verify(harness)
    assert code == 1 and problems == [
        f"foreign: {FOLDER}/_backfill/old/: 3 blob(s) of no backfill or replay of destination default recorded "
        f"in STATE_TABLE {harness.table}: move them away"], problems
    assert summary.endswith("1 problem(s) (foreign 1)")


def _backfill_b1(harness, **env):
    proc = harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:20:00Z",
                       "--types", "track,identify", "--id", "b1", "--now", NOW, extra_env=env)
    assert proc.returncode == 0, proc.stderr


def test_a_blob_directly_in_backfill_is_foreign_by_its_own_name_even_if_named_like_a_recorded_one(harness):
    """``_backfill/b1`` (a blob, not the folder ``_backfill/b1/``) is in no backfill's folder: the
    audit of b1 lists ``_backfill/b1/`` and never sees it, so the live audit must name it."""
    _export(harness)
    _backfill_b1(harness)
    _container(harness).upload_blob(f"{FOLDER}/_backfill/b1", b"x")
    _container(harness).upload_blob(f"{FOLDER}/_backfill/notes.txt", b"x")
    code, problems, _ = _verify(harness)
    assert code == 1
    assert [p.split(": ")[:2] for p in problems if p.startswith("foreign")] == [
        ["foreign", f"{FOLDER}/_backfill/b1"], ["foreign", f"{FOLDER}/_backfill/notes.txt"]], problems
    assert problems[-1].endswith(": b1"), problems  # the recorded folder is still named


def test_a_backfill_folder_where_the_recorded_backfill_of_that_id_was_not_written_is_foreign(harness):
    """b1 was written under the old BLOB_PATH (its recipe's folder, which `verify --backfill b1`
    audits); a folder _backfill/b1/ under the new BLOB_PATH is audited by nobody: foreign."""
    harness.source.add(make_window_calls(W0, per_type={"track": 2}, seed=9)
                       + make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 3}, seed=10))
    harness.env.update(START)
    assert harness.run("2026-11-28T12:11:01Z", BLOB_PATH="exports/old").ok
    proc = harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z",
                       "--types", "track", "--id", "b1", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"BLOB_PATH": "exports/old"})
    assert proc.returncode == 0, proc.stderr
    assert harness.run("2026-11-28T12:21:01Z").ok  # BLOB_PATH exports/segment from here on
    assert harness.cli("verify", "--backfill", "b1").returncode == 0  # audited in exports/old/_backfill/b1
    _container(harness).upload_blob(f"{FOLDER}/_backfill/b1/{KEY}.1.track.csv", b"x")
    code, problems, _ = _verify(harness)
    assert code == 1 and [p.split(": ")[:2] for p in problems] == [["foreign", f"{FOLDER}/_backfill/b1/"]], problems
    assert "exports/old/_backfill/b1" in problems[0], problems


def test_a_backfill_is_recorded_by_its_row_key_as_the_backfill_commands_read_it(harness):
    """The definition row default~b1 with its destination field edited by hand: the backfill
    commands read the row by its key (NAME~ID) and so does verify."""
    _export(harness)
    _backfill_b1(harness)
    store = StateStore(make_table_service(harness.azurite.connection_string), harness.table)
    row = store.get_row("backfills", "default~b1")
    assert row is not None
    store.table.upsert_entity({**row, "destination": "eu"})
    proc = harness.cli("verify", "--backfill", "b1")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert _verify(harness)[:2] == (0, ["backfills and replays in exports/segment/_backfill/ (not audited here; "
                                        "`verify --backfill ID` audits one): b1"])


def test_bad_bounds_are_a_usage_error(harness):
    proc = harness.cli("verify", "--since", "yesterday")
    assert proc.returncode == 2 and "--since 'yesterday' is not an RFC 3339 time" in proc.stderr
    proc = harness.cli("verify", "--backfill", "a~b")
    assert proc.returncode == 2 and "--backfill" in proc.stderr


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(st.text(max_size=12), min_size=2, max_size=2), max_size=30),
       chunk=st.integers(min_value=1, max_value=64))
def test_reading_back_counts_csv_rows_and_hashes_the_bytes_however_they_are_chunked(rows, chunk):
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["messageId", "x"])
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8")
    got = read_back("f.csv", (data[i:i + chunk] for i in range(0, len(data), chunk)), ids=True)
    assert got.rows == len(rows) and got.ids == [r[0] for r in rows]
    assert got.sha256 == __import__("hashlib").sha256(data).hexdigest()


def test_a_crash_between_a_manifest_and_its_cursor_is_not_a_problem(harness):
    _export_calls = make_window_calls(W0, per_type={"track": 2}, seed=9)
    harness.source.add(_export_calls)
    harness.env.update(START)
    proc = harness.cli("run", "--now", NOW, extra_env={"EXPORTER_CRASH_AT": "after_manifest_commit"})
    assert proc.returncode == 137
    assert len(harness.manifests()) == 1
    assert _verify(harness)[:2] == (0, [])


def test_after_a_move_the_new_folder_is_audited_from_where_the_export_moved_in(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 2}, seed=9)
                       + make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 3}, seed=10))
    harness.env.update(START)
    assert harness.run("2026-11-28T12:11:01Z", BLOB_PATH="exports/old").ok
    assert harness.run("2026-11-28T12:21:01Z").ok  # BLOB_PATH exports/segment from here on
    moved = json.loads(harness.manifests()[f"{FOLDER}/_manifests/{KEY}.20261128T1210Z.json"].data)
    assert moved["previous"]["name"] == f"exports/old/_manifests/{KEY}.20261128T1200Z.json"
    assert moved["types"]["track"]["files"][0]["position"] == 2
    assert _verify(harness)[:2] == (0, [])


def test_a_named_destination_is_audited_in_its_own_place(harness, others):
    env = env_of(others)
    ok(add(harness, others["eu"], env))
    others["eu"].source.add(make_window_calls(W0, per_type={"track": 3}, seed=4))
    ok(harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env=env))
    proc = harness.cli("verify", "--destination", "eu", extra_env=env)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "verify eu in eu/segment: 1 manifest(s), 1 data file(s)" in proc.stdout and "no problem" in proc.stdout
    plain = harness.cli("verify", extra_env=env)  # default's: it names what it leaves out
    assert "other destinations, not audited here (`verify --destination NAME` audits one): eu\n" in plain.stdout
    assert plain.stdout.strip().splitlines()[-1].startswith("verify default in exports/segment: ")
    _container(harness).delete_blob(f"eu/segment/{KEY}.1.track.json")
    proc = harness.cli("verify", "--destination", "eu", extra_env=env)
    assert proc.returncode == 1 and f"missing: eu/segment/{KEY}.1.track.json" in proc.stdout
    assert harness.cli("verify", "--destination", "nope", extra_env=env).returncode == 2
    unknown = harness.cli("verify", "--destination", "eu", "--backfill", "nope", extra_env=env)
    assert unknown.returncode == 2 and unknown.stderr.rstrip().endswith("(it has none); `status eu` lists them")


def test_the_verify_timer_audits_every_enabled_destination_each_in_its_place(harness, others, caplog):
    from shared.verify_timer import run_verify_tick

    env = env_of(others)
    ok(add(harness, others["eu"], env))
    ok(add(harness, others["us"], env))
    others["eu"].source.add(make_window_calls(W0, per_type={"track": 3}, seed=4))
    ok(harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env=env))
    _container(harness).delete_blob(f"eu/segment/{KEY}.1.track.json")
    del env["US_TOKEN"]  # us cannot be audited: its secret does not resolve
    caplog.set_level("INFO")
    results = run_verify_tick(harness.settings(), env={**harness.env, **env})
    assert set(results) == {"default", "eu", "us"}
    assert results["default"] is not None and results["default"].ok
    assert results["eu"] is not None and results["eu"].problems["missing"] >= 1
    assert results["us"] is None
    lines = [r.getMessage() for r in caplog.records]
    assert f"verify eu: missing: eu/segment/{KEY}.1.track.json: " in "\n".join(lines)
    assert any(line.startswith("verify eu in eu/segment: ") and "problem(s)" in line for line in lines)
    assert any(line.startswith("verify us: not audited: destination us: ETL_API_TOKEN=@env:US_TOKEN") for line in lines)
    ok(harness.cli("destinations", "disable", "eu", extra_env=env))
    assert set(run_verify_tick(harness.settings(), env={**harness.env, **env})) == {"default", "us"}
