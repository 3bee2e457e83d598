"""Window manifests (issue 14, item 1): one per window of a sequence, empty windows too, a chain
of SHA-256s, create-only with bytes that are a pure function of the window's outcome, repaired
after a crash at any step, written once by racing writers; against Azurite and the emulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calltypes import CALL_TYPES
from shared.clients import build_clients, close_clients
from shared.errors import BlobConflictError
from shared.etl_client import Destination
from shared.file_audit import DATA_EXTENSIONS
from shared.manifest import ManifestError, parse
from shared.manifests import ManifestChain, data_file_type, rejected_file_type
from shared.recipe import Recipe
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of
from tests.support.runs import state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
WINDOWS = [W0 + timedelta(minutes=10 * i) for i in range(3)]
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:31:01Z"
KEY = "2184.13699"


def _load(harness):
    calls = make_window_calls(W0, per_type={"track": 4, "identify": 2}, seed=1)
    calls += make_window_calls(W0 + timedelta(minutes=20), per_type={"track": 3, "page": 1}, seed=2)
    harness.source.add([*calls, ("track", "2026-11-28T12:03:00.000Z", b"not json")])  # W1 is empty
    return calls


def _manifest(harness, start: datetime):
    name = f"exports/segment/_manifests/{KEY}.{start.strftime('%Y%m%dT%H%MZ')}.json"
    return name, harness.blobs()[name].data


def test_every_window_gets_a_manifest_empty_ones_too_listing_its_files_and_dead_letters(harness):
    calls = _load(harness)
    harness.env.update(START)
    assert harness.run(NOW).ok
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, manifest_windows=WINDOWS)
    _, first = _manifest(harness, W0)
    doc = json.loads(first)
    assert doc["previous"] is None and doc["window"] == {"start": "2026-11-28T12:00:00Z",
                                                         "end": "2026-11-28T12:10:00Z"}
    assert doc["types"]["track"]["status"] == "files" and doc["types"]["track"]["rows"] == 4
    assert doc["types"]["track"]["rejected"]["calls"] == 1
    assert doc["types"]["track"]["files"][0]["name"] == f"exports/segment/{KEY}.1.track.csv"
    assert doc["types"]["alias"] == {"status": "no calls", "files": [], "rows": 0, "rejected": None,
                                     "last_position": 0}
    assert doc["recipe"]["format"] == "csv" and doc["sequence"] == {"destination": "default", "backfill": None}
    _, empty = _manifest(harness, WINDOWS[1])
    empty_doc = json.loads(empty)
    assert all(t["status"] == "no calls" for t in empty_doc["types"].values())
    assert empty_doc["types"]["track"]["last_position"] == 1
    # A run with nothing new writes nothing new.
    before = harness.manifests()
    assert harness.run(NOW).ok
    assert {n: b.etag for n, b in harness.manifests().items()} == {n: b.etag for n, b in before.items()}


def test_blobs_whose_names_share_a_listing_prefix_are_not_taken_for_the_windows_files(harness):
    """A manifest lists every type's file at a position, and every type's dead letters of a window,
    with one listing each (prefixes ``{key}.{position}.`` and ``_rejected/{key}.{stamp}.``): a blob
    there that is not a type's file (another key's ``{key}.1.0.track.csv``, ``….1.notes.txt``, a
    ``….1.track.a.csv`` that sorts before the real file) must not be read as one."""
    _load(harness)
    harness.env.update(START)
    stamp = W0.strftime("%Y%m%dT%H%MZ")
    decoys = [f"exports/segment/{KEY}.1.0.track.csv", f"exports/segment/{KEY}.1.notes.txt",
              f"exports/segment/{KEY}.1.track.a.csv", f"exports/segment/{KEY}.1.identify.csv.bak",
              f"exports/segment/_rejected/{KEY}.{stamp}.track.a.ndjson",
              f"exports/segment/_rejected/{KEY}.{stamp}.0.identify.ndjson"]
    with harness.azurite.blob_service() as svc:
        for name in decoys:  # names that sort before the real ones where they can
            svc.get_blob_client(harness.container, name).upload_blob(b"decoy", metadata={"rows": "99"})
    assert harness.run(NOW).ok
    doc = json.loads(_manifest(harness, W0)[1])
    assert [f["name"] for f in doc["types"]["track"]["files"]] == [f"exports/segment/{KEY}.1.track.csv"]
    assert doc["types"]["track"]["rejected"]["name"] == f"exports/segment/_rejected/{KEY}.{stamp}.track.ndjson"
    assert doc["types"]["track"]["rejected"]["calls"] == 1 and doc["types"]["identify"]["rejected"] is None
    assert {t: d["rows"] for t, d in doc["types"].items() if d["rows"]} == {"track": 4, "identify": 2}


@pytest.mark.parametrize("point", [
    "after_claim", "after_file_commit", "before_state_commit", "after_state_commit", "after_state_commit:6",
    "after_state_commit:7", "before_manifest_commit", "before_manifest_commit:2", "after_manifest_commit",
    "after_manifest_commit:3",
])
def test_a_crash_at_any_step_leaves_a_chain_the_next_run_completes(harness, point):
    calls = _load(harness)
    harness.env.update(START)
    proc = harness.cli("run", "--now", NOW, extra_env={"EXPORTER_CRASH_AT": point})
    assert proc.returncode == 137, (proc.stdout, proc.stderr)
    check_container(harness.blobs(), expected_ids=None)  # whatever is there is a valid prefix
    proc = harness.cli("run", "--now", NOW)
    assert proc.returncode == 0, proc.stderr
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, manifest_windows=WINDOWS)


def test_a_crash_before_a_manifest_is_repaired_by_the_next_window_before_its_own(harness):
    calls = _load(harness)
    harness.env.update(START)
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                       extra_env={"EXPORTER_CRASH_AT": "before_manifest_commit"})
    assert proc.returncode == 137
    assert harness.manifests() == {} and all(r.window_end == WINDOWS[1] for r in state_rows(harness).values())
    assert harness.run(NOW).ok
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, manifest_windows=WINDOWS)


def test_a_manifest_a_crash_left_unwritten_is_written_at_the_next_runs_start_with_nothing_due(harness):
    """A unit that does not raise the least committed window end does not read the cursor; the run's
    (and the plan's) start catches up what a crash left behind, even when no unit runs."""
    _load(harness)
    harness.env.update(START)
    at = "2026-11-28T12:11:01Z"
    proc = harness.cli("run", "--now", at, extra_env={"EXPORTER_CRASH_AT": "before_manifest_commit"})
    assert proc.returncode == 137
    assert harness.manifests() == {}
    summary = harness.run(at)
    assert summary.ok and summary.units == []  # nothing due: no unit ran
    assert list(harness.manifests()) == [_manifest(harness, W0)[0]]


def _chain(harness, settings):
    clients = build_clients(settings)
    return clients, ManifestChain(clients.blobs, clients.state, Destination("2184", "13699"), KEY)


def _rewind_cursor(harness, to: datetime, name: str = "", sha: str = "", positions=None):
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        table = svc.get_table_client(harness.table)
        entity = table.get_entity("manifests", KEY)
        entity.update(window_end=to.strftime("%Y-%m-%dT%H:%M:%SZ"), name=name, sha256=sha,
                      positions=json.dumps(positions or {}))
        table.update_entity(entity)


def test_a_second_writer_of_a_window_builds_the_same_bytes_and_finds_it_done(harness):
    """Racing writers: the cursor taken back as if a second writer read it before the first moved it;
    its manifests are the same bytes, found in place (create-only), and the chain is unchanged."""
    _load(harness)
    harness.env.update(START)
    assert harness.run(NOW).ok
    before = {n: (b.etag, b.data) for n, b in harness.manifests().items()}
    _rewind_cursor(harness, W0)
    settings = harness.settings()
    clients, chain = _chain(harness, settings)
    try:
        written = chain.complete(Recipe.of(settings))
    finally:
        close_clients(clients)
    assert len(written) == 3
    assert {n: (b.etag, b.data) for n, b in harness.manifests().items()} == before


def test_a_manifest_in_the_way_with_another_outcome_is_a_permanent_error_naming_it(harness):
    _load(harness)
    harness.env.update(START)
    assert harness.run(NOW).ok
    name, _ = _manifest(harness, W0)
    _rewind_cursor(harness, W0, positions={"track": 1})  # a writer that believes track's file 1 is older
    settings = harness.settings()
    clients, chain = _chain(harness, settings)
    try:
        with pytest.raises(BlobConflictError, match=name) as err:
            chain.complete(Recipe.of(settings))
    finally:
        close_clients(clients)
    assert not err.value.transient and "verify" in str(err.value)


def test_an_existing_export_upgraded_starts_its_chain_at_the_first_window_completed_after(harness):
    calls = _load(harness)
    harness.env.update(START)
    assert harness.run("2026-11-28T12:11:01Z").ok
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        table = svc.get_table_client(harness.table)
        table.delete_entity("manifests", KEY)  # as before manifests existed
    for name in harness.manifests():
        harness.azurite.blob_service().get_blob_client(harness.container, name).delete_blob()
    assert harness.run(NOW).ok
    report = check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1,
                             manifest_windows=WINDOWS[1:])
    first = json.loads(_manifest(harness, WINDOWS[1])[1])
    assert first["previous"] is None and first["types"]["track"]["last_position"] == 1
    assert report.manifest_windows == WINDOWS[1:]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_reading_any_bytes_as_a_manifest_gives_a_manifest_or_one_manifest_error(data):
    try:
        parse(data)
    except ManifestError as exc:
        assert str(exc) and "\n" not in str(exc)


def test_a_lost_response_to_a_manifest_upload_is_recognised_as_written(harness):
    from tests.support.faulty_transport import LosingTransport, is_manifest_commit
    from tests.support.runs import run_with

    calls = _load(harness)
    lose = LosingTransport(is_manifest_commit, after=1)
    assert run_with(harness, NOW, blob_transport=lose, **START).ok
    assert len(lose.fired) == 1 and lose.fired[0].status == 201
    assert lose.retried_statuses == [409]
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=1, manifest_windows=WINDOWS)


# -- a destination (or a backfill) started over under a chain that stays ---------------------------

def _delete_rows(harness, partition: str, *row_keys: str) -> None:
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        table = svc.get_table_client(harness.table)
        for row in row_keys:
            table.delete_entity(partition, row)


def test_a_destination_started_over_in_a_new_folder_gets_its_own_chain_never_a_manifest_missing_its_files(harness):
    """docs/operations.md, "Start a destination over": the six rows deleted, BLOB_PATH changed,
    EXPORT_START later than the first export's. The manifest cursor row of the sequence is not a
    type row: left in place, it still says the chain stands at 12:40 with the old positions, so the
    new folder's windows 12:20 and 12:30 got no manifest and 12:40's said track had no calls
    while its file was there (a loader skips those calls; `verify` saw no problem). A row must not
    be created under a chain that counts files of its type: the run stops naming the cursor row,
    exporting nothing; with that row deleted too (as the docs now say) the new folder gets its own
    chain."""
    calls = make_window_calls(W0, minutes=50, per_type={"track": 8, "page": 3}, seed=5)
    harness.source.add(calls)
    harness.env.update(START)
    assert harness.run("2026-11-28T12:41:01Z").ok  # 12:00..12:30; the chain stands at 12:40
    _delete_rows(harness, KEY, *CALL_TYPES)
    harness.env.update(BLOB_PATH="exports/again", EXPORT_START="2026-11-28T12:20:00Z")
    stopped = harness.run("2026-11-28T12:51:01Z")
    assert stopped.error and f"manifests/{KEY}" in stopped.error and "Start a destination over" in stopped.error
    assert {"track", "page"}.isdisjoint(state_rows(harness))
    assert not [n for n in harness.blobs() if n.startswith("exports/again/")]
    _delete_rows(harness, "manifests", KEY)
    assert harness.run("2026-11-28T12:51:01Z").ok
    again = {n: b for n, b in harness.blobs().items() if n.startswith("exports/again/")}
    later = {c["messageId"] for c in calls if c["receivedAt"] >= "2026-11-28T12:20"}
    check_container(again, blob_path="exports/again", expected_ids=later,
                    manifest_windows=[W0 + timedelta(minutes=m) for m in (20, 30, 40)])


def test_a_type_started_over_under_the_chain_whose_files_do_not_follow_it_gets_no_false_manifest(harness):
    """The screen row (no calls: the chain counts no file of it) is deleted and its manifest cursor
    kept, so the row is created again at the destination's start; but the ETL API now serves
    screen calls for 12:00, a window whose manifest already said it had none, and for 12:30. The
    re-walk writes screen files 1 (12:00) and 2 (12:30). The chain says screen stood at position 0:
    its next file is of 12:00, before the window being announced, so 12:30's manifest would have
    said "no calls" for screen (and every later one too, stuck at file 1), with file 2 there. No
    manifest is written from files that do not follow the chain: the run says so, naming the row."""
    harness.source.add(make_window_calls(W0, minutes=30, per_type={"track": 3}, seed=31))
    harness.env.update(START)
    assert harness.run(NOW).ok  # 12:00..12:20; the chain stands at 12:30
    _delete_rows(harness, KEY, "screen")
    harness.source.add(make_window_calls(W0, per_type={"screen": 1}, seed=32))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=30), per_type={"screen": 1}, seed=33))
    summary = harness.run("2026-11-28T12:41:01Z")
    assert summary.error and "earlier window 2026-11-28T12:00:00Z" in summary.error, summary.error
    assert f"manifests/{KEY}" in summary.error and "screen" in summary.error
    assert sorted(n for n in harness.data_blobs() if ".screen." in n) == [
        f"exports/segment/{KEY}.1.screen.csv", f"exports/segment/{KEY}.2.screen.csv"]
    assert not [n for n in harness.manifests() if "20261128T1230Z" in n]


def test_one_chain_completing_again_after_more_commits_lists_the_positions_again(harness):
    """A chain lists every type's files at a position once (one listing serves them all) and keeps
    that until it reads the rows again. Here one chain (as the loop of a run that notices a move
    uses one) writes 12:00's manifest, listing position 1 (track's file of 12:00); then page
    commits its own file 1 (12:10). The same chain's next completion must list position 1 again
    and find page's file, never answer from the listing taken before the commit (page's position
    1 "committed but no file of it", or a manifest without it)."""
    harness.source.add(make_window_calls(W0, per_type={"track": 2}, seed=41))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"page": 2}, seed=42))
    harness.env.update(START)
    crash = {"EXPORTER_CRASH_AT": "before_manifest_commit"}
    assert harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env=crash).returncode == 137
    settings = harness.settings()
    clients, chain = _chain(harness, settings)
    try:
        assert chain.complete(Recipe.of(settings)) == [_manifest_name(W0)]
        assert harness.cli("run", "--now", "2026-11-28T12:21:01Z", extra_env=crash).returncode == 137
        assert list(harness.manifests()) == [_manifest_name(W0)]
        assert chain.complete(Recipe.of(settings)) == [_manifest_name(W0 + timedelta(minutes=10))]
    finally:
        close_clients(clients)
    doc = json.loads(_manifest(harness, W0 + timedelta(minutes=10))[1])
    assert [f["name"] for f in doc["types"]["page"]["files"]] == [f"exports/segment/{KEY}.1.page.csv"]
    check_container(harness.blobs(), expected_ids=None, manifest_windows=[W0, W0 + timedelta(minutes=10)])


def _manifest_name(start: datetime) -> str:
    return f"exports/segment/_manifests/{KEY}.{start.strftime('%Y%m%dT%H%MZ')}.json"


_NEAR = st.builds(lambda t, sep, e, junk: f"{junk[:1]}{t}{sep}{e}{junk[1:]}", st.sampled_from(CALL_TYPES),
                  st.sampled_from([".", "..", "", "_"]),
                  st.sampled_from([*DATA_EXTENSIONS, "ndjson", "csv.bak", "gz", "", "CSV", "track.csv"]),
                  st.text(alphabet=".1a/", max_size=3))


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=30), _NEAR))
def test_only_a_types_own_name_under_a_listing_prefix_is_taken_for_its_file(rest):
    """The two listings of a manifest (``{key}.{position}.``, ``_rejected/{key}.{stamp}.``) return
    whatever a container holds under the prefix: a blob is a type's file there only when the rest
    of its name is exactly ``{type}.{data extension}`` (``{type}.ndjson`` for dead letters)."""
    data = {f"{t}.{e}": t for t in CALL_TYPES for e in DATA_EXTENSIONS}
    rejected = {f"{t}.ndjson": t for t in CALL_TYPES}
    assert data_file_type(rest) == data.get(rest)
    assert rejected_file_type(rest) == rejected.get(rest)
