"""Attacks on state, crashes, concurrency and settings (each a finding that fails today).

Every test runs against real parts: Azurite (blob and table) from tests/conftest.py, the ETL API
emulator, and the real CLI as a subprocess where a process is killed (``EXPORTER_CRASH_AT``).
State rows are edited by hand through the Table SDK, as an operator (or a newer version) would.
Each test was marked ``xfail(strict=True)`` until its cause was fixed; they all pass now.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient, UpdateMode

from tests.support.blobs import rows_of
from tests.support.calls import make_window_calls
from tests.support.invariants import ids_of
from tests.support.runs import state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:11:01Z"  # window 12:00 due
DEST = "2184.13699"


def _edit_row(harness, call_type: str, **fields: object) -> None:
    """Merge ``fields`` into a type's state row, as `az storage entity merge` would."""
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        table = svc.get_table_client(harness.table)
        table.update_entity({"PartitionKey": DEST, "RowKey": call_type, **fields}, mode=UpdateMode.MERGE)


def _row(harness, call_type: str) -> dict:
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        return dict(svc.get_table_client(harness.table).get_entity(DEST, call_type))


def _ids_everywhere(harness) -> Counter[str]:
    """How many data files (in any folder of the container) hold each messageId."""
    seen: Counter[str] = Counter()
    for name, blob in harness.blobs().items():
        if "/_rejected/" in name or "/_manifests/" in name:
            continue
        for row in rows_of(name, blob.data):
            seen[row["messageId"]] += 1
    return seen


def _crash_after_first_file(harness, calls):
    """A run that commits the first of three files of track 12:00 and dies (status 137)."""
    harness.source.add(calls)
    harness.env.update(START)
    proc = harness.cli("run", "--now", NOW,
                       extra_env={"EXPORTER_CRASH_AT": "after_file_commit:1", "MAX_FILE_ROWS": "10"})
    assert proc.returncode == 137, (proc.stdout, proc.stderr)
    pending = state_rows(harness)["track"]
    assert pending.pending_start == W0 and pending.pending_recipe
    return pending


# -- 1. a pending recipe that cannot be read is silently replaced by the current settings --------

def _newer(recipe: str) -> str:
    return recipe[:-1] + ',"row_group_rows":50000}'  # a setting a newer version added


def _older(recipe: str) -> str:
    import json

    stored = json.loads(recipe)
    del stored["max_call_bytes"]  # a recipe from a version before MAX_CALL_BYTES
    return json.dumps(stored)


@pytest.mark.parametrize("edit", [_newer, _older, lambda r: r[: len(r) // 2]],
                         ids=["newer-version-key", "older-version-missing-key", "cut-in-half"])
def test_a_pending_recipe_this_version_cannot_read_never_writes_the_window_a_second_time(harness, edit):
    """A crash after file 1 of track 12:00 under BLOB_PATH=exports/segment; the pending recipe is one
    this version cannot read (written by a newer version during a rollback, by an older one, or cut);
    the next run has BLOB_PATH=exports/moved and the default MAX_FILE_ROWS.

    Today: ``Recipe.from_json`` catches the TypeError/JSONDecodeError, logs a warning and returns the
    *current* recipe, place included, so the window is written again from position 1 in
    exports/moved: the 10 calls of exports/segment/...1.track.csv are in two files. It must stop
    with a clear permanent error (or finish the window where and as it was started), never write a
    call twice."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=8)
    pending = _crash_after_first_file(harness, calls)
    _edit_row(harness, "track", pending_recipe=edit(pending.pending_recipe))
    harness.env["BLOB_PATH"] = "exports/moved"
    summary = harness.run(NOW)
    twice = {i: n for i, n in _ids_everywhere(harness).items() if n > 1}
    assert not twice, f"{len(twice)} call(s) in two data files; run error: {summary.error}"
    if state_rows(harness)["track"].window_end > W0:  # it went on: then every call is in place
        assert set(_ids_everywhere(harness)) == ids_of(calls)


@pytest.mark.parametrize("same_settings", [True, False], ids=["same-file-settings", "other-file-settings"])
def test_clearing_an_unreadable_recipe_as_documented_resumes_the_window_without_writing_a_call_twice(
        harness, same_settings):
    """docs/operations.md, "A pending window this version cannot read": the run stops on the
    unreadable recipe; the operator empties ``pending_recipe`` only (the claim stays). The next run
    resumes the window from its first position with today's settings: with the same file settings
    file 1 is found in place (not written again) and the window completes, every call once; with
    other ones it stops on a conflict naming file 1, and no call is in two files."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=9)
    pending = _crash_after_first_file(harness, calls)
    _edit_row(harness, "track", pending_recipe=_newer(pending.pending_recipe))
    stopped = harness.run(NOW)
    assert stopped.error and "cannot read" in stopped.error
    first = harness.blobs()["exports/segment/2184.13699.1.track.csv"]
    _edit_row(harness, "track", pending_recipe="")
    if same_settings:
        harness.env["MAX_FILE_ROWS"] = "10"
    summary = harness.run(NOW)
    assert not {i: n for i, n in _ids_everywhere(harness).items() if n > 1}
    assert harness.blobs()["exports/segment/2184.13699.1.track.csv"] == first
    if same_settings:
        assert summary.ok, summary.error
        assert set(_ids_everywhere(harness)) == ids_of(calls)
        assert state_rows(harness)["track"].position == 3
    else:
        assert summary.error and "2184.13699.1.track.csv" in summary.error and "different content" in summary.error
        assert state_rows(harness)["track"].pending_start == W0


def test_clearing_an_unreadable_recipe_after_a_move_finishes_the_window_where_it_started(harness):
    """As above, but BLOB_PATH was changed after the crash. A cleared recipe is finished in the
    place of the settings, where file 1 (in exports/segment) is not found: the window would be
    written again from position 1 in exports/moved, its first 10 calls in two folders. The error
    names where the window's files went (the recipe's place reads even when the rest does not);
    the operator points BLOB_PATH there before clearing it, as the docs say, and the window ends
    there with every call once; the next windows go to the new folder."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=10)
    pending = _crash_after_first_file(harness, calls)
    _edit_row(harness, "track", pending_recipe=_newer(pending.pending_recipe))
    harness.env["BLOB_PATH"] = "exports/moved"
    stopped = harness.run(NOW)
    # The move is refused first (a window pending in the old folder): the line names that folder.
    assert stopped.error and "was started in the folder exports/segment but BLOB_PATH now says exports/moved: " \
        "point BLOB_PATH back at exports/segment" in stopped.error, stopped.error
    assert "sig=" not in stopped.error and "?" not in stopped.error
    harness.env.update(BLOB_PATH="exports/segment")
    stopped = harness.run(NOW)
    assert stopped.error and "its files went to BLOB_PATH=exports/segment in http" in stopped.error
    harness.env.update(MAX_FILE_ROWS="10")
    _edit_row(harness, "track", pending_recipe="")
    assert harness.run(NOW).ok
    assert Counter(_ids_everywhere(harness)) == Counter(dict.fromkeys(ids_of(calls), 1))
    assert not [n for n in harness.blobs() if n.startswith("exports/moved/")]
    later = make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=11)
    harness.source.add(later)
    harness.env["BLOB_PATH"] = "exports/moved"
    assert harness.run("2026-11-28T12:21:01Z").ok
    assert {n for n in harness.data_blobs() if n.startswith("exports/moved/")} == {
        "exports/moved/2184.13699.4.track.csv"}


# -- 2. a state row edited by hand into nonsense ---------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"position": "12a"},  # a typo in `az storage entity merge ... position=12a`
    {"window_end": "2026-11-28 12:00"},  # no time zone
    {"window_end": ""},  # half cleared
    {"pending_start": "2026-11-28T12:00:00Z", "pending_position": "one"},
], ids=["position-not-a-number", "window-end-no-zone", "window-end-empty", "pending-position-not-a-number"])
def test_a_state_row_edited_into_nonsense_stops_the_run_with_one_clear_error_and_moves_nothing(harness, fields):
    """After one clean run, the track row is edited by hand. Today ``_entity_to_state`` calls
    ``int()``/``parse_rfc3339`` on the raw values: a ValueError (not an ExportError) escapes
    ``run_export`` (a traceback from the CLI, a raw exception from the timer), and an empty
    ``window_end`` is read as 1970-01-01, so the run walks 36 empty windows of 1970 per tick and
    writes them as exported. It must stop with a permanent error naming the row and the field, and
    move nothing."""
    harness.source.add(make_window_calls(W0, per_type={"track": 3}, seed=2))
    harness.env.update(START)
    assert harness.run(NOW).ok
    _edit_row(harness, "track", **fields)
    before = _row(harness, "track")
    summary = harness.run("2026-11-28T12:21:01Z")
    assert summary.error and "track" in summary.error and "STATE_TABLE" in summary.error, summary.error
    assert not any(u.window.start.year == 1970 for u in summary.units)
    assert _row(harness, "track") == before


# -- 3. a first run with the clock far ahead starts the export in the future ------------------------

def test_a_first_run_with_the_clock_ahead_does_not_skip_the_windows_before_the_real_now(harness):
    """A new deployment without EXPORT_START; its first tick runs with the clock months ahead (a host
    with a bad clock, or an operator trying `cli run --now 2027-06-01T00:00:00Z`). The ETL API says
    the window is not closed, so nothing is exported, but the six state rows are created with
    window_end 2027-05-31T23:50Z. When the clock is right again, no window is due until June 2027:
    the calls of 12:00 (due at the real now) are never exported, and nothing says so (status
    shows a negative lag). A row must not start at a window the ETL API has not closed (or a
    `--now` past the real clock must be refused)."""
    calls = make_window_calls(W0, per_type={"track": 3, "page": 2}, seed=3)
    harness.source.add(calls)
    ahead = harness.run("2027-06-01T00:00:00Z")
    assert {u.status for u in ahead.units} == {"not_closed"}, ahead.units
    assert not harness.data_blobs()
    right = harness.run(NOW)  # the first tick at the right time: window 12:00 is due
    assert right.ok, right.error
    assert set(_ids_everywhere(harness)) == ids_of(calls)


# -- 4. a first run that stops between creating the type rows starts the types at different windows --

def _is_row_insert(table: str):
    """An Insert Entity into the state table (POST /{table}), not the Create Table (POST /Tables)."""
    from urllib.parse import urlsplit

    return lambda r: r.method == "POST" and urlsplit(r.url).path.rstrip("/").endswith("/" + table)


def test_a_first_run_stopped_between_row_creations_starts_every_type_at_the_same_window(harness):
    """No EXPORT_START (the export starts "now"). The first tick (12:11) pins the destination and
    creates the identify and track rows at 12:00, then Table storage fails the next insert (a 503
    beyond the SDK's retries, as a host recycle or a kill would stop it there too): the run stops.
    The next tick (12:21) creates page..group at 12:10: identify and track export 12:00 and 12:10,
    the other four types only 12:10. The page calls of 12:00 are never exported, and nothing says
    so. The start of a destination's export must be one instant for all its types (e.g. recorded
    in the pin on first use and used for every row created later)."""
    from shared.clients import build_clients, close_clients
    from shared.export import run_export
    from tests.support.faulty_transport import FailingTransport
    from tests.support.runs import FAST_ETL

    calls = make_window_calls(W0, minutes=20, per_type={"track": 4, "page": 4}, seed=4)
    harness.source.add(calls)
    settings = harness.settings()
    # the pin (1st insert), identify and track (2nd, 3rd) land; page (4th) fails past the retries
    failing = FailingTransport(_is_row_insert(harness.table), times=1, after=3, status=503)
    clients = build_clients(settings, table_kwargs={"transport": failing, "retry_total": 0},
                            etl_kwargs=FAST_ETL)
    try:
        first = run_export(settings, clients, datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC))
    finally:
        close_clients(clients)
    assert first.error and failing.fired, first
    assert set(state_rows(harness)) == {"identify", "track"}
    second = harness.run("2026-11-28T12:21:01Z")
    assert second.ok, second.error
    assert set(_ids_everywhere(harness)) == ids_of(calls)


# -- 5. a fresh claim over a window that was written before (a destination started over) -----------

def _start_over(harness, call_type: str) -> None:
    """docs/operations.md, "Start a destination over": `az storage entity delete` of the type's row
    and of the manifest cursor row."""
    with TableServiceClient.from_connection_string(harness.azurite.connection_string) as svc:
        table = svc.get_table_client(harness.table)
        table.delete_entity(DEST, call_type)
        table.delete_entity("manifests", DEST)


def _export_then_start_over(harness, calls, kept: int):
    """Track 12:00 exported in three files (10 calls each at most); then the operator starts the
    type over without moving its files (same settings), and the ETL API now serves only the calls
    of the window's first ``kept`` files. Returns the names of the window's files."""
    harness.source.add(calls)
    harness.env.update(START, MAX_FILE_ROWS="10")
    assert harness.run(NOW).ok
    names = sorted(n for n in harness.data_blobs() if ".track." in n)
    assert len(names) == 3
    keep = {r["messageId"] for n in names[:kept] for r in rows_of(n, harness.blobs()[n].data)}
    harness.source.remove({c["messageId"] for c in calls if c["type"] == "track"} - keep)
    _start_over(harness, "track")
    return names


def test_a_window_started_over_that_now_has_fewer_calls_is_not_committed_over_its_own_files(harness):
    """A fresh claim (the row was deleted: no claim of 12:00) meets the window's old files: file 1
    is rebuilt identical and found in place, but the window now ends there, with its old files 2
    and 3 past it. Committing the state at position 1 would leave them in the way of the next
    window (whose first file would stop on a conflict naming a file of 12:00, the wrong cause).
    Before the state moves, the name after the window's last file must be looked up, as for a
    resumed claim: the run stops with the ETL API's fault and nothing moves."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=21)
    names = _export_then_start_over(harness, calls, kept=1)
    before = {n: b.etag for n, b in harness.data_blobs().items()}
    summary = harness.run(NOW)
    assert summary.error and "fewer calls for the closed window" in summary.error, summary.error
    assert names[1] in summary.error
    row = state_rows(harness)["track"]
    assert (row.position, row.window_end, row.pending_start) == (0, W0, W0)
    assert {n: b.etag for n, b in harness.data_blobs().items()} == before


def test_a_window_started_over_with_the_same_calls_finds_its_files_and_sends_only_the_first_again(harness):
    """docs/operations.md, "Start a destination over" without moving the files: the window is
    walked again with a fresh claim and every file is found in place, none created again, every
    call once. A fresh claim does not read a name before its upload, so file 1's bytes are sent
    (and refused by the create-only commit: ours, identical); from then on the window counts as
    written before and files 2 and 3 are looked up first and only hashed, not sent again."""
    from tests.support.faulty_transport import LosingTransport, is_blob_commit
    from tests.support.runs import run_with

    calls = make_window_calls(W0, per_type={"track": 25}, seed=22)
    names = _export_then_start_over(harness, calls, kept=3)
    before = {n: b.etag for n, b in harness.data_blobs().items()}
    manifests = {n: b.etag for n, b in harness.manifests().items()}
    assert len(manifests) == 1
    sent = LosingTransport(is_blob_commit, times=0)  # loses nothing: counts the data file commits sent
    summary = run_with(harness, NOW, blob_transport=sent)
    assert summary.ok, summary.error
    (unit,) = [u for u in summary.units if u.call_type == "track"]
    assert [(f.name, f.created) for f in unit.files] == [(n, False) for n in names]
    assert sent.seen == 1
    assert {n: b.etag for n, b in harness.data_blobs().items()} == before
    assert {n: b.etag for n, b in harness.manifests().items()} == manifests  # rebuilt: the same bytes
    assert Counter(_ids_everywhere(harness)) == Counter(dict.fromkeys(ids_of(calls), 1))
    row = state_rows(harness)["track"]
    assert (row.position, row.window_end, row.pending_start) == (3, W0 + timedelta(minutes=10), None)


def test_a_window_started_over_that_now_has_only_its_dead_letters_is_not_committed_over_its_files(harness):
    """As above, but the ETL API now serves only the window's bad call: no data file is written,
    and the dead-letter file is found in place (ours, identical): the window was written before,
    so the name after its last file (position 1) is looked up, finds file 1 of 12:00, and the run
    stops with the ETL API's fault; nothing moves."""
    calls = make_window_calls(W0, per_type={"track": 25}, seed=23)
    harness.source.add([("track", "2026-11-28T12:03:00.000Z", b"not json")])
    names = _export_then_start_over(harness, calls, kept=0)
    summary = harness.run(NOW)
    assert summary.error and "fewer calls for the closed window" in summary.error, summary.error
    assert names[0] in summary.error
    row = state_rows(harness)["track"]
    assert (row.position, row.window_end, row.pending_start) == (0, W0, W0)


def test_a_fresh_claim_whose_first_name_holds_a_late_file_of_the_window_before_stops_and_moves_nothing(harness):
    """A fresh claim does not read its names before uploading. Where one is taken all the same (a
    stale writer's late commit of the window before, after that window shrank and was committed
    without it), the create-only commit must still refuse to overwrite it and must not count it as
    the fresh window's file: the run stops with a conflict naming it, the blob is as it was, and
    the type stays at the window (its claim kept, nothing committed past it)."""
    harness.source.add(make_window_calls(W0, per_type={"track": 3}, seed=24))
    harness.env.update(START)
    assert harness.run(NOW).ok  # 12:00 -> track file 1
    late = "exports/segment/2184.13699.2.track.csv"
    metadata = {"exporter": "cdp-blob-exporter", "kind": "data", "window_start": "2026-11-28T12:00:00Z",
                "window_end": "2026-11-28T12:10:00Z", "call_type": "track", "position": "2", "rows": "1",
                "sha256": "0" * 64}
    with harness.azurite.blob_service() as svc:
        svc.get_blob_client(harness.container, late).upload_blob(b"late,file\n", metadata=metadata)
        etag = svc.get_blob_client(harness.container, late).get_blob_properties().etag
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=25))
    summary = harness.run("2026-11-28T12:21:01Z")
    assert summary.error and late in summary.error and "never overwrites" in summary.error, summary.error
    with harness.azurite.blob_service() as svc:
        blob = svc.get_blob_client(harness.container, late)
        assert blob.get_blob_properties().etag == etag and blob.download_blob().readall() == b"late,file\n"
    row = state_rows(harness)["track"]
    assert (row.position, row.window_end, row.pending_start) == (1, W0 + timedelta(minutes=10),
                                                                  W0 + timedelta(minutes=10))
