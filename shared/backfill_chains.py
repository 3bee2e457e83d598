"""Backfills (and replays) through the work queue: their chains, planned and worked like the live
export's (docs/design.md, "Plan, queue, work").

A recorded backfill of a destination is its own sequence, ``Sequence(destination, id)``; in queue
mode each plan gives each of its types one live chain (marker RowKey
``{destination}~{id}~{type}``, apart from the live chain's ``{destination}~{type}``, so neither
ever blocks the other). A chain's windows are those of the backfill's scope
(shared/backfill.py: ``Scope.next_start``), from where its type row stands, never one ending
after its end; the definition is read from STATE_TABLE by the plan and again by every work item
(the message only names it). The unit runs with the backfill's settings, clients and rows as
``run_backfill`` builds them (shared/backfill_run.py: :func:`prepared`), so the scope rules are
written once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.backfill import Definition, Scope
from shared.backfill_run import definitions, prepared, recorded
from shared.clients import Clients
from shared.errors import ExportError
from shared.etl_client import Destination
from shared.export import backfill_positions
from shared.manifests import ManifestChain
from shared.planner import Due
from shared.settings import Settings
from shared.state_store import TypeState
from shared.windows import WINDOW, latest_due_end
from shared.work_item import WorkItem
from shared.work_markers import Marker, MarkerStore
from shared.work_queue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Track:
    """What one work item runs with: the live export's row, or a backfill's (settings in its
    folder, clients reading what it reads, its scope)."""

    settings: Settings  # the destination's, in the backfill's folder
    clients: Clients
    dest: Destination
    state: TypeState
    scope: Scope | None  # None: the live export's (every window, no end)

    def next_start(self, window_end: datetime) -> datetime | None:
        """The chain's next window for a row standing at ``window_end``; None: a backfill's range
        is done for this type."""
        return window_end if self.scope is None else self.scope.next_start(self.state.call_type, window_end)


def backfill_track(dest_settings: Settings, clients: Clients, item: WorkItem) -> Track | None:
    """The track of a backfill item, from the recorded definition; None when no backfill of that
    id is recorded for the destination or it does not export the item's type (the item is dropped).
    A definition row that does not read raises StateConflictError (permanent)."""
    assert item.backfill is not None
    definition = recorded(clients.state, item.destination, item.backfill)
    if definition is None or item.call_type not in definition.types:
        return None
    run_settings, run_clients, scope = prepared(dest_settings, clients, definition)
    dest, states = backfill_positions(run_clients, definition.sequence, scope, (item.call_type,))
    return Track(run_settings, run_clients, dest, states[item.call_type], scope)


def due_backfill_items(states: Mapping[str, TypeState], scope: Scope, markers: Mapping[str, Marker | None],
                       now: datetime, settle_seconds: int, wall: float, lease_seconds: int) -> list[Due]:
    """The types of one backfill to plan at ``now`` (pure): its next window in scope, due, and no
    live item (no marker, or a stale one)."""
    out: list[Due] = []
    last_end = min(scope.end, latest_due_end(now, settle_seconds))
    for call_type, state in states.items():
        start = scope.next_start(call_type, state.window_end)
        if start is None or start + WINDOW > last_end:
            continue  # its range is done for this type, or (never for a recorded range) not due
        marker = markers.get(call_type)
        if marker is None:
            out.append(Due(call_type, start))
        elif marker.stale(wall, lease_seconds):
            out.append(Due(call_type, start, marker))
    return out


def plan_backfill(name: str, definition: Definition, dest_settings: Settings, clients: Clients, now: datetime,
                  queue: WorkQueue, markers: MarkerStore, wall: Callable[[], float],
                  lease_seconds: int) -> list[WorkItem]:
    """Start the chains of one recorded backfill of destination ``name`` that are due and not live:
    the items sent. Its rows are created at its start if new and its manifest chain started (in
    its folder), as its run does."""
    run_settings, run_clients, scope = prepared(dest_settings, clients, definition)
    dest, states = backfill_positions(run_clients, definition.sequence, scope)
    key = definition.sequence.state_key(dest.integration_id, dest.action_id)
    ManifestChain(clients.blobs.at_path(run_settings.blob_path), clients.state, dest, key).start(states)
    sent: list[WorkItem] = []
    marks = {t: markers.get(WorkItem(name, t, scope.start, now, "x", definition.id).key) for t in states}
    for due in due_backfill_items(states, scope, marks, now, dest_settings.settle_seconds, wall(), lease_seconds):
        item = WorkItem(name, due.call_type, due.window_start, now, uuid.uuid4().hex, definition.id)
        if not markers.start(item, wall(), due.replacing):
            continue  # another plan got there first: its item is the live one
        if due.replacing is not None:
            log.warning("%s: its work item made no progress for two leases (lost, poisoned or its worker "
                        "died): planned again", item.label())
        try:
            queue.send(item.to_text())
        except ExportError:
            markers.release(item)  # no message, no marker: the next plan plans it
            raise
        sent.append(item)
    return sent


def plan_backfills(name: str, dest_settings: Settings, clients: Clients, now: datetime, queue: WorkQueue,
                   markers: MarkerStore, wall: Callable[[], float], lease_seconds: int,
                   ) -> tuple[list[WorkItem], list[tuple[str, str]]]:
    """Plan every recorded backfill and replay of destination ``name``: the items sent and, apart,
    (label, one line) of each that could not be planned (the others are planned all the same).
    Raises the ExportError of a definitions partition that cannot be read."""
    items: list[WorkItem] = []
    errors: list[tuple[str, str]] = []
    for definition in definitions(clients.state, name):
        if definition.destination != name:
            continue
        try:
            if _finished(clients, definition):
                continue
            items += plan_backfill(name, definition, dest_settings, clients, now, queue, markers, wall,
                                   lease_seconds)
        except ExportError as exc:
            errors.append((definition.sequence.label(), str(exc)))
            log.error("%s was not planned: %s", definition.sequence.label(), exc)
    return items, errors


def _finished(clients: Clients, definition: Definition) -> bool:
    """Whether every type of the backfill stands at its end with no claim (read from its rows
    alone, without the ETL API or a listing): a finished backfill costs a plan a few reads."""
    pin = clients.state.get_pin(definition.destination)
    if pin is None:
        return False
    key = definition.sequence.state_key(pin.integration_id, pin.action_id)
    found = [clients.state.get(key, t) for t in definition.types]
    return all(r is not None and r.pending_start is None and r.window_end >= definition.end for r in found)
