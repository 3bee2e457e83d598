"""One work item: the handler of the queue-triggered function and of ``work`` (same code).

    message -> the marker says it is the live item? (else: a stale duplicate, dropped)
            -> the type's state row: the truth. Its next window is the one to export: the item's
               window, or (the item is behind: that window is committed; ahead: never skip) the
               row's -> due at the item's horizon? (else the chain ends: marker released)
            -> run that unit (claim, stream, commit: shared/export.run_unit)
            -> committed: move the marker to the next window and send its item, if it is due
               at the horizon; else release the marker.

An item of a backfill's chain (``item.backfill``) reads the recorded definition and runs with
the backfill's settings, rows and scope (shared/backfill_chains.py): its next window is the
scope's, and the chain ends at the backfill's end.

How each ending is acknowledged (docs/design.md, "Plan, queue, work"):

- committed, empty, stale duplicate, chain ended, window not closed: the message is completed;
- BUSY (another instance holds the claim right now): the item is sent again, visible after one
  lease, and the marker kept: when it comes back the row says whether the other instance
  committed (the chain goes on) or not (the unit runs);
- a transient failure (ETL API 5xx past its retries, storage unreachable): completed and the
  marker released; the next plan plans it again (as the next tick retried a failed window);
- a permanent error (bad settings, a refused token, an unreadable row, an unreadable message):
  raised, so the host retries it and, after ``maxDequeueCount``, moves it to the poison queue;
  its marker goes stale and the first plan after two leases plans the unit again.

The first touch of the marker is one conditional write when the message carries the marker's
ETag (shared/work_markers.py ``take``); the pin and the type's row are read directly when it
carries the pinned ids (shared/export.py ``pinned_positions``). While the unit runs, a heartbeat touches the marker
(and, under ``work``, renews the message's lease) every third of a lease, so a long unit is
neither planned again nor delivered twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from shared.backfill_chains import Track, backfill_track
from shared.clients import Clients, build_clients, close_clients
from shared.errors import WindowNotClosed
from shared.etl_client import Destination
from shared.export import pinned_positions, positions, run_unit
from shared.planned import PlannedDestination, planned_destination
from shared.planning import marker_store
from shared.sequence import Sequence
from shared.settings import Settings
from shared.summary import UnitStatus
from shared.telemetry import (
    backfill_windows,
    bind_log_context,
    reset_log_context,
    unit_duration,
    units_in_flight,
)
from shared.unit import Next
from shared.windows import Window, format_rfc3339
from shared.work_item import WorkItem
from shared.work_markers import Marker, MarkerStore
from shared.work_queue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one message ended: ``status`` is a UnitStatus value or dropped / done / requeued."""

    item: WorkItem
    status: str
    window: datetime | None = None  # the window the unit ran for
    sent: WorkItem | None = None  # the item sent after it (the chain's next, or this one again)
    files: int = 0  # the unit's files (exported or empty: committed)
    calls: int = 0  # the calls in them


def handle(text: str, settings: Settings, *, queue: WorkQueue,
           destinations: list[PlannedDestination] | None = None, renew: Callable[[], None] | None = None,
           wall: Callable[[], float] = time.time, clients_kwargs: dict | None = None) -> Outcome:  # type: ignore[type-arg]
    """Handle one message (its text); see the module's doc. Raises for a permanent error."""
    item = WorkItem.from_text(text)
    markers = marker_store(settings, ensure_table=False)  # the plan that sent the item made the table
    # The item's ids on its log records (positions adds the destination's), undone when it ends.
    context = bind_log_context(run_id=item.chain, destination=item.destination, type=item.call_type)
    try:
        return _handle(item, settings, queue, markers, destinations, renew, wall, clients_kwargs or {})
    finally:
        reset_log_context(context)
        markers.store.service.close()


def _handle(item: WorkItem, settings: Settings, queue: WorkQueue, markers: MarkerStore,  # type: ignore[no-untyped-def]
            destinations, renew, wall, clients_kwargs) -> Outcome:
    # The first touch: one If-Match write with the ETag the message carries (else read + write).
    marker = markers.take(item, wall())
    if marker is None:
        log.info("%s: not the live work item of its chain (a duplicate, or planned again): dropped", item.label())
        return Outcome(item, "dropped")
    if destinations is None:
        own, why = planned_destination(settings, item.destination)
        listed = [own] if own is not None else []
    else:
        listed, why = destinations, "the destination is not planned any more (disabled or removed)"
    found = {name: (seq, s) for name, seq, s in listed}
    if item.destination not in found:
        markers.release(item, marker)
        log.warning("%s: dropped, the next plan plans it again once it can run: %s", item.label(), why)
        return Outcome(item, "dropped")
    sequence, dest_settings = found[item.destination]
    clients = build_clients(dest_settings, **clients_kwargs)
    try:
        with _heartbeat(markers, item, marker, renew, wall, settings.work_lease_seconds) as beat:
            try:
                track = _track(item, dest_settings, clients, sequence)
            except WindowNotClosed as exc:
                markers.release(item, beat.marker)
                log.info("%s: %s", item.label(), exc)
                return Outcome(item, UnitStatus.NOT_CLOSED.value)
            if track is None:
                markers.release(item, beat.marker)
                log.info("%s: no such backfill of this type is recorded in STATE_TABLE: dropped", item.label())
                return Outcome(item, "dropped")
            state = track.state
            start = track.next_start(state.window_end)
            if start is None:  # a backfill's type is done: its chain never passes its end
                markers.release(item, beat.marker)
                return Outcome(item, "done")
            if start != item.window_start:
                # The row is the truth: behind it, the window is committed; ahead of it, the row's
                # window comes first (never skip one).
                log.info("%s: the state row stands at %s; the chain goes on from there", item.label(),
                         format_rfc3339(state.window_end))
                if not item.due(start, dest_settings.settle_seconds):
                    markers.release(item, beat.marker)
                    return Outcome(item, "done")
                if not beat.move(item.at(start)):
                    return Outcome(item, "dropped")
            current = beat.item
            if not current.due(current.window_start, dest_settings.settle_seconds):
                markers.release(current, beat.marker)
                return Outcome(item, "done")
            window = Window.starting(current.window_start)
            started = time.monotonic()
            outcome = "failed"
            attrs = {"destination": item.destination, "type": item.call_type}
            units_in_flight.add(1, attrs)
            try:
                step = run_unit(track.settings, track.clients, track.dest, state, window, uuid.uuid4().hex)
                outcome = step.result.status.value
            finally:
                units_in_flight.add(-1, attrs)
                unit_duration.record(time.monotonic() - started, {**attrs, "outcome": outcome})
    finally:
        close_clients(clients)
    known = beat.marker
    done = {"files": len(step.result.files), "calls": step.result.rows}
    if step.next is Next.NEXT_WINDOW:
        assert step.state is not None
        if item.backfill is not None:  # a backfill's progress, as its inline run records it
            backfill_windows.add(1, {"backfill": item.backfill, "type": item.call_type})
        return Outcome(item, outcome, current.window_start,
                       _go_on(current, track.next_start(step.state.window_end), dest_settings, queue, markers,
                              wall, known), **done)
    if step.result.status is UnitStatus.BUSY:
        touched = markers.touch(current, wall(), known)
        again = current if touched is None else current.sent_with(touched.etag)
        queue.send(again.to_text(), delay_seconds=settings.work_lease_seconds)
        log.info("%s: another instance holds its claim; the item comes back in one lease", current.label())
        return Outcome(item, outcome, current.window_start, current)
    # not closed, or a transient failure: the next plan plans it again
    markers.release(current, known)
    return Outcome(item, outcome, current.window_start)


def _go_on(current: WorkItem, next_start: datetime | None, dest_settings: Settings, queue: WorkQueue,
           markers: MarkerStore, wall: Callable[[], float], known: Marker | None) -> WorkItem | None:
    """After a commit: the chain's next item (sent), or None (released: nothing more due at the
    horizon, or ``next_start`` None: a backfill's type reached its end)."""
    if next_start is None or not current.due(next_start, dest_settings.settle_seconds):
        markers.release(current, known)
        return None
    following = current.at(next_start)
    moved = markers.advance(current, following, wall(), known)
    if moved is None:
        return None  # a duplicate of this item moved the chain first, or a plan replaced it
    queue.send(following.sent_with(moved.etag).to_text())
    return following


def _track(item: WorkItem, dest_settings: Settings, clients: Clients, sequence: Sequence) -> Track | None:
    """What the item's unit runs with: the live export's row and settings, or (an item of a
    backfill's chain) the recorded backfill's (shared/backfill_chains.py); None: no such backfill."""
    if item.backfill is not None:
        return backfill_track(dest_settings, clients, item)
    # An item carrying the pinned ids reads the pin and its row alone (no GET /v1/destination).
    read = None if item.ids is None else pinned_positions(dest_settings, clients, item.horizon, sequence,
                                                          item.call_type, Destination(*item.ids))
    dest, states = read or positions(dest_settings, clients, item.horizon, sequence, (item.call_type,),
                                     ensure_table=False)
    return Track(dest_settings, clients, dest, states[item.call_type], None)


class _Beat:
    """The item the unit runs for and its marker as last written (shared with the heartbeat)."""

    def __init__(self, markers: MarkerStore, item: WorkItem, marker: Marker | None,
                 wall: Callable[[], float]) -> None:
        self.markers = markers
        self.item = item
        self.marker = marker
        self.wall = wall
        self.lock = threading.Lock()

    def move(self, following: WorkItem) -> bool:
        """Re-point the chain (and the heartbeat) to ``following``."""
        with self.lock:
            moved = self.markers.advance(self.item, following, self.wall(), self.marker)
            if moved is None:
                return False
            self.item, self.marker = following, moved
            return True

    def touch(self) -> None:
        with self.lock:
            touched = self.markers.touch(self.item, self.wall(), self.marker)
            if touched is not None:
                self.marker = touched


@contextmanager
def _heartbeat(markers: MarkerStore, item: WorkItem, marker: Marker, renew: Callable[[], None] | None,
               wall: Callable[[], float], lease_seconds: int) -> Iterator[_Beat]:
    """Touch the marker (just touched: ``marker``) and renew the message every third of a lease
    until the block ends."""
    beat = _Beat(markers, item, marker, wall)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(lease_seconds / 3):
            try:
                if renew is not None:
                    renew()
                beat.touch()
            except Exception as exc:  # the next beat tries again; the unit goes on
                log.warning("%s: heartbeat failed: %s", beat.item.label(), exc)

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield beat
    finally:
        stop.set()
        thread.join()
