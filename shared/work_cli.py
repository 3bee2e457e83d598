"""The ``plan`` and ``work`` commands of :mod:`shared.cli` (and the queue line of ``status``)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TextIO

from shared.backfill import Definition
from shared.backfill_chains import plan_backfill
from shared.clients import build_clients, close_clients
from shared.errors import ExportError
from shared.planning import marker_store, plan
from shared.settings import Settings
from shared.telemetry import bind_log_context, reset_log_context
from shared.windows import format_rfc3339
from shared.work_queue import MAX_DEQUEUE_COUNT, QueueDepth, WorkQueue
from shared.work_runner import POISONED, new_counts, work

EXIT_OK, EXIT_FAILED = 0, 1


def cmd_plan(settings: Settings, now: datetime, out: TextIO, err: TextIO) -> int:
    """Do what the timer does in queue mode; print one line per work item sent."""
    result = plan(settings, now)
    for item in result.items:
        print(f"enqueued {item.destination} {item.call_type} {format_rfc3339(item.window_start)} "
              f"(horizon {format_rfc3339(item.horizon)})", file=out)
    for name, why in result.waiting:
        print(f"waiting {name}: {why}", file=out)
    held: dict[str, list[tuple[str, float]]] = {}
    for name, call_type, until in result.held:
        held.setdefault(name, []).append((call_type, until))
    for name, types in held.items():
        latest = datetime.fromtimestamp(max(u for _, u in types), UTC)
        print(f"held {name}: {', '.join(t for t, _ in types)} due, each with a live work item (queued or "
              f"running); planned again if it makes no progress by {format_rfc3339(latest)}", file=out)
    print(f"{len(result.items)} work item(s) enqueued on {settings.export_queue}", file=out)
    if result.depth is not None:
        print(queue_line(result.depth), file=out)
    for name, error in result.errors:
        print(f"error: destination {name}: {error}", file=err)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_enqueue_backfill(settings: Settings, definition: Definition, now: datetime, out: TextIO) -> int:
    """``backfill --queue``: plan the recorded backfill's chains now (as the next plan would); one
    line per work item sent. The workers run it; ``status`` shows its progress."""
    queue = WorkQueue.of(settings)
    markers = marker_store(settings)
    clients = build_clients(settings)
    context = bind_log_context(destination=definition.destination)  # the pin adds the ids; all undone here
    try:
        queue.ensure()
        items = plan_backfill(definition.destination, definition, settings, clients, now, queue, markers,
                              time.time, settings.work_lease_seconds)
    finally:
        reset_log_context(context)
        close_clients(clients)
        markers.store.service.close()
        queue.close()
    for item in items:
        print(f"enqueued {item.label()} (horizon {format_rfc3339(item.horizon)})", file=out)
    print(f"{len(items)} work item(s) enqueued on {settings.export_queue} for {definition.kind} {definition.id} "
          "(a type with a live chain or nothing left gets none); `python -m shared.cli status` shows its "
          "progress", file=out)
    if settings.export_mode != "queue":
        print("note: EXPORT_MODE is not queue: no plan re-plans a lost item; drain the queue with "
              "`python -m shared.cli work`", file=out)
    return EXIT_OK


def cmd_work(settings: Settings, processes: int, idle_exit: float, out: TextIO, err: TextIO,
             verbose: bool = False) -> int:
    """Run ``processes`` worker processes until the queue was empty for ``idle_exit`` seconds."""
    exits = work(settings, processes, idle_exit, log_level=logging.DEBUG if verbose else logging.INFO)
    died = [e for e in exits if e.exitcode != 0]
    for e in died:
        print(f"error: worker {e.index} exited with status {e.exitcode}; its work item comes back within "
              f"one lease ({settings.work_lease_seconds}s): run `work` again", file=err)
    done: dict[str, list[int]] = {}
    for e in exits:
        for who, counts in e.done.items():
            done[who] = [a + b for a, b in zip(done.get(who, new_counts()), counts, strict=True)]
    for who in sorted(done):
        units, files, calls, poisoned = done[who]
        line = f"{who}: {units} unit(s) committed, {files} file(s), {calls} call(s)"
        if poisoned:
            line += (f"; {poisoned} work item(s) failed {MAX_DEQUEUE_COUNT} times and went to "
                     f"{settings.export_queue}-poison (the errors are above; docs/operations.md, 'The poison queue')")
        print(line, file=out)
    print(f"{len(exits) - len(died)} of {len(exits)} worker(s) finished: the queue was empty for {idle_exit:g}s",
          file=out)
    poisoned_any = any(counts[POISONED] for counts in done.values())
    return EXIT_FAILED if died or poisoned_any else EXIT_OK


def queue_line(depth: QueueDepth) -> str:
    line = (f"queue {depth.queue}: {depth.messages} message(s), oldest visible "
            f"{depth.oldest_age_seconds:.0f}s; poison {depth.poison}")
    if depth.poison:
        line += f" - WARNING: read {depth.queue}-poison (docs/operations.md, 'The poison queue')"
    return line


def print_queue(settings: Settings, out: TextIO) -> None:
    """The queue line of ``status`` in queue mode."""
    try:
        queue = WorkQueue.of(settings)
    except ExportError as exc:
        print(f"queue {settings.export_queue}: not read ({exc})", file=out)
        return
    try:
        print(queue_line(queue.depth()), file=out)
    except ExportError as exc:
        print(f"queue {settings.export_queue}: not read ({exc})", file=out)
    finally:
        queue.close()
