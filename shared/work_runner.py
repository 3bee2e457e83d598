"""``python -m shared.cli work``: K local processes standing in for Functions instances.

Each process takes one message at a time from EXPORT_QUEUE with the host's semantics: the
message is invisible for WORK_LEASE_SECONDS while its unit runs and the lease is renewed (every
third of a lease) until the handler returns; on success it is deleted; when the handler raises it
becomes visible again after :data:`RETRY_DELAY_SECONDS` (host.json ``visibilityTimeout``), and a
message whose dequeue count reached ``maxDequeueCount`` goes to the poison queue. A process that
dies mid-unit leaves its message invisible until its lease lapses, then another takes it. Each
process exits once the queue (visible and invisible messages) was empty for ``idle_exit`` seconds.

The handler is :func:`shared.worker.handle`, the one the queue-triggered function calls.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ExportError
from shared.planned import PlannedDestination
from shared.settings import Settings
from shared.work_item import BadWorkItem, WorkItem
from shared.work_queue import MAX_DEQUEUE_COUNT, WorkQueue

log = logging.getLogger(__name__)

#: host.json ``extensions.queues.visibilityTimeout``: how long a failed message waits to be retried.
RETRY_DELAY_SECONDS = 2
#: How often an idle process looks at the queue: from the first to the last, doubling while it
#: stays empty (as the host backs off to host.json ``maxPollingInterval``, 2 s).
POLL_SECONDS = (0.05, 1.0)

Destinations = Callable[[Settings], list[PlannedDestination]] | None


#: What a worker committed, per destination (``NAME`` or ``NAME backfill ID``): [units, files, calls].
Tally = dict[str, list[int]]


@dataclass(frozen=True)
class WorkerExit:
    index: int
    exitcode: int | None
    done: Tally = field(default_factory=dict)  # empty when the process died before reporting


def work(settings: Settings, processes: int, idle_exit: float, *, destinations: Destinations = None,
         log_level: int = logging.INFO) -> list[WorkerExit]:
    """Run ``processes`` worker processes until each saw the queue empty for ``idle_exit`` seconds."""
    context = multiprocessing.get_context("spawn")
    reports = context.SimpleQueue()
    procs = [context.Process(target=_process_main, args=(settings, idle_exit, destinations, i, log_level, reports),
                             name=f"work-{i}") for i in range(processes)]
    for p in procs:
        p.start()
    done: dict[int, Tally] = {}
    while True:  # read the reports while the processes run: a big one must not block its sender
        while not reports.empty():
            index, tally = reports.get()
            done[index] = tally
        alive = [p for p in procs if p.is_alive()]
        if not alive:
            break
        alive[0].join(0.2)
    while not reports.empty():
        index, tally = reports.get()
        done[index] = tally
    for p in procs:
        p.join()
    reports.close()
    return [WorkerExit(i, p.exitcode, done.get(i, {})) for i, p in enumerate(procs)]


class _DestinationField(logging.Filter):
    """``%(where)s``: `` NAME`` of the destination whose item the record is about (from the log
    context the worker binds), empty outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        from shared.telemetry import current_log_context

        name = current_log_context().get("destination")
        record.where = f" {name}" if name else ""
        return True


def _process_main(settings: Settings, idle_exit: float, destinations: Destinations, index: int,
                  log_level: int, reports: Any = None) -> None:
    import sys

    from shared.redact import (
        RedactingWriter,
        install_log_redaction,
        register_connection_string,
        register_secret,
        register_url,
    )

    # A spawned process starts with an empty redaction registry: the settings came pickled, not
    # parsed here. Register their secrets before anything can be logged, and scrub what it prints.
    register_secret(settings.etl_api_token)
    for url in (settings.etl_api_endpoint, settings.blob_sas_url, settings.blob_account_url,
                settings.table_service_uri, settings.queue_service_uri):
        register_url(url)
    register_connection_string(settings.storage_connection)
    sys.stdout = RedactingWriter(sys.stdout)
    sys.stderr = RedactingWriter(sys.stderr)
    logging.basicConfig(level=log_level,
                        format=f"%(asctime)s %(levelname)s work-{index}%(where)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DestinationField())
    install_log_redaction()
    from shared.telemetry import quiet_sdk_loggers

    quiet_sdk_loggers()
    tally: Tally = {}
    worker_loop(settings, idle_exit, destinations, tally)
    if reports is not None:
        reports.put((index, tally))


def worker_loop(settings: Settings, idle_exit: float, destinations: Destinations = None,
                tally: Tally | None = None) -> int:
    """Take and handle messages until the queue was empty for ``idle_exit`` seconds; the count
    handled. ``tally`` collects the units, files and calls committed, per destination."""
    from shared.worker import handle

    queue = WorkQueue.of(settings)
    lease = settings.work_lease_seconds
    handled = 0
    try:
        queue.ensure()
        empty_since: float | None = None
        pause = POLL_SECONDS[0]
        while True:
            try:
                message = queue.receive(lease)
                if message is None:
                    if queue.depth().messages:
                        empty_since = None
                    else:
                        empty_since = empty_since or time.monotonic()
                        if time.monotonic() - empty_since >= idle_exit:
                            return handled
                    time.sleep(pause)
                    pause = min(pause * 2, POLL_SECONDS[1])
                    continue
                empty_since, pause = None, POLL_SECONDS[0]
                if _take(queue, message, settings, destinations, handle, tally):
                    handled += 1
            except ExportError as exc:
                if not exc.transient:
                    raise
                log.warning("the work queue failed, trying again: %s", exc)
                time.sleep(1)
    finally:
        queue.close()


#: The counters of a :data:`Tally` entry: units committed, files, calls, items moved to poison.
UNITS, FILES, CALLS, POISONED = range(4)


def new_counts() -> list[int]:
    """A :data:`Tally` entry with nothing counted yet."""
    return [0] * (POISONED + 1)


def _count(tally: Tally | None, who: str, *fields: int, by: tuple[int, ...] = (1,)) -> None:
    if tally is not None:
        counts = tally.setdefault(who, new_counts())
        for f, n in zip(fields, by, strict=True):
            counts[f] += n


def _who_of(item: WorkItem) -> str:
    return item.destination if item.backfill is None else f"{item.destination} backfill {item.backfill}"


def _item(message: Any) -> WorkItem | None:
    if getattr(message, "undecodable", False):
        return None
    try:
        return WorkItem.from_text(str(message.content))
    except BadWorkItem:
        return None


def _who(message: Any) -> str:
    """Whose item a message is (its destination, or a backfill of it), for the run's summary."""
    item = _item(message)
    return "messages this exporter did not write" if item is None else _who_of(item)


def _about(message: Any) -> str:
    """What a message is for, in a log line: destination, type and window (or that it is not an item)."""
    item = _item(message)
    return "not a work item of this exporter" if item is None else item.label()


def _take(queue: WorkQueue, message: Any, settings: Settings, destinations: Destinations,
          handle: Callable[..., Any], tally: Tally | None = None) -> bool:
    """Handle one message with the host's semantics; True when it was handled and deleted."""
    lease = settings.work_lease_seconds
    if message.dequeue_count is not None and message.dequeue_count > MAX_DEQUEUE_COUNT:
        log.error("work item %s (%s) was delivered %d times: moved to %s", message.id, _about(message),
                  message.dequeue_count, queue.poison_name)
        queue.to_poison(message)
        _count(tally, _who(message), POISONED)
        return False
    box = [message]

    def renew() -> None:
        box[0] = queue.renew(box[0], lease)

    try:
        if getattr(message, "undecodable", False):
            raise BadWorkItem(f"work item {message.id} is not base64 text: it was not sent by this exporter "
                              "(docs/operations.md, 'The poison queue')")
        listed = destinations(settings) if destinations is not None else None
        outcome = handle(str(message.content), settings, queue=queue, destinations=listed, renew=renew)
        if outcome.status in ("exported", "empty"):
            item = outcome.item
            _count(tally, _who_of(item), UNITS, FILES, CALLS, by=(1, outcome.files, outcome.calls))
    except Exception as exc:
        shown = str(exc) if isinstance(exc, ExportError) else f"unexpected {type(exc).__name__}: {exc}"
        if (message.dequeue_count or 0) >= MAX_DEQUEUE_COUNT:
            log.error("work item %s (%s) failed %d times, moved to %s: %s", message.id, _about(message),
                      message.dequeue_count, queue.poison_name, shown)
            queue.to_poison(box[0])
            _count(tally, _who(message), POISONED)
        else:
            log.warning("work item %s (%s) failed (delivery %s), retried in %ss: %s", message.id,
                        _about(message), message.dequeue_count, RETRY_DELAY_SECONDS, shown)
            with contextlib.suppress(ExportError):  # not ours any more: its lease lapses anyway
                queue.renew(box[0], RETRY_DELAY_SECONDS)
        return False
    return queue.delete(box[0])
