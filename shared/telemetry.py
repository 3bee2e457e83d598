"""Traces, metrics and logs through OpenTelemetry (Application Insights when configured).

The export code calls the OpenTelemetry *API* only; without a configured SDK every call is a
no-op. :func:`configure_azure_monitor` wires the Azure Monitor distro when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set. No span attribute, metric attribute or log
carries a secret: attributes are ids, types, windows, counts and blob names only.
"""

from __future__ import annotations

import logging

from opentelemetry import metrics, trace

SCOPE = "cdp_blob_exporter"

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
    "exporter.run_duration_seconds", unit="s", description="Duration of one export run"
)
failed_runs = _meter.create_counter(
    "exporter.failed_runs", unit="{run}", description="Runs that ended with an error"
)

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
    """Send traces, metrics and logs to Application Insights. Returns False when not configured."""
    global _configured
    if not connection_string or _configured:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor as _configure

    _configure(connection_string=connection_string, logger_name="shared")
    _configured = True
    quiet_sdk_loggers()
    return True
