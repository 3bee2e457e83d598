"""Where the files go is part of a window's recipe (issue 9, item 6).

A window pending after a crash is finished in the container and folder it was started in, whatever
BLOB_PATH says by then: its calls are never in two folders. A pending window whose container the
settings no longer reach is a clear permanent error until it is reachable again. Moving the export
(a new BLOB_PATH) is said out loud: positions go on and EXPORT_START is not read again.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

from tests.support.blobs import rows_of
from tests.support.calls import make_window_calls
from tests.support.invariants import ids_of, snapshot
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}


def _crash_mid_window(harness, **env):
    """Two windows of track; the run dies right after the first window's first file (of 3)."""
    first = make_window_calls(W0, per_type={"track": 25}, seed=21)
    second = make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 4}, seed=22)
    harness.source.add(first + second)
    harness.env.update(START, MAX_FILE_ROWS="10", **env)
    proc = harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env={"EXPORTER_CRASH_AT": "after_file_commit:1"})
    assert proc.returncode == 137, proc.stderr
    assert sorted(harness.data_blobs()) == ["old/2184.13699.1.track.csv"]
    return first, second


def _ids_by_folder(blobs) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for name, blob in blobs.items():
        if "/_rejected/" in name or "/_manifests/" in name:
            continue
        out.setdefault(name.split("/", 1)[0], Counter()).update(r["messageId"] for r in rows_of(name, blob.data))
    return out


def _refused_in_another_container(harness, azurite, now: str, prefix: str) -> tuple[str, str, str]:
    """A container beside the harness's, and a run at ``now`` pointed at it that must be refused in
    one line with no SAS signature, writing nothing there: (its name, its SAS URL, the error)."""
    other = f"{prefix}{harness.container[1:]}"
    azurite.create_container(other)
    elsewhere = azurite.sas_url(other)
    refused = run_with(harness, now, BLOB_SAS_URL=elsewhere)
    assert refused.error is not None and "\n" not in refused.error and "sig=" not in refused.error
    assert _names_in(azurite, other) == []
    return other, elsewhere, refused.error


def _names_in(azurite, container: str) -> list[str]:
    with azurite.blob_service() as svc:
        return sorted(b.name for b in svc.get_container_client(container).list_blobs())


def test_a_window_pending_under_the_old_blob_path_is_finished_there_not_duplicated_in_the_new(harness, caplog):
    first, second = _crash_mid_window(harness, BLOB_PATH="old")
    before = snapshot(harness.blobs())
    rows = state_rows(harness)
    caplog.set_level(logging.INFO)
    # Moved now, the other types' files of 12:00 would land in new/ and track's in old/: the
    # window's manifest, built in either, would wait forever for the files of the other.
    refused = run_with(harness, "2026-11-28T12:21:01Z", BLOB_PATH="new")
    assert refused.error is not None and "\n" not in refused.error
    assert "was started in the folder old but BLOB_PATH now says new: point BLOB_PATH back at old until " \
           "`status` shows no pending window" in refused.error, refused.error
    assert snapshot(harness.blobs()) == before and state_rows(harness) == rows  # nothing moved, the pin neither
    assert run_with(harness, "2026-11-28T12:11:02Z", BLOB_PATH="old").ok  # back: the window is finished there
    summary = run_with(harness, "2026-11-28T12:21:01Z", BLOB_PATH="new")
    assert summary.ok, summary.error
    names = sorted(harness.data_blobs())
    assert names == [
        "new/2184.13699.4.track.csv",  # the next window, in the new place, the next position
        "old/2184.13699.1.track.csv",  # the crashed run's file, untouched
        "old/2184.13699.2.track.csv",  # the pending window, finished where it started
        "old/2184.13699.3.track.csv",
    ]
    blobs = harness.blobs()
    assert all(blobs[n].etag == etag for n, (etag, _) in before.items())
    by_folder = _ids_by_folder(blobs)
    assert by_folder["old"] == Counter(ids_of(first)) and by_folder["new"] == Counter(ids_of(second))
    assert committed(state_rows(harness))["track"] == (4, W0 + timedelta(minutes=20))
    assert sorted(n for n in blobs if "/_manifests/" in n) == [  # each window's manifest where its files are
        "new/_manifests/2184.13699.20261128T1210Z.json", "old/_manifests/2184.13699.20261128T1200Z.json"]
    # Moving the export is said out loud, with what it means for EXPORT_START.
    moved = [r.getMessage() for r in caplog.records if "now go to" in r.getMessage()]
    assert len(moved) == 1 and "EXPORT_START is not read again" in moved[0] and "/new" in moved[0]
    assert run_with(harness, "2026-11-28T12:21:02Z", BLOB_PATH="new").units == []
    assert len([r for r in caplog.records if "now go to" in r.getMessage()]) == 1  # said once


def test_a_window_pending_in_another_container_is_a_clear_error_until_that_container_is_back(harness, azurite):
    _crash_mid_window(harness, BLOB_PATH="old")
    pending = state_rows(harness)["track"]
    before = committed(state_rows(harness))

    other, elsewhere, error = _refused_in_another_container(harness, azurite, "2026-11-28T12:21:01Z", "o")
    assert "was started in the container" in error and harness.container in error
    assert "point BLOB_SAS_URL" in error
    assert state_rows(harness)["track"].pending_start == pending.pending_start
    assert committed(state_rows(harness)) == before

    # Back to the first container: the window is finished there; then the move goes ahead.
    assert run_with(harness, "2026-11-28T12:11:02Z").ok
    assert sorted(harness.data_blobs()) == [f"old/2184.13699.{p}.track.csv" for p in (1, 2, 3)]
    assert run_with(harness, "2026-11-28T12:21:01Z", BLOB_SAS_URL=elsewhere, BLOB_PATH="old").ok
    assert _names_in(azurite, other) == [
        "old/2184.13699.4.track.csv", "old/_manifests/2184.13699.20261128T1210Z.json"]


def test_a_sas_rotation_or_a_switch_to_the_managed_identity_form_is_not_a_move():
    from shared.blob_store import container_location

    a = container_location(sas_url="https://Acct.blob.core.windows.net/exports?sv=1&sp=rcwl&sig=aaa")
    b = container_location(sas_url="https://acct.blob.core.windows.net:443/exports/?sv=2&sp=rcwl&sig=bbb")
    c = container_location(account_url="https://acct.blob.core.windows.net/", container="exports")
    d = container_location(account_url="https://acct.blob.core.windows.net?sv=1&sig=zzz", container="exports")
    assert a == b == c == d == "https://acct.blob.core.windows.net/exports"
    assert container_location(account_url="https://acct.blob.core.windows.net", container="other") != a


def test_manifests_owed_in_the_old_container_stop_a_move_until_they_are_written_there(harness, azurite):
    harness.source.add(make_window_calls(W0, per_type={"track": 3}, seed=23)
                       + make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2}, seed=24))
    harness.env.update(START)
    crashed = harness.cli("run", "--now", "2026-11-28T12:11:01Z",
                          extra_env={"EXPORTER_CRASH_AT": "before_manifest_commit"})
    assert crashed.returncode == 137, crashed.stderr
    assert not [n for n in harness.blobs() if "/_manifests/" in n]  # the window is committed, its manifest owed
    before = snapshot(harness.blobs())

    other, elsewhere, error = _refused_in_another_container(harness, azurite, "2026-11-28T12:21:01Z", "m")
    assert "the windows 2026-11-28T12:00:00Z..2026-11-28T12:10:00Z of 2184.13699 were committed in the container " \
           f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1/{harness.container}, but their manifests are not " \
           "written yet" in error, error
    assert snapshot(harness.blobs()) == before

    assert run_with(harness, "2026-11-28T12:11:02Z").ok  # back: the owed manifest is written where its files are
    assert [n for n in harness.blobs() if "/_manifests/" in n] == [
        "exports/segment/_manifests/2184.13699.20261128T1200Z.json"]
    assert run_with(harness, "2026-11-28T12:21:01Z", BLOB_SAS_URL=elsewhere).ok  # then the move goes ahead
    assert "exports/segment/_manifests/2184.13699.20261128T1210Z.json" in _names_in(azurite, other)



def test_types_uneven_at_a_container_move_stop_the_move_until_they_are_even(harness, azurite):
    # The run budget ran out after identify's W0+10 and before the other types' (no claim is
    # pending): W0+10 is partly committed in the old container (identify's file is there). Moved
    # now, the others' W0+10 would land in the new container, and the manifest of W0+10, built
    # there, would wait forever for identify's file, which it cannot see.
    from shared.clients import build_clients, close_clients
    from shared.export import run_export
    from tests.support.runs import FAST_ETL, at

    harness.source.add(make_window_calls(W0, per_type={"track": 3, "identify": 2}, seed=31)
                       + make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2, "identify": 1}, seed=32))
    harness.env.update(START)
    ticks = iter([0.0] * 8)  # the run's start, W0's six units, identify's W0+10: then the budget is spent
    settings = harness.settings()
    clients = build_clients(settings, etl_kwargs=FAST_ETL)
    try:
        cut = run_export(settings, clients, at("2026-11-28T12:21:01Z"), monotonic=lambda: next(ticks, 1e9))
    finally:
        close_clients(clients)
    assert cut.stopped_by_budget
    rows = state_rows(harness)
    assert rows["identify"].window_end == W0 + timedelta(minutes=20)
    assert all(rows[t].window_end == W0 + timedelta(minutes=10) and not rows[t].pending_start
               for t in rows if t != "identify")
    before = snapshot(harness.blobs())

    other, elsewhere, error = _refused_in_another_container(harness, azurite, "2026-11-28T12:21:02Z", "m")
    assert "the windows 2026-11-28T12:10:00Z..2026-11-28T12:20:00Z of 2184.13699 were committed in the " \
           f"container http://127.0.0.1:{azurite.blob_port}/devstoreaccount1/{harness.container} by identify but " \
           "not yet by track, page, screen, alias, group" in error, error
    assert snapshot(harness.blobs()) == before
    assert state_rows(harness) == rows  # nothing moved, the pin neither

    assert run_with(harness, "2026-11-28T12:21:03Z").ok  # back: the others catch up where identify's file is
    assert sorted(n for n in harness.blobs() if "/_manifests/" in n) == [
        "exports/segment/_manifests/2184.13699.20261128T1200Z.json",
        "exports/segment/_manifests/2184.13699.20261128T1210Z.json"]
    assert run_with(harness, "2026-11-28T12:31:01Z", BLOB_SAS_URL=elsewhere).ok  # then the move goes ahead
    assert "exports/segment/_manifests/2184.13699.20261128T1220Z.json" in _names_in(azurite, other)


def test_a_work_item_queued_before_a_container_change_does_not_write_into_the_new_container(harness, azurite):
    import uuid

    import pytest

    from shared.errors import StateConflictError
    from shared.planning import plan
    from shared.sequence import Sequence
    from shared.work_item import WorkItem
    from shared.work_queue import WorkQueue
    from shared.worker import handle
    from tests.support.runs import FAST_ETL, at

    harness.source.add(make_window_calls(W0, per_type={"track": 2, "identify": 1}, seed=25))
    harness.env.update(START, EXPORT_QUEUE=f"q{uuid.uuid4().hex[:20]}", EXPORT_MODE="queue")
    here = harness.settings()
    other = f"w{harness.container[1:]}"
    azurite.create_container(other)
    there = harness.settings(BLOB_SAS_URL=azurite.sas_url(other))
    planned = plan(here, at("2026-11-28T12:11:01Z"), destinations=[("default", Sequence(), here)])
    assert planned.ok and {i.call_type for i in planned.items} >= {"track", "identify"}
    queue = WorkQueue.of(here)
    try:
        messages = {}
        while (m := queue.receive(30)) is not None:
            messages[WorkItem.from_text(m.content).call_type] = m
        # track's item runs; then the settings point at another container while identify's waits
        handle(messages["track"].content, here, queue=queue, destinations=[("default", Sequence(), here)],
               clients_kwargs={"etl_kwargs": FAST_ETL})
        before = snapshot(harness.blobs())
        with pytest.raises(StateConflictError, match=r"the settings now reach .* only: point them back"):
            handle(messages["identify"].content, there, queue=queue, destinations=[("default", Sequence(), there)],
                   clients_kwargs={"etl_kwargs": FAST_ETL})
        assert _names_in(azurite, other) == []  # nothing landed there
        assert snapshot(harness.blobs()) == before
    finally:
        queue.close()


def test_a_work_item_queued_before_a_blob_path_change_never_splits_a_window_between_two_folders(harness):
    # Queue mode: each type's chain runs alone, so types are uneven whenever items are in flight.
    # track's W0 lands in the old folder; then BLOB_PATH changes while the other types' W0 items
    # wait. Moved now, their W0 would land in the new folder and W0's manifest, built there, would
    # wait forever for track's file, which is not there: the move waits until the types are even.
    import uuid

    import pytest

    from shared.errors import StateConflictError
    from shared.planning import plan
    from shared.sequence import Sequence
    from shared.work_item import WorkItem
    from shared.work_queue import WorkQueue
    from shared.worker import handle
    from tests.support.runs import FAST_ETL, at

    harness.source.add(make_window_calls(W0, per_type={"track": 2, "identify": 1}, seed=26))
    harness.env.update(START, EXPORT_QUEUE=f"q{uuid.uuid4().hex[:20]}", EXPORT_MODE="queue")
    here = harness.settings()
    there = harness.settings(BLOB_PATH="moved")
    planned = plan(here, at("2026-11-28T12:11:01Z"), destinations=[("default", Sequence(), here)])
    assert planned.ok
    queue = WorkQueue.of(here)
    try:
        messages = {}
        while (m := queue.receive(30)) is not None:
            messages[WorkItem.from_text(m.content).call_type] = m
        handle(messages["track"].content, here, queue=queue, destinations=[("default", Sequence(), here)],
               clients_kwargs={"etl_kwargs": FAST_ETL})
        before = snapshot(harness.blobs())
        rows = state_rows(harness)
        refusal = r"in the folder exports/segment by track but not yet by identify.*point BLOB_PATH back at exports/seg"
        with pytest.raises(StateConflictError, match=refusal):
            handle(messages["identify"].content, there, queue=queue, destinations=[("default", Sequence(), there)],
                   clients_kwargs={"etl_kwargs": FAST_ETL})
        assert not [n for n in harness.blobs() if n.startswith("moved/")]  # nothing landed there
        assert snapshot(harness.blobs()) == before
        assert state_rows(harness) == rows
        # Back in the old folder the others catch up; W0's manifest is written there, by its files.
        for t, m in messages.items():
            if t != "track":
                handle(m.content, here, queue=queue, destinations=[("default", Sequence(), here)],
                       clients_kwargs={"etl_kwargs": FAST_ETL})
        assert [n for n in harness.blobs() if "/_manifests/" in n] == [
            "exports/segment/_manifests/2184.13699.20261128T1200Z.json"]
    finally:
        queue.close()
