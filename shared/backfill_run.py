"""Running a backfill or a replay: its definition recorded once, then the same units as the live
export (:func:`shared.export.run_export` with the backfill's sequence and scope).

:func:`record` writes the definition at the first run (insert-if-absent) and refuses another one
under the same id. :func:`run_backfill` is one run of a recorded backfill (what a work queue
message would carry: the definition's id); :func:`drive` repeats it until the range is done or a
run stops, as the CLI does. The live sequence is never touched: the backfill has its own rows,
its own folder, and reads the live pin without writing it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from shared.backfill import BACKFILLS_PARTITION, Definition, Progress, Scope, backfill_of_row, progress, row_key
from shared.blob_store import BlobStore, container_location
from shared.clients import Clients
from shared.errors import StateConflictError
from shared.etl_client import Destination
from shared.export import run_export
from shared.recipe import Recipe, UnreadableRecipe, recipe_diff, recorded_folder
from shared.replay import ReplaySource, rejected_files
from shared.sequence import Sequence
from shared.settings import Settings
from shared.state_store import StateStore
from shared.summary import RunSummary
from shared.windows import format_rfc3339

log = logging.getLogger(__name__)


def backfill_settings(settings: Settings, sequence: Sequence) -> Settings:
    """The settings its files are written with: the destination's, in the backfill's folder."""
    return replace(settings, blob_path=sequence.folder(settings.blob_path))


def recipe_of(settings: Settings, sequence: Sequence) -> str:
    """The recipe recorded with a backfill's definition (its folder included)."""
    return Recipe.of(backfill_settings(settings, sequence)).to_json()


def recorded(store: StateStore, destination: str, backfill_id: str) -> Definition | None:
    entity = store.get_row(BACKFILLS_PARTITION, row_key(destination, backfill_id))
    return None if entity is None else Definition.from_entity(entity, store.table_name)


def definitions(store: StateStore, destination: str | None = None) -> list[Definition]:
    """Every recorded backfill and replay (of ``destination`` only: another destination's row is
    not read, so one it cannot read is that destination's problem alone), oldest range first."""
    found = [Definition.from_entity(e, store.table_name) for e in store.rows(BACKFILLS_PARTITION)
             if destination is None or backfill_of_row(destination, str(e.get("RowKey", ""))) is not None]
    return sorted(found, key=lambda d: (d.start, d.id))


def record(store: StateStore, wanted: Definition) -> Definition:
    """The recorded definition of ``wanted.id``: written now if it is the first run, else the one
    recorded, which must be ``wanted`` (StateConflictError saying what differs)."""
    store.ensure_table()
    stored = Definition.from_entity(store.insert_row(wanted.to_entity()), store.table_name)
    diff = stored.same_as(wanted)
    if diff is not None:
        raise StateConflictError(
            f"{stored.kind} {stored.id} was started with {stored.range_label()} of {','.join(stored.types)}; "
            f"this run asks for another {diff}: nothing was exported; run it as recorded, or give "
            "the new one its own --id"
        )
    return stored


#: How long a replay may take to look for overlapping replays and record itself (a few requests);
#: a replay that died in between holds the others off this long.
REPLAY_LEASE_SECONDS = 120


@contextmanager
def recording_replay(store: StateStore, destination: str, replay_id: str) -> Iterator[Callable[[], bool]]:
    """Hold the destination's replay lease while a new replay checks for overlapping replays and
    records its definition; StateConflictError when another replay holds it. Yields a check that
    the lease is still ours: a replay slower than its lease may have been taken over by another
    that found it not recorded yet (see :func:`still_leased`)."""
    name, holder = f"replay~{destination}", f"{replay_id}/{uuid.uuid4().hex}"
    held_until = store.take_lease(name, holder, REPLAY_LEASE_SECONDS, datetime.now(UTC))
    if held_until is not None:
        raise StateConflictError(
            f"another replay of destination {destination} is choosing its dead letters right now (its lease "
            f"ends {format_rfc3339(held_until)}): nothing was exported; run this one again after that (two "
            "replays of the same dead letters would export the calls that pass twice)")
    try:
        yield lambda: store.holds_lease(name, holder)
    finally:
        store.release_lease(name, holder)


def still_leased(store: StateStore, wanted: Definition, held: Callable[[], bool]) -> None:
    """Called once a new replay is recorded under its lease: check the lease is still ours. If it
    is, any replay that takes it later finds this one recorded. If it is not (this replay was
    slower than its lease and another may have recorded the same dead letters in between), the
    definition is removed before anything is exported and StateConflictError says to run it again."""
    if not held():
        store.delete_row(BACKFILLS_PARTITION, row_key(wanted.destination, wanted.id))
        raise StateConflictError(
            f"replay {wanted.id} took longer than its lease ({REPLAY_LEASE_SECONDS} s) to choose its dead letters "
            "and another replay may have taken them meanwhile: nothing was exported; run the same command again")


def dead_letter_store(clients: Clients, destination: str, source_id: str = "") -> BlobStore:
    """Where the dead letters a replay reads are (``clients.blobs`` is at the destination's
    folder): the live export's ``_rejected/`` (``source_id`` ""), or those of the backfill or
    replay ``source_id`` (what failed again there), in the folder it was written to (its recorded
    recipe's), in the same container."""
    if not source_id:
        return clients.blobs
    source = recorded(clients.state, destination, source_id)
    if source is None:
        raise StateConflictError(f"destination {destination} has no backfill or replay {source_id} recorded in "
                                 f"STATE_TABLE {clients.state.table_name}: there are no dead letters of it to read; "
                                 "nothing was exported")
    here = container_location(sas_url=clients.blobs.container.url)
    try:
        container, folder = recorded_folder(source.recipe, here, source.sequence.folder(clients.blobs.blob_path))
    except UnreadableRecipe as exc:
        raise StateConflictError(f"{source.kind} {source.id}: its recorded recipe cannot be read ({exc}): nothing "
                                 "was exported; set it back") from None
    if container != here:
        raise StateConflictError(f"{source.kind} {source.id} was written to the container {container}, but destination "
                                 f"{destination}'s settings now reach {here}: point them back at it to "
                                 "replay its dead letters; nothing was exported")
    return clients.blobs.at_path(folder)


def progress_of(clients: Clients, definition: Definition, dest_key: str) -> Progress:
    key = definition.sequence.state_key(*dest_key.split("."))
    rows = {}
    for t in definition.types:
        state = clients.state.get(key, t)
        rows[t] = None if state is None else (state.window_end, state.pending_start is not None)
    windows = replay_windows(clients, definition, dest_key) if definition.kind == "replay" else None
    return progress(definition, rows, windows)


def replay_windows(clients: Clients, definition: Definition, dest_key: str,
                   letters: BlobStore | None = None) -> dict[str, frozenset[datetime]]:
    """A replay's windows, the same for each of its types: those of its range with a dead-letter
    file of any of its types (one listing; the files of its range are final, its end was the live
    export's position, or its source's end). Every type goes through every one (a type without a file there has no calls
    in it), so its types' rows stand together and each window's manifest is written: were each
    type to stop at its own last file, the windows after the first type to stop would never be
    committed by all of them. ``letters``: where its dead letters are, when the caller has it
    (:func:`dead_letter_store`)."""
    types = set(definition.types)
    store = letters or dead_letter_store(clients, definition.destination, definition.source)
    windows = frozenset(f.window_start for f in rejected_files(store, dest_key, definition.start, definition.end)
                        if f.call_type in types)
    return {t: windows for t in definition.types}


def run_backfill(settings: Settings, clients: Clients, now: datetime, definition: Definition,
                 *, run_id: str | None = None) -> RunSummary:
    """One run of a recorded backfill (or replay), bounded like a timer tick."""
    run_settings, run_clients, scope = prepared(settings, clients, definition)
    return run_export(run_settings, run_clients, now, run_id=run_id, sequence=definition.sequence, scope=scope)


def prepared(settings: Settings, clients: Clients, definition: Definition) -> tuple[Settings, Clients, Scope]:
    """What a run or a work item of a recorded backfill (or replay) runs with: the settings of its
    files (its folder), its clients (a replay reads dead-letter files, the live export's or those
    of its ``source``, instead of the ETL API) and its scope."""
    unchanged(settings, definition)
    scope = Scope(definition.start, definition.end, definition.types)
    if definition.kind == "replay":
        pin = clients.state.get_pin(definition.destination)
        if pin is None:
            raise StateConflictError(f"{definition.sequence.label()}: destination {definition.destination!r} "
                                     "has no pin yet: there is nothing of it to replay")
        dest = Destination(pin.integration_id, pin.action_id)
        letters = dead_letter_store(clients, definition.destination, definition.source)
        scope = replace(scope, windows=replay_windows(clients, definition, dest.key, letters))
        clients = replace(clients, etl=ReplaySource(letters, dest))  # type: ignore[arg-type]
    return backfill_settings(settings, definition.sequence), clients, scope


def unchanged(settings: Settings, definition: Definition) -> None:
    """StateConflictError unless the destination's settings of now give the recipe the backfill was
    recorded with: one backfill, one recipe (the inline command refuses the change at its start;
    a work item or a plan, whose settings may have changed since, refuses it here)."""
    now = recipe_of(settings, definition.sequence)
    if now == definition.recipe:
        return
    raise StateConflictError(
        f"{definition.kind} {definition.id} was recorded with other settings than destination "
        f"{definition.destination}'s now ({recipe_diff(definition.recipe, now)}): nothing was exported; set "
        f"them back as recorded, or start a new {definition.kind} under another --id")


def drive(settings: Settings, open_clients: Callable[[], Clients], close: Callable[[Clients], None],
          now: datetime, definition: Definition, report: Callable[[RunSummary], None]) -> RunSummary | None:
    """Run the backfill until its range is done, a run fails or a run moves nothing; each run
    with fresh clients (a run's ETL deadline is its own). The last summary (None: nothing to do)."""
    last: RunSummary | None = None
    while True:
        clients = open_clients()
        try:
            summary = run_backfill(settings, clients, now, definition)
        finally:
            close(clients)
        report(summary)
        last = summary
        if not summary.ok or not any(u.status in ("exported", "empty") for u in summary.units):
            return last
