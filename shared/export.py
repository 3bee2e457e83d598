"""One export run: every due window, oldest first, for every call type (docs/design.md).

Plain Python: it takes settings, a clock and clients, and imports nothing from azure.functions,
so the timer, the CLI and the tests run the same code. The run plans the due windows and goes
through the units (window, type) in order; a unit's life is :mod:`shared.unit`, the overlap of
its tail with the next unit is :mod:`shared.finisher`, what happened is :mod:`shared.summary`.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import assert_never

from shared.backfill import Scope
from shared.calltypes import CALL_TYPES
from shared.clients import Clients
from shared.errors import ExportError, StateConflictError, WindowNotClosed
from shared.etl_client import Destination
from shared.finisher import Finisher
from shared.manifests import MAX_PER_CALL, ManifestChain
from shared.memory import frozen_gc, tune_allocator
from shared.pinning import pin_destination, pinned_for_backfill
from shared.recipe import Recipe
from shared.sequence import LIVE_DEFAULT, Sequence
from shared.settings import Settings
from shared.start import first_start
from shared.state_store import DestinationPin, TypeState
from shared.summary import RunSummary, UnitResult, UnitStatus
from shared.telemetry import (
    annotate,
    annotate_destination,
    backfill_windows,
    bind_log_context,
    error_status,
    failed_runs,
    record_export_lag,
    reset_log_context,
    run_duration,
    tracer,
)
from shared.unit import Next, Step, Unit
from shared.windows import WINDOW, Window, due_windows, format_rfc3339

log = logging.getLogger(__name__)


def run_export(
    settings: Settings,
    clients: Clients,
    now: datetime,
    *,
    run_id: str | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sequence: Sequence = LIVE_DEFAULT,
    scope: Scope | None = None,
) -> RunSummary:
    """Export every due window (oldest first, at most ``max_windows_per_run``) for every type.

    ``sequence`` says whose state rows these are (shared/sequence.py): the live export of the
    destination ``default`` unless told otherwise. A backfill's sequence comes with its ``scope``
    (shared/backfill.py: where its rows start, the end no window passes, its types) and the
    settings of its files (its folder as ``blob_path``); it reads the live destination's pin and
    never writes it, and sets no lag gauge (shared/backfill_run.py builds both).

    Never raises for a failed window: the summary says what failed and the state did not move
    past it. Permanent errors (token, permissions, a foreign blob in the way) stop the run and
    are reported in ``summary.error``.
    """
    if sequence.live != (scope is None):
        raise ValueError("a backfill's sequence runs with its scope, the live one without")
    run_id = run_id or uuid.uuid4().hex
    tune_allocator()
    started = monotonic()
    summary = RunSummary(run_id=run_id, destination=None, now=now)
    log_context = bind_log_context(run_id=run_id)
    with tracer.start_as_current_span("export.run") as span, frozen_gc():
        annotate(span, run_id=run_id, format=settings.export_format)
        if sequence.backfill is not None:
            annotate(span, backfill=sequence.backfill)
        try:
            _run(settings, clients, now, summary, started + settings.run_budget_seconds, monotonic,
                 sequence, scope)
        except ExportError as exc:
            summary.error = str(exc)
            log.error("export run stopped: %s", exc)
        annotate(span, rows=summary.rows, files=len(summary.files), rejected=summary.rejected,
                 bytes=sum(f.bytes for f in summary.files), windows=len({u.window for u in summary.units}))
        if not summary.ok:
            span.set_status(error_status(summary.error or "a window failed"))
            failed_runs.add(1)
    run_duration.record(monotonic() - started, {"outcome": "ok" if summary.ok else "failed"})
    reset_log_context(log_context)
    return summary


def _run(settings: Settings, clients: Clients, now: datetime, summary: RunSummary, deadline: float,
         monotonic: Callable[[], float], sequence: Sequence, scope: Scope | None) -> None:
    try:
        if scope is None:
            dest, states = _positions(settings, clients, now, summary, sequence)
        else:
            dest, states = _backfill_positions(clients, summary, sequence, scope)
    except WindowNotClosed as exc:  # a new destination whose first window is far from closed
        assert exc.window is not None and exc.call_type is not None
        log.warning("%s", exc)
        summary.units.append(UnitResult(exc.window, exc.call_type, UnitStatus.NOT_CLOSED, error=str(exc)))
        return
    # The manifest chain starts before any unit of a new sequence commits (shared/manifests.py),
    # in the sequence's folder (a backfill's settings carry it as blob_path).
    key = sequence.state_key(dest.integration_id, dest.action_id)
    # (and catches up the manifests a crash left unwritten)
    ManifestChain(clients.blobs.at_path(settings.blob_path), clients.state, dest, key).resume(
        states, Recipe.of(settings))
    if scope is None:
        plan = _plan(states, now, settings)
    else:
        plan = [Window.starting(s) for s in scope.plan(
            {t: s.window_end for t, s in states.items()}, now, settings.settle_seconds,
            settings.max_windows_per_run)]
    types = CALL_TYPES if scope is None else scope.types

    def next_start(call_type: str) -> datetime | None:
        window_end = states[call_type].window_end
        return window_end if scope is None else scope.next_start(call_type, window_end)
    log.info("export run %s for %s: %d window(s) due", summary.run_id, dest.key, len(plan),
             extra={"integration_id": dest.integration_id, "action_id": dest.action_id})
    stopped: set[str] = set()  # types that wait for the next run

    def land(step: Step) -> None:
        summary.units.append(step.result)
        match step.next:
            case Next.NEXT_WINDOW:
                assert step.state is not None
                states[step.result.call_type] = step.state
                if sequence.backfill is not None:
                    backfill_windows.add(1, {"backfill": sequence.backfill, "type": step.result.call_type})
            case Next.STOP:
                stopped.add(step.result.call_type)
            case Next.FINISH:
                raise AssertionError("a streamed unit goes to the finisher, not to the summary")
            case _:
                assert_never(step.next)

    with Finisher(land) as finisher:
        for window in plan:
            for call_type in types:
                finisher.wait(call_type)  # its next window needs the state its tail commits
                if call_type in stopped or next_start(call_type) != window.start:
                    continue
                if monotonic() > deadline:
                    finisher.wait()
                    summary.stopped_by_budget = True
                    log.warning("run budget of %ss spent; the rest is left for the next run",
                                settings.run_budget_seconds)
                    return
                unit = Unit(settings, clients, dest, states[call_type], window, summary.run_id)
                step = unit.start()
                with unit:  # abandoned if the previous tail fails as it lands
                    finisher.wait()  # the previous tail lands before this unit's result
                if step.next is Next.FINISH:
                    finisher.submit(unit)
                else:
                    land(step)
        finisher.wait()
    if scope is None:
        record_export_lag(now, {t: s.window_end for t, s in states.items()}, destination=sequence.destination)


def _positions(settings: Settings, clients: Clients, now: datetime, summary: RunSummary,
               sequence: Sequence) -> tuple[Destination, dict[str, TypeState]]:
    dest, states = positions(settings, clients, now, sequence)
    summary.destination = dest
    return dest, states


def positions(settings: Settings, clients: Clients, now: datetime, sequence: Sequence = LIVE_DEFAULT,
              call_types: tuple[str, ...] = CALL_TYPES, *, ensure_table: bool = True,
              ) -> tuple[Destination, dict[str, TypeState]]:
    """The pinned destination and the state row of each of ``call_types`` (created at the
    destination's start if new): what a run, a plan and a work item start from. A work item
    skips creating the table (``ensure_table`` False): the plan that sent it did."""
    remote = clients.etl.destination()
    store = clients.state
    if ensure_table:
        store.ensure_table()
    # The rows are keyed by the ids pinned on first use, never by the answer of the day; a new pin
    # records the start before any row, so a row created by a later run starts at the same instant.
    here = Recipe.of(settings)
    start = functools.cache(lambda: first_start(settings, clients.etl, now))

    def finish_old_place(old: DestinationPin) -> None:
        # A window's files are in one place: nothing moves while a window is started or partly
        # committed in the old place (the other types' files of it would land in the new one, and
        # its manifest, built in either, would wait forever for the files of the other).
        key = sequence.state_key(old.integration_id, old.action_id)
        folder = old.container == here.container
        if folder:
            # Windows committed in the old folder whose manifest a crash left unwritten get it
            # there now: their files are there, and the new folder cannot find them.
            chain = ManifestChain(clients.blobs.at_path(old.blob_path), store,
                                  Destination(old.integration_id, old.action_id), key)
            while len(chain.complete(here)) == MAX_PER_CALL:
                pass
        cursor, rows = store.get_cursor(key), store.type_rows(key)
        if not rows:
            return
        if folder:
            where, back = (f"the folder {old.blob_path or '(the container root)'}",
                           f"BLOB_PATH now says {here.blob_path or '(empty)'}: point BLOB_PATH back at "
                           f"{old.blob_path or '(empty)'}")
        else:
            where, back = (f"the container {old.container}", f"the settings now reach {here.container} only: "
                           f"point them back at {old.container}")
        least = min(r.window_end for r in rows.values())
        most = max(r.window_end for r in rows.values())
        pending = [(r.call_type, started) for t in CALL_TYPES
                   if (r := rows.get(t)) is not None and (started := r.pending_start) is not None]
        if pending:
            # Checked before the move, not by the unit after it: the types before it in the run
            # would put their files of the window in the new place first (a split window).
            call_type, started = pending[0]
            window = Window(started, started + WINDOW)
            raise StateConflictError(
                f"{call_type} {window.label()} was started in {where} but " + (
                    f"BLOB_PATH now says {here.blob_path or '(empty)'}: point BLOB_PATH back at "
                    f"{old.blob_path or '(empty)'}" if folder else
                    f"the settings now point at {here.container}: point BLOB_SAS_URL (or "
                    "BLOB_ACCOUNT_URL/BLOB_CONTAINER) back at the first one") + " until `status` shows no pending "
                "window, then switch (docs/operations.md, 'Moving the export'); nothing was exported",
                window=window, call_type=call_type)
        if not folder and cursor is not None and cursor.window_end < least:
            # Another container: the settings reach only the new one, so owed manifests cannot be
            # written where their files are.
            raise StateConflictError(
                f"the windows {format_rfc3339(cursor.window_end)}..{format_rfc3339(least)} of {key} were committed "
                f"in the container {old.container}, but their manifests are not written yet (a run stopped in "
                f"between) and the settings now reach {here.container} only: point them back at {old.container}, "
                "run once so the manifests are written there, then switch (docs/operations.md, 'Moving the "
                "export'); nothing was exported")
        if most > least:
            # Types ahead of the others (a run stopped by its budget or a failure between them;
            # in queue mode each type's chain runs alone, so whenever work items are in flight).
            ahead = [t for t in CALL_TYPES if t in rows and rows[t].window_end > least]
            behind = [t for t in CALL_TYPES if t in rows and rows[t].window_end == least]
            raise StateConflictError(
                f"the windows {format_rfc3339(least)}..{format_rfc3339(most)} of {key} were committed in {where} "
                f"by {', '.join(ahead)} but not yet by {', '.join(behind)} (a run stopped in between, or work "
                f"items in flight) and {back}, run until `status` shows every type at the same window, then "
                "switch (docs/operations.md, 'Moving the export'); nothing was exported")

    pin = pin_destination(store, remote, container=here.container, blob_path=here.blob_path, start=start,
                          name=sequence.destination, before_move=finish_old_place)
    dest = Destination(pin.integration_id, pin.action_id)
    annotate_destination(dest.integration_id, dest.action_id)
    key = sequence.state_key(dest.integration_id, dest.action_id)
    # One query for the partition's rows when more than one type is wanted (a run, a plan).
    rows = store.type_rows(key) if len(call_types) > 1 else {}
    found = {t: rows.get(t) if len(call_types) > 1 else store.get(key, t) for t in call_types}
    states: dict[str, TypeState] = {}
    for t, state in found.items():
        # EXPORT_START first (a type started over), then the pin's start; pins of earlier versions
        # have none: the window due now, as those versions did.
        states[t] = state or store.create(key, t, settings.export_start or pin.start or start())
    record_export_lag(now, {t: s.window_end for t, s in states.items()}, destination=sequence.destination)
    return dest, states


def pinned_positions(settings: Settings, clients: Clients, now: datetime, sequence: Sequence, call_type: str,
                     dest: Destination) -> tuple[Destination, dict[str, TypeState]] | None:
    """A work item's position when it carries its destination's pinned ids (shared/work_item.py):
    the type's state row read directly, without ``GET /v1/destination`` (the plan that started the
    chain checked the ids, and a pin's ids never change). None when the row is not there, or when
    the pin's place is not the settings' (the export is moving: an item queued before the change
    must not write into the new place before the move is checked): then :func:`positions`, which
    creates the row, or moves the pin or refuses the move."""
    here = Recipe.of(settings)
    pin = clients.state.get_pin(sequence.destination)
    if pin is None or (pin.container, pin.blob_path) != (here.container, here.blob_path):
        return None
    annotate_destination(dest.integration_id, dest.action_id)
    state = clients.state.get(sequence.state_key(dest.integration_id, dest.action_id), call_type)
    if state is None:
        return None
    record_export_lag(now, {call_type: state.window_end}, destination=sequence.destination)
    return dest, {call_type: state}


def _backfill_positions(clients: Clients, summary: RunSummary, sequence: Sequence,
                        scope: Scope) -> tuple[Destination, dict[str, TypeState]]:
    dest, states = backfill_positions(clients, sequence, scope)
    summary.destination = dest
    return dest, states


def backfill_positions(clients: Clients, sequence: Sequence, scope: Scope,
                       call_types: tuple[str, ...] | None = None) -> tuple[Destination, dict[str, TypeState]]:
    """A backfill's rows (created at the start of its range), keyed and named by the live
    destination's pin, which it only reads: what a backfill's run, its plan and its work items
    start from. ``call_types``: some of the scope's types (default: all of them)."""
    store = clients.state
    store.ensure_table()
    pin = pinned_for_backfill(store, clients.etl.destination(), sequence)
    dest = Destination(pin.integration_id, pin.action_id)
    annotate_destination(dest.integration_id, dest.action_id)
    key = sequence.state_key(dest.integration_id, dest.action_id)
    types = scope.types if call_types is None else call_types
    return dest, {t: store.get(key, t) or store.create(key, t, scope.start) for t in types}


def run_unit(settings: Settings, clients: Clients, dest: Destination, state: TypeState, window: Window,
             run_id: str) -> Step:
    """One (window, type) from its claim to its state commit, on this thread (a work item's unit:
    the run overlaps a unit's tail with the next unit instead). The Step says how it ended:
    NEXT_WINDOW with the committed state, or STOP (busy, not closed, failed). A permanent error
    raises, as in a run."""
    unit = Unit(settings, clients, dest, state, window, run_id)
    step = unit.start()
    if step.next is not Next.FINISH:
        return step
    with unit:  # abandoned if its tail raises
        return unit.finish()


def _plan(states: dict[str, TypeState], now: datetime, settings: Settings) -> list[Window]:
    """The run's windows: the union of each type's due windows, oldest first, capped."""
    windows: set[Window] = set()
    for state in states.values():
        windows.update(due_windows(state.window_end, now, settings.settle_seconds,
                                   settings.max_windows_per_run))
    return sorted(windows)[: settings.max_windows_per_run]
