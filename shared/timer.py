"""The triggers: the timer (parse the tick, hand off to :func:`run_tick`, raise on failure) and
the work queue (one message to :func:`shared.worker.handle`).

The only module that imports azure.functions; ``run_tick`` is the same code the CLI's ``run``
executes: every enabled destination in turn, ``default`` first (shared/destination_runs.py), one
destination's failure never stopping the others (EXPORT_MODE=inline, the default), or its ``plan``
(EXPORT_MODE=queue); the queue trigger runs the handler of the CLI's ``work``.

The schedule is ``EXPORT_SCHEDULE`` as read when the app loads, or its documented default
(``0 */10 * * * *``): binding ``%EXPORT_SCHEDULE%`` instead would leave an app without the setting
with no timer at all (the host cannot resolve it). A malformed value stops the app from loading
with one line naming the setting. Changing an app setting restarts the app, so a new value
applies at once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import azure.functions as func

from shared.checks import log_sas_expiry
from shared.destination_runs import DestinationsFailed, TickOutcome, run_destinations
from shared.destinations import NamedDestination
from shared.errors import ExportError, UnexpectedError
from shared.planning import plan
from shared.redact import install_log_redaction, untrusted
from shared.settings import Settings, export_schedule
from shared.summary import RunFailed, RunSummary
from shared.telemetry import configure_azure_monitor, quiet_sdk_loggers
from shared.work_queue import WorkQueue
from shared.worker import handle

log = logging.getLogger(__name__)
export_blueprint = func.Blueprint()


def run_tick(now: datetime, settings: Settings | None = None) -> TickOutcome:
    """One tick: read settings, export what is due at ``now`` for every enabled destination.

    Raises SettingsError for bad app settings and RunFailed (:class:`DestinationsFailed`, naming
    each failed destination) when any destination did not finish cleanly, so
    the Functions host records the invocation as failed (and Application Insights shows it).
    Logs a WARNING when the SAS expires within 14 days (or has expired). Any other exception is
    logged (scrubbed) and raised as :class:`UnexpectedError`: what reaches the host never holds
    a secret, whatever raised it.
    """
    install_log_redaction()
    quiet_sdk_loggers()
    try:
        return _tick(now, settings)
    except ExportError:
        raise  # scrubbed when made
    except Exception as exc:
        raise unexpected(exc) from None


def unexpected(exc: Exception) -> UnexpectedError:
    """Log ``exc`` with its traceback (the log redaction scrubs both) and return it as one line."""
    log.error("the export stopped on an unexpected error", exc_info=exc)
    return UnexpectedError(f"unexpected {type(exc).__name__}: {untrusted(str(exc), 500)}")


def _tick(now: datetime, settings: Settings | None) -> TickOutcome:
    settings = settings or Settings.from_env()
    configure_azure_monitor(settings.appinsights_connection_string)
    if settings.export_mode == "queue":
        log_sas_expiry(settings.blob_sas_url, now, log)
        return _plan_tick(settings, now)

    def before(dest: NamedDestination) -> None:
        if dest.settings is not None:
            log_sas_expiry(dest.settings.blob_sas_url, now, log)

    outcome = TickOutcome(run_destinations(settings, now, before=before))
    if not outcome.ok:
        raise DestinationsFailed(outcome)
    return outcome


def _plan_tick(settings: Settings, now: datetime) -> TickOutcome:
    """Queue mode: the tick is a plan; its outcome has no run (the queue trigger runs the units)."""
    result = plan(settings, now)
    if not result.ok:
        summary = RunSummary(run_id=uuid.uuid4().hex, destination=None, now=now)
        summary.error = "; ".join(f"destination {name}: {error}" for name, error in result.errors)
        raise RunFailed(summary)
    log.info("planned %d work item(s) on %s", len(result.items), settings.export_queue)
    return TickOutcome([])


def run_item(text: str, dequeue_count: int = 1) -> None:
    """One work item from the queue trigger. Raises (scrubbed) so the host retries it and, after
    maxDequeueCount, moves it to the poison queue (docs/design.md, "Plan, queue, work")."""
    install_log_redaction()
    quiet_sdk_loggers()
    try:
        settings = Settings.from_env()
        configure_azure_monitor(settings.appinsights_connection_string)
        queue = WorkQueue.of(settings)
        try:
            outcome = handle(text, settings, queue=queue)
        finally:
            queue.close()
    except ExportError as exc:
        log.error("work item failed (delivery %d): %s", dequeue_count, exc)
        raise
    except Exception as exc:
        raise unexpected(exc) from None
    log.info("work item %s: %s", outcome.item.label(), outcome.status)


@export_blueprint.queue_trigger(arg_name="msg", queue_name="%EXPORT_QUEUE%", connection="AzureWebJobsStorage")
def export_unit(msg: func.QueueMessage) -> None:
    run_item(msg.get_body().decode("utf-8", errors="replace"), msg.dequeue_count or 1)


@export_blueprint.timer_trigger(
    schedule=export_schedule(), arg_name="timer", run_on_startup=False, use_monitor=True
)
def export_calls(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("the timer is past due; exporting every window that is due now")
    summary = run_tick(datetime.now(UTC))
    if summary.runs:  # inline; a plan logged what it enqueued
        log.info("exported %d call(s) in %d file(s), %d rejected", summary.rows, len(summary.files),
                 summary.rejected)
