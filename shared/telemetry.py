"""Traces, metrics and logs through OpenTelemetry (Application Insights when configured).

The export code calls the OpenTelemetry *API* only; without a configured SDK every call is a
no-op. :func:`configure_azure_monitor` wires the Azure Monitor distro when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, and does nothing when it is empty.

The tracer and the instruments below come from the API's global proxies: they are created at
import, before any SDK exists, and start recording as soon as a provider is set (by the distro in
production, by an in-memory SDK in the tests), whichever is imported first.

What is emitted (docs/operations.md says how to read it):

- spans ``export.run`` (one per run) and its children ``export.window`` (one per window and type);
- metrics ``exporter.calls``, ``exporter.files``, ``exporter.bytes``, ``exporter.rejected_calls``
  (counters, dimension ``type``), ``exporter.lag_seconds`` (gauge, dimensions ``type`` and
  ``destination``),
  ``exporter.run_duration_seconds`` (histogram, dimension ``outcome``), ``exporter.failed_runs``,
  ``exporter.manifests`` (counter), ``exporter.verify.problems`` (observable gauge, dimensions
  ``destination`` and ``kind``);
- the work queue's (docs/design.md, "Plan, queue, work"): ``exporter.queue.depth``,
  ``exporter.queue.oldest_age_seconds``, ``exporter.queue.poison`` (gauges, dimension ``queue``,
  recorded by each plan), ``exporter.units_in_flight`` (up-down counter),
  ``exporter.unit_duration_seconds`` (histogram, dimensions ``destination``, ``type``, ``outcome``);
- log records from the ``shared`` loggers, carrying ``run_id``, ``integration_id`` and
  ``action_id`` as attributes (custom dimensions) while a run is under way.

No span, metric attribute or log record carries a secret: attributes are ids, types, windows,
counts and blob names, log text goes through :mod:`shared.redact`, and every span's status,
attributes and events (a recorded exception too) are scrubbed as they are set by the processor
of :mod:`shared.span_redaction`, which :func:`configure_azure_monitor` installs.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime

from opentelemetry import metrics, trace

from shared.redact import redact_text

SCOPE = "cdp_blob_exporter"
#: The logger whose records the distro ships to Application Insights (all of ``shared.*``).
LOGGER_NAME = "shared"

tracer = trace.get_tracer(SCOPE)
_meter = metrics.get_meter(SCOPE)

calls_exported = _meter.create_counter(
    "exporter.calls", unit="{call}", description="Calls written to data files, by type"
)
files_written = _meter.create_counter(
    "exporter.files", unit="{file}", description="Data files committed, by type"
)
bytes_written = _meter.create_counter(
    "exporter.bytes", unit="By", description="Bytes of data files committed, by type"
)
rejected_calls = _meter.create_counter(
    "exporter.rejected_calls", unit="{call}", description="Calls quarantined to _rejected/, by type"
)
export_lag = _meter.create_gauge(
    "exporter.lag_seconds", unit="s",
    description="Now minus the end of the last exported window, by type",
)
run_duration = _meter.create_histogram(
    "exporter.run_duration_seconds", unit="s", description="Duration of one export run, by outcome"
)
backfill_windows = _meter.create_counter(
    "exporter.backfill.windows", unit="{window}",
    description="(window, type) units a backfill or replay committed, by backfill and type",
)
failed_runs = _meter.create_counter(
    "exporter.failed_runs", unit="{run}", description="Runs that ended with an error"
)
manifests_written = _meter.create_counter(
    "exporter.manifests", unit="{manifest}", description="Window manifests committed"
)
# The last verify's counts, destination -> kind -> problems. An observable gauge reports what is
# here at each collection, and nothing else: a synchronous gauge repeats the last value of every
# attribute set it ever saw for the life of the process (a removed destination's count, or the
# healthy 0 of one that can no longer be audited).
_verify_counts: dict[str, dict[str, int]] = {}
_verify_lock = threading.Lock()
#: The ``kind`` of a destination that the last scheduled verify could not audit (its value is 1).
NOT_AUDITED = "not_audited"


def _observe_verify(options: metrics.CallbackOptions) -> list[metrics.Observation]:
    with _verify_lock:
        counts = [(d, k, n) for d, kinds in _verify_counts.items() for k, n in kinds.items()]
    return [metrics.Observation(n, {"destination": d, "kind": k}) for d, k, n in counts]


verify_problems = _meter.create_observable_gauge(
    "exporter.verify.problems", callbacks=[_observe_verify], unit="{problem}",
    description="Problems the last verify found, by destination and kind (0 when healthy; kind "
                "not_audited 1: the destination could not be audited)",
)


def record_verify_problems(destination: str, problems: Mapping[str, int]) -> None:
    """One destination's audit: its count per kind, reported until its next audit or tick."""
    with _verify_lock:
        _verify_counts[destination] = dict(problems)


def record_verify_tick(audited: Mapping[str, bool], *, others_unknown: bool = False) -> None:
    """A scheduled verify went over ``audited`` (name -> whether it was audited): the gauge holds
    those alone, one not audited as 1 of kind :data:`NOT_AUDITED`. ``others_unknown``: the list of
    destinations could not be read, so those of earlier ticks are not audited either."""
    with _verify_lock:
        kept = {name: _verify_counts.get(name, {}) if ok else {NOT_AUDITED: 1} for name, ok in audited.items()}
        if others_unknown:
            kept.update({name: {NOT_AUDITED: 1} for name in _verify_counts if name not in kept})
        _verify_counts.clear()
        _verify_counts.update(kept)
queue_depth = _meter.create_gauge(
    "exporter.queue.depth", unit="{message}",
    description="Messages in the work queue (visible and invisible), by queue; recorded at each plan",
)
queue_oldest_age = _meter.create_gauge(
    "exporter.queue.oldest_age_seconds", unit="s",
    description="Age of the oldest visible message in the work queue, by queue; recorded at each plan",
)
queue_poison = _meter.create_gauge(
    "exporter.queue.poison", unit="{message}",
    description="Messages in the poison queue, by queue (the work queue's name); recorded at each plan",
)
units_in_flight = _meter.create_up_down_counter(
    "exporter.units_in_flight", unit="{unit}", description="Work items whose unit is running now"
)
unit_duration = _meter.create_histogram(
    "exporter.unit_duration_seconds", unit="s",
    description="Duration of one work item's unit, by destination, type and outcome",
)


def record_export_lag(now: datetime, window_ends: Mapping[str, datetime], destination: str = "default") -> None:
    """Set the lag gauge per destination and type: ``now`` minus the end of the type's last
    exported window.

    Called when a run (or a plan) has read the state (so a run that then fails still reports a
    growing lag, which is what the lag alert watches) and again when it ends.
    """
    for call_type, window_end in window_ends.items():
        export_lag.set(max(0.0, (now - window_end).total_seconds()),
                       {"type": call_type, "destination": destination})


def record_queue_depth(queue: str, messages: int, oldest_age_seconds: float, poison: int) -> None:
    """The work queue's gauges (``queue`` attribute: the work queue's name)."""
    attrs = {"queue": queue}
    queue_depth.set(messages, attrs)
    queue_oldest_age.set(oldest_age_seconds, attrs)
    queue_poison.set(poison, attrs)


# --- span attributes: one naming rule, ``exporter.<name>`` ---------------------------------------

AttributeValue = str | bool | int | float | list[str]


def annotate(span: trace.Span, **attributes: AttributeValue) -> None:
    """Set ``exporter.<name>`` attributes on a span (the run's, a unit's)."""
    span.set_attributes({f"exporter.{name}": value for name, value in attributes.items()})


def record_unit_metrics(call_type: str, created_file_bytes: list[int], rows: int, rejected: int) -> None:
    """Count a committed unit: files and bytes it created (not the ones it found in place), calls
    exported and rejected, all by ``type``."""
    attrs = {"type": call_type}
    for size in created_file_bytes:
        files_written.add(1, attrs)
        bytes_written.add(size, attrs)
    calls_exported.add(rows, attrs)
    if rejected:
        rejected_calls.add(rejected, attrs)


def error_status(message: str) -> trace.Status:
    """A span's error status: the message scrubbed before the cut (a cut cannot leave a piece of a
    secret to match against), at most 200 characters."""
    return trace.Status(trace.StatusCode.ERROR, redact_text(message)[:200])


# --- log context: ids every log record of a run carries -------------------------------------

_log_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "exporter_log_context", default=None
)


def current_log_context() -> Mapping[str, str]:
    return _log_context.get() or {}


def bind_log_context(**fields: str) -> contextvars.Token[Mapping[str, str] | None]:
    """Add ids to the log records of this context; undo with :func:`reset_log_context`."""
    return _log_context.set({**current_log_context(), **fields})


def reset_log_context(token: contextvars.Token[Mapping[str, str] | None]) -> None:
    _log_context.reset(token)


def annotate_destination(integration_id: str, action_id: str) -> None:
    """The run now knows its destination: put the ids on the current span and on its logs."""
    trace.get_current_span().set_attributes(
        {"exporter.integration_id": integration_id, "exporter.action_id": action_id}
    )
    bind_log_context(integration_id=integration_id, action_id=action_id)


class LogContextFilter(logging.Filter):
    """A handler filter that copies the run's ids onto each record (kept if already given)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def add_log_context(handler: logging.Handler) -> None:
    """Make ``handler`` stamp the run's ids on every record it handles (once per handler)."""
    if not any(isinstance(f, LogContextFilter) for f in handler.filters):
        handler.addFilter(LogContextFilter())


# --- configuration ----------------------------------------------------------------------------

_QUIET_LOGGERS = (
    "azure",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.monitor.opentelemetry.exporter",
    "urllib3",
)


def quiet_sdk_loggers(level: int = logging.WARNING) -> None:
    """The Azure SDK logs every request at INFO (headers included): keep it to warnings."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)


_configured = False


def configure_azure_monitor(connection_string: str) -> bool:
    """Send traces, metrics and logs to Application Insights.

    Does nothing (and returns False) when ``connection_string`` is empty. Configures once per
    process: the OpenTelemetry global providers can only be set once. Returns True when
    configured. The distro's default instrumentations stay on (Azure SDK, urllib3, requests):
    the URLs they record have their ``sig`` redacted by azure-core and opentelemetry-util-http,
    which tests/test_telemetry.py proves.
    """
    global _configured
    if not connection_string or _configured:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor as _configure

    _configure(connection_string=connection_string, logger_name=LOGGER_NAME)
    _configured = True
    install_span_redaction()
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        add_log_context(handler)
    quiet_sdk_loggers()
    return True


def install_span_redaction(provider: object | None = None) -> bool:
    """Scrub secrets from every span of ``provider`` (the global tracer provider by default)."""
    from shared.span_redaction import install_span_redaction as install

    return install(provider if provider is not None else trace.get_tracer_provider())


def configure_from_env(env: Mapping[str, str] | None = None) -> bool:
    """:func:`configure_azure_monitor` with ``APPLICATIONINSIGHTS_CONNECTION_STRING`` as set.

    Used at function app start, before the settings are validated, so that a settings error of
    a tick is logged to Application Insights too.
    """
    env = os.environ if env is None else env
    try:
        return configure_azure_monitor(env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip())
    except ValueError as exc:  # a malformed connection string must not stop the app from loading
        logging.getLogger(__name__).warning("Application Insights is not configured: %s", exc)
        return False
