"""A plan: what the timer does in queue mode and ``python -m shared.cli plan`` prints.

For every planned destination (shared/planned.py): read its positions (the pin and its type rows,
created at the destination's start if new, as a run does), then for every type whose next window
is due at ``now`` and that has no live work item (shared/planner.py), write the marker and send one
message (shared/work_item.py) on EXPORT_QUEUE; then the same for each type of each recorded,
unfinished backfill and replay of the destination (shared/backfill_chains.py). The marker is
written before the message: a message sent without its marker could start a second chain, a
marker without its message (a crash in between) is planned again after two leases. Then record the queue's gauges.

One destination's failure (its ETL API refuses the token, its state row is unreadable) is
reported and the others are planned all the same.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.backfill_chains import plan_backfills
from shared.clients import build_clients, close_clients
from shared.errors import ExportError, WindowNotClosed
from shared.export import positions
from shared.manifests import ManifestChain
from shared.planned import PlannedDestination, planned
from shared.planner import due_items, held_items
from shared.recipe import Recipe
from shared.settings import Settings
from shared.state_store import StateStore, make_table_service
from shared.telemetry import bind_log_context, record_queue_depth, reset_log_context
from shared.work_item import WorkItem
from shared.work_markers import MarkerStore
from shared.work_queue import QueueDepth, WorkQueue

log = logging.getLogger(__name__)


@dataclass
class PlanResult:
    items: list[WorkItem] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (destination, one line)
    waiting: list[tuple[str, str]] = field(default_factory=list)  # (destination, why nothing is due)
    #: (destination, type, Unix time it is planned again at the latest): due, but a live item holds it
    held: list[tuple[str, str, float]] = field(default_factory=list)
    depth: QueueDepth | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def marker_store(settings: Settings, *, ensure_table: bool = True) -> MarkerStore:
    """The markers, in the app's STATE_TABLE (created if absent, unless ``ensure_table`` is False:
    a worker's, whose plan created it)."""
    store = StateStore(make_table_service(settings.storage_connection, settings.table_service_uri),
                       settings.state_table)
    if ensure_table:
        store.ensure_table()
    return MarkerStore(store)


def plan(settings: Settings, now: datetime, *, destinations: list[PlannedDestination] | None = None,
         queue: WorkQueue | None = None, wall: Callable[[], float] = time.time,
         clients_kwargs: dict | None = None) -> PlanResult:  # type: ignore[type-arg]
    """Plan every due (destination, type) without a live item at ``now``; see the module's doc."""
    result = PlanResult()
    own_queue = queue is None
    queue = queue or WorkQueue.of(settings)
    markers = marker_store(settings)
    try:
        queue.ensure()
        if destinations is None:
            destinations, unplanned = planned(settings)
            result.errors.extend(unplanned)
            for name, error in unplanned:
                log.error("destination %s was not planned: %s", name, error)
        live = {m.key: m for m in markers.all()}  # one query; every write on them is conditional
        for name, sequence, dest_settings in destinations:
            try:
                _plan_destination(name, sequence, dest_settings, now, settings, queue, markers, live, wall,
                                  result, clients_kwargs or {})
            except WindowNotClosed as exc:
                result.waiting.append((name, str(exc)))
                log.info("destination %s: %s", name, exc)
            except ExportError as exc:
                result.errors.append((name, str(exc)))
                log.error("destination %s was not planned: %s", name, exc)
        result.depth = queue.depth()
        record_queue_depth(result.depth.queue, result.depth.messages, result.depth.oldest_age_seconds,
                           result.depth.poison)
    finally:
        markers.store.service.close()
        if own_queue:
            queue.close()
    log.info("plan at %s: %d work item(s) sent", now.isoformat(), len(result.items))
    return result


def _plan_destination(name, sequence, dest_settings, now, settings, queue, markers, live, wall, result,  # type: ignore[no-untyped-def]
                      clients_kwargs) -> None:
    clients = build_clients(dest_settings, **clients_kwargs)
    context = bind_log_context(destination=name)  # positions adds the ids; all undone here
    try:
        dest, states = positions(dest_settings, clients, now, sequence)
        # The manifest chain starts before any unit of a new sequence commits (shared/manifests.py),
        # and catches up the manifests a crash left unwritten.
        ManifestChain(clients.blobs.at_path(dest_settings.blob_path), clients.state, dest,
                      sequence.state_key(dest.integration_id, dest.action_id)).resume(
            states, Recipe.of(dest_settings))
    finally:
        reset_log_context(context)
        close_clients(clients)
    marks = {t: live.get(f"{name}~{t}") for t in states}
    held = held_items(states, marks, now, dest_settings.settle_seconds, wall(), settings.work_lease_seconds)
    result.held.extend((name, t, until) for t, until in held.items())
    for due in due_items(states, marks, now, dest_settings.settle_seconds, wall(), settings.work_lease_seconds):
        # The ids this plan checked the pin with ride along (a hint: a worker reads its row by them).
        item = WorkItem(name, due.call_type, due.window_start, now, uuid.uuid4().hex,
                        integration_id=dest.integration_id, action_id=dest.action_id)
        marker = markers.start(item, wall(), due.replacing)
        if marker is None:
            continue  # another plan got there first: its item is the live one
        if due.replacing is not None:
            log.warning("%s: its work item made no progress for two leases (lost, poisoned or its worker "
                        "died): planned again", item.label())
        try:
            queue.send(item.sent_with(marker.etag).to_text())
        except ExportError:
            markers.release(item)  # no message, no marker: the next plan plans it
            raise
        result.items.append(item)
    _plan_backfills(name, dest_settings, now, settings, queue, markers, wall, result, clients_kwargs)


def _plan_backfills(name, dest_settings, now, settings, queue, markers, wall, result,  # type: ignore[no-untyped-def]
                    clients_kwargs) -> None:
    """The chains of the destination's recorded backfills and replays (shared/backfill_chains.py)."""
    clients = build_clients(dest_settings, **clients_kwargs)
    context = bind_log_context(destination=name)
    try:
        items, errors = plan_backfills(name, dest_settings, clients, now, queue, markers, wall,
                                       settings.work_lease_seconds)
    finally:
        reset_log_context(context)
        close_clients(clients)
    result.items.extend(items)
    result.errors.extend(errors)
