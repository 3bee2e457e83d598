"""Telemetry: the spans, metric points and log records of a real export, read back from an
in-memory OpenTelemetry SDK, and no secret in any of them.

The API's global providers can be set once per process. ``shared.telemetry`` takes its tracer and
instruments from the API's proxies at import, which start delegating as soon as a provider is set,
so the session fixture below sets in-memory providers once and every test reads from them.
The instrumentations the Azure Monitor distro turns on in production (Azure SDK tracing, requests,
urllib3) are turned on here too, so their HTTP spans are checked for secrets as well.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler  # the distro's handler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry
from shared.calltypes import CALL_TYPES
from shared.redact import register_secret
from tests.conftest import TOKEN
from tests.support.calls import make_window_calls
from tests.support.echoing_etl import ECHO_VARIANTS, EchoingEtl
from tests.support.leaks import assert_no_leak
from tests.test_destinations import add, env_of, ok
from tests.test_destinations import others as others

ROOT = Path(__file__).resolve().parent.parent
W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = W0 + timedelta(minutes=20, seconds=61)  # two windows closed and settled


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    log_handler: logging.Handler

    def clear(self) -> None:
        self.spans.clear()
        self.metrics.get_metrics_data()  # delta temporality: collecting drains what is there
        self.logs.clear()

    def points(self) -> dict[str, list[Any]]:
        """Metric name -> its data points since the last collection."""
        out: dict[str, list[Any]] = {}
        data = self.metrics.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture(scope="session")
def otel_sdk() -> Otel:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader(preferred_temporality={
        Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
    })
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    if trace.get_tracer_provider() is not tracer_provider:
        pytest.fail("another OpenTelemetry tracer provider was set in this process before the tests'")
    # As configure_azure_monitor does for the distro's provider (tested below in a subprocess).
    assert telemetry.install_span_redaction(tracer_provider)
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(logger_provider=logger_provider)
    telemetry.add_log_context(handler)  # as configure_azure_monitor does for the distro's handler
    return Otel(spans, reader, logs, handler)


@pytest.fixture(scope="module")
def instrumented(otel_sdk: Otel) -> Iterator[None]:
    """What the distro instruments by default: Azure SDK spans and urllib3/requests spans."""
    from azure.core.settings import settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    previous = settings.tracing_implementation()
    settings.tracing_implementation = OpenTelemetrySpan
    RequestsInstrumentor().instrument()
    URLLib3Instrumentor().instrument()
    try:
        yield
    finally:
        URLLib3Instrumentor().uninstrument()
        RequestsInstrumentor().uninstrument()
        settings.tracing_implementation = previous


@pytest.fixture
def otel(otel_sdk: Otel, instrumented: None) -> Iterator[Otel]:
    shared_logger = logging.getLogger(telemetry.LOGGER_NAME)
    level = shared_logger.level
    shared_logger.setLevel(logging.INFO)
    shared_logger.addHandler(otel_sdk.log_handler)
    otel_sdk.clear()
    try:
        yield otel_sdk
    finally:
        shared_logger.removeHandler(otel_sdk.log_handler)
        shared_logger.setLevel(level)


def _run_two_windows(harness):
    """Track and identify calls in the 12:00 window, track in the 12:10 one, two bad track lines."""
    harness.source.add(make_window_calls(W0, per_type={"track": 7, "identify": 3}, seed=1))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 4}, seed=2))
    bad_at = "2026-11-28T12:05:00.000Z"
    harness.source.add([("track", bad_at, b"this is not json"), ("track", bad_at, b'{"type":"page"}')])
    summary = harness.run(NOW, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok, summary.error
    return summary


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_run_is_one_span_with_a_child_span_per_window_and_type(harness, otel):
    summary = _run_two_windows(harness)

    spans = otel.spans.get_finished_spans()
    (run,) = _named(spans, "export.run")
    windows = _named(spans, "export.window")
    assert len(windows) == 2 * len(CALL_TYPES)
    assert all(w.parent is not None and w.parent.span_id == run.context.span_id for w in windows)
    assert all(w.context.trace_id == run.context.trace_id for w in windows)

    assert run.attributes["exporter.run_id"] == summary.run_id
    assert run.attributes["exporter.format"] == "csv"
    assert run.attributes["exporter.integration_id"] == "2184"
    assert run.attributes["exporter.action_id"] == "13699"
    assert run.attributes["exporter.rows"] == 14
    assert run.attributes["exporter.files"] == 3
    assert run.attributes["exporter.rejected"] == 2
    assert run.attributes["exporter.bytes"] == sum(f.bytes for f in summary.files)
    assert run.attributes["exporter.windows"] == 2

    by_key = {(w.attributes["exporter.window_start"], w.attributes["exporter.type"]): w for w in windows}
    track1 = by_key[("2026-11-28T12:00:00Z", "track")]
    file1 = next(f for f in summary.files if f.call_type == "track" and f.window.start == W0)
    assert dict(track1.attributes) == {
        "exporter.type": "track",
        "exporter.window_start": "2026-11-28T12:00:00Z",
        "exporter.window_end": "2026-11-28T12:10:00Z",
        "exporter.integration_id": "2184",
        "exporter.action_id": "13699",
        "exporter.rows": 7,
        "exporter.files": 1,
        "exporter.bytes": file1.bytes,
        "exporter.rejected": 2,
        "exporter.first_position": 1,
        "exporter.last_position": 1,
        "exporter.blob": "exports/segment/2184.13699.1.track.csv",
        "exporter.blobs": ("exports/segment/2184.13699.1.track.csv",),
        "exporter.status": "exported",
    }
    track2 = by_key[("2026-11-28T12:10:00Z", "track")]
    assert track2.attributes["exporter.blob"] == "exports/segment/2184.13699.2.track.csv"
    assert track2.attributes["exporter.first_position"] == 2
    assert track2.attributes["exporter.rows"] == 4
    empty = by_key[("2026-11-28T12:10:00Z", "identify")]
    assert empty.attributes["exporter.status"] == "empty"
    assert empty.attributes["exporter.rows"] == 0
    assert "exporter.blob" not in empty.attributes

    # The Azure SDK's own spans (as the distro enables them) nest under the window spans.
    sdk_spans = [s for s in spans if s.parent is not None and s.parent.span_id == track1.context.span_id]
    assert sdk_spans, "expected Azure SDK / HTTP spans under export.window"


def test_a_run_records_calls_bytes_files_rejected_lag_and_duration_per_type(harness, otel):
    summary = _run_two_windows(harness)

    points = otel.points()

    def per_type(name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in points.get(name, []):
            out[p.attributes["type"]] = out.get(p.attributes["type"], 0) + p.value
        return out

    assert per_type("exporter.calls") == {"track": 11, "identify": 3, **{
        t: 0 for t in CALL_TYPES if t not in ("track", "identify")}}
    bytes_by_type: dict[str, int] = {}
    for f in summary.files:
        bytes_by_type[f.call_type] = bytes_by_type.get(f.call_type, 0) + f.bytes
    assert per_type("exporter.bytes") == bytes_by_type
    assert per_type("exporter.files") == {"track": 2, "identify": 1}
    assert per_type("exporter.rejected_calls") == {"track": 2}
    # Lag: now minus the end of the last exported window (12:20 for every type).
    expected_lag = (NOW - (W0 + timedelta(minutes=20))).total_seconds()
    assert {p.attributes["type"]: p.value for p in points["exporter.lag_seconds"]} == {
        t: expected_lag for t in CALL_TYPES}
    (duration,) = points["exporter.run_duration_seconds"]
    assert duration.count == 1 and duration.sum > 0
    assert dict(duration.attributes) == {"outcome": "ok"}
    assert "exporter.failed_runs" not in points


def test_a_backfill_counts_its_windows_by_backfill_and_type_and_sets_no_lag(harness, otel):
    from shared.backfill import Definition
    from shared.backfill_run import recipe_of, record, run_backfill
    from shared.clients import build_clients, close_clients
    from shared.sequence import Sequence

    _run_two_windows(harness)
    otel.clear()
    settings = harness.settings()
    clients = build_clients(settings)
    try:
        recipe = recipe_of(settings, Sequence("default", "bf-metrics"))
        d = record(clients.state, Definition("bf-metrics", "backfill", W0, W0 + timedelta(minutes=10),
                                             ("track", "alias"), recipe))
        assert run_backfill(settings, clients, NOW, d).ok
    finally:
        close_clients(clients)
    points = otel.points()
    counted = {(p.attributes["backfill"], p.attributes["type"]): p.value for p in points["exporter.backfill.windows"]}
    assert counted == {("bf-metrics", "track"): 1, ("bf-metrics", "alias"): 1}
    # The lag gauge (the alert watches it) stays the live export's: 61 s, never the backfill's 661 s.
    assert {p.value for p in points["exporter.lag_seconds"]} == {61.0}
    (run,) = _named(otel.spans.get_finished_spans(), "export.run")
    assert run.attributes["exporter.backfill"] == "bf-metrics"


def test_a_run_that_fails_still_reports_its_lag_and_counts_as_failed(harness, otel):
    harness.source.add(make_window_calls(W0, per_type={"track": 2}))
    # An expired SAS: a permanent error at the first file, the lag keeps growing.
    sas = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) - timedelta(hours=1))
    summary = harness.run(NOW, EXPORT_START="2026-11-28T12:00:00Z", BLOB_SAS_URL=sas)
    assert not summary.ok
    points = otel.points()
    lags = {p.attributes["type"]: p.value for p in points["exporter.lag_seconds"]}
    assert lags["track"] == (NOW - W0).total_seconds()
    assert sum(p.value for p in points["exporter.failed_runs"]) == 1
    (duration,) = points["exporter.run_duration_seconds"]
    assert dict(duration.attributes) == {"outcome": "failed"}
    (run,) = _named(otel.spans.get_finished_spans(), "export.run")
    assert run.status.status_code == trace.StatusCode.ERROR


def test_log_records_of_a_run_carry_the_run_integration_and_action_ids(harness, otel):
    harness.source.add(make_window_calls(W0, per_type={"page": 2}))
    summary = harness.run(NOW, EXPORT_START="2026-11-28T12:00:00Z")
    assert summary.ok
    records = [r.log_record for r in otel.logs.get_finished_logs()]
    assert records, "the run logged nothing at INFO"
    for record in records:
        attrs = dict(record.attributes or {})
        assert attrs.get("integration_id") == "2184", record.body
        assert attrs.get("action_id") == "13699", record.body
        assert attrs.get("run_id") == summary.run_id, record.body
    assert telemetry.current_log_context() == {}  # nothing leaks past the run


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, dict) or hasattr(value, "items"):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
    elif value is not None:
        yield str(value)


def _everything_emitted(otel: Otel) -> list[str]:
    out: list[str] = []
    for span in otel.spans.get_finished_spans():
        out.append(span.name)
        out.extend(_strings(span.attributes))
        out.append(span.status.description or "")
        for event in span.events:
            out.append(event.name)
            out.extend(_strings(event.attributes))
        for link in span.links:
            out.extend(_strings(link.attributes))
    for points in otel.points().values():
        for p in points:
            out.extend(_strings(p.attributes))
    for log in otel.logs.get_finished_logs():
        out.extend(_strings(log.log_record.body))
        out.extend(_strings(log.log_record.attributes))
    return out


def test_no_span_metric_or_log_holds_the_token_or_the_sas_signature(harness, otel):
    harness.source.add(make_window_calls(W0, per_type={"track": 3, "alias": 2}))
    harness.source.add([("track", "2026-11-28T12:01:00.000Z", b"not json at all")])
    sig = parse_qs(urlsplit(harness.env["BLOB_SAS_URL"]).query)["sig"][0]
    expired = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) - timedelta(hours=1))
    expired_sig = parse_qs(urlsplit(expired).query)["sig"][0]
    wrong_token = "wrong-token-fedcba9876543210"

    assert harness.run(NOW, EXPORT_START="2026-11-28T12:00:00Z").ok
    assert not harness.run(NOW, ETL_API_TOKEN=wrong_token, STATE_TABLE=harness.table + "b").ok
    assert not harness.run(NOW, BLOB_SAS_URL=expired, STATE_TABLE=harness.table + "c",
                           EXPORT_START="2026-11-28T12:00:00Z").ok

    emitted = _everything_emitted(otel)
    # The HTTP spans were recorded, URLs included: the check below is not vacuous.
    assert any(f"/{harness.container}" in s and "sig=" in s for s in emitted)
    for secret in (TOKEN, wrong_token, sig, expired_sig):
        leaks = [s for s in emitted if secret in s]
        assert not leaks, f"secret found in telemetry: {leaks[:3]}"
    assert not any(s for s in emitted if "Bearer" in s)


# --- configuration ----------------------------------------------------------------------------

@pytest.fixture
def fake_distro(monkeypatch):
    """Stand-in for azure.monitor.opentelemetry.configure_azure_monitor: records its calls and
    adds a handler to the named logger, as the distro does."""
    import azure.monitor.opentelemetry as distro

    calls: list[dict[str, Any]] = []
    added: list[tuple[logging.Logger, logging.Handler]] = []

    def configure(**kwargs: Any) -> None:
        calls.append(kwargs)
        logger = logging.getLogger(kwargs["logger_name"])
        handler = logging.NullHandler()
        logger.addHandler(handler)
        added.append((logger, handler))

    monkeypatch.setattr(distro, "configure_azure_monitor", configure)
    monkeypatch.setattr(telemetry, "_configured", False)
    yield calls
    for logger, handler in added:
        logger.removeHandler(handler)


def test_nothing_is_configured_when_the_connection_string_is_empty(fake_distro, monkeypatch):
    tracer_provider = trace.get_tracer_provider()
    assert telemetry.configure_azure_monitor("") is False
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", "")
    assert telemetry.configure_from_env() is False
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING")
    assert telemetry.configure_from_env() is False
    assert fake_distro == []
    assert trace.get_tracer_provider() is tracer_provider


def test_a_timer_tick_without_a_connection_string_configures_nothing(harness, fake_distro, monkeypatch):
    from shared.timer import run_tick

    summary = run_tick(NOW, harness.settings(EXPORT_START="2026-11-28T12:00:00Z",
                                              APPLICATIONINSIGHTS_CONNECTION_STRING=""))
    assert summary.ok
    assert fake_distro == []


def test_a_connection_string_configures_the_distro_once_and_quiets_the_sdk_loggers(fake_distro, monkeypatch):
    conn = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x.invalid/"
    monkeypatch.setattr(logging.getLogger("azure"), "level", logging.NOTSET)
    assert telemetry.configure_azure_monitor(conn) is True
    assert telemetry.configure_azure_monitor(conn) is True
    assert fake_distro == [{"connection_string": conn, "logger_name": "shared"}]
    handlers = logging.getLogger(telemetry.LOGGER_NAME).handlers
    assert any(isinstance(f, telemetry.LogContextFilter) for h in handlers for f in h.filters)
    assert logging.getLogger("azure").level == logging.WARNING
    assert logging.getLogger("azure.core.pipeline.policies.http_logging_policy").level == logging.WARNING


def test_a_malformed_connection_string_does_not_stop_the_app_from_loading(monkeypatch, caplog):
    import azure.monitor.opentelemetry as distro

    def refuse(**kwargs: Any) -> None:
        raise ValueError("Invalid instrumentation key")

    monkeypatch.setattr(distro, "configure_azure_monitor", refuse)
    monkeypatch.setattr(telemetry, "_configured", False)
    assert telemetry.configure_from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "nonsense"}) is False
    assert "Application Insights is not configured" in caplog.text


# --- secrets that come from outside (issue 9, item 8) -------------------------------------------

SPECIAL_TOKEN = 'Zq7"t0k/en+=&%\\s3cr3t-K9wX'


@pytest.mark.parametrize("status", [403, 500])
@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_the_spans_of_a_run_against_an_api_echoing_secrets_hold_none(harness, otel, status, variant):
    sig = parse_qs(urlsplit(harness.env["BLOB_SAS_URL"]).query)["sig"][0]
    with EchoingEtl(sig=sig, variant=variant, calls_status=status) as api:
        summary = harness.run(NOW, ETL_API_ENDPOINT=api.url, ETL_API_TOKEN=SPECIAL_TOKEN,
                              EXPORT_START="2026-11-28T12:00:00Z")
    assert not summary.ok
    spans = otel.spans.get_finished_spans()
    (run,) = _named(spans, "export.run")
    assert run.status.status_code == trace.StatusCode.ERROR
    if status == 403:
        assert "check ETL_API_TOKEN" in run.status.description
    else:
        assert any("HTTP 500" in w.attributes.get("exporter.error", "") for w in _named(spans, "export.window"))
    assert_no_leak(_everything_emitted(otel), [SPECIAL_TOKEN, sig])


def test_every_span_is_scrubbed_whatever_code_writes_to_it(otel):
    secret = "Zx81/+=qq-0123-Lm7wKp"
    register_secret(secret)
    library = trace.get_tracer("some.library")  # not the exporter's code: a span it does not shape
    with pytest.raises(ValueError), library.start_as_current_span(
        "lib", attributes={"url": f"https://h/x?k={secret}", "n": 3}
    ) as span:
        span.set_attribute("a", f"a {secret}")
        span.set_attributes({"b": (f"b {secret}", "plain"), "c": True})
        span.add_event("e", {"detail": quote(secret, safe="")})
        raise ValueError(f"boom {json.dumps(secret)}")
    (span,) = _named(otel.spans.get_finished_spans(), "lib")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.status.description.startswith("ValueError: boom")
    assert (span.attributes["n"], span.attributes["c"], span.attributes["b"][1]) == (3, True, "plain")
    assert span.attributes["a"] == "a REDACTED"
    (exception,) = [e for e in span.events if e.name == "exception"]
    assert "boom" in exception.attributes["exception.message"]
    assert "Traceback" in exception.attributes["exception.stacktrace"]
    with library.start_as_current_span("status") as span:
        span.set_status(trace.StatusCode.ERROR, f"failed: {secret}")
    assert _named(otel.spans.get_finished_spans(), "status")[0].status.description == "failed: REDACTED"
    assert_no_leak(_everything_emitted(otel), [secret])


CONFIGURED_PROCESS = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shared import telemetry
from shared.redact import register_secret

assert telemetry.configure_azure_monitor(sys.argv[1])
spans = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))
register_secret(sys.argv[2])
with telemetry.tracer.start_as_current_span("export.run") as span:
    span.set_status(trace.StatusCode.ERROR, "refused " + sys.argv[2])
    span.set_attribute("exporter.error", "refused " + sys.argv[2])
print(json.dumps([[s.status.description, dict(s.attributes)] for s in spans.get_finished_spans()]))
"""


def test_configuring_application_insights_installs_the_span_scrubbing(tmp_path):
    """The distro's own provider gets the processor: spans it would ship carry no secret."""
    with socket.socket() as closed:  # an ingestion endpoint that refuses at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    conn = f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{port}/"
    env = {**os.environ, "TMPDIR": str(tmp_path), "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
           "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage", "OTEL_TRACES_SAMPLER_ARG": "1.0"}
    secret = "Dq4-77xZ-Lp0w-91Hk"
    proc = subprocess.run([sys.executable, "-c", CONFIGURED_PROCESS, conn, secret], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ((description, attributes),) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert description == "refused REDACTED"
    assert attributes["exporter.error"] == "refused REDACTED"


def test_manifests_written_are_counted_and_the_verify_timer_sets_its_problems_gauge_per_kind(
        harness, otel, monkeypatch):
    from shared.verify_timer import run_verify_tick

    _run_two_windows(harness)  # NOW is 12:21:01: windows 12:00 and 12:10
    points = otel.points()
    assert sum(p.value for p in points["exporter.manifests"]) == 2
    for name, value in {**harness.env, "EXPORT_START": "2026-11-28T12:00:00Z"}.items():
        monkeypatch.setenv(name, value)
    assert run_verify_tick()["default"].ok
    gauge = {p.attributes["kind"]: p.value for p in otel.points()["exporter.verify.problems"]}
    assert {p.attributes["destination"] for p in otel.points()["exporter.verify.problems"]} == {"default"}
    assert set(gauge) >= {"foreign", "gap", "chain", "metadata"} and not any(gauge.values())
    with harness.azurite.blob_service() as svc:
        svc.get_container_client(harness.container).upload_blob("exports/segment/stray.csv", b"x")
    otel.clear()
    result = run_verify_tick()["default"]
    assert result is not None and not result.ok
    gauge = {p.attributes["kind"]: p.value for p in otel.points()["exporter.verify.problems"]}
    assert gauge["foreign"] == 1 and sum(gauge.values()) == 1
    summaries = [r for r in otel.logs.get_finished_logs() if "verify default in exports/segment" in str(
        r.log_record.body)]
    assert len(summaries) == 1 and "1 problem(s) (foreign 1)" in str(summaries[0].log_record.body)
    # a backfill audited by hand in the same process leaves the live export's counts as they are
    from shared.cli import main

    backfill = ["backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z", "--id", "b1",
                "--now", "2026-11-28T12:21:01Z"]
    assert main(["--no-settings", *backfill], out=io.StringIO()) == 0
    assert main(["--no-settings", "verify", "--backfill", "b1"], out=io.StringIO()) == 0  # healthy
    gauge = {p.attributes["kind"]: p.value for p in otel.points()["exporter.verify.problems"]}
    assert gauge["foreign"] == 1 and sum(gauge.values()) == 1


def test_the_verify_gauge_holds_only_what_the_last_tick_audited(harness, others, otel):
    """A synchronous gauge repeats its last value per attribute set for the life of the process:
    a destination that could not be audited kept its last count (a healthy 0: the alert stayed
    silent while nothing was audited), and one disabled or removed kept firing the alert with a
    count nobody could clear. Each tick now reports exactly the destinations it went over; one it
    could not audit is 1 of kind not_audited."""
    from shared.verify_timer import run_verify_tick

    def gauge() -> dict[tuple[str, str], int]:
        return {(p.attributes["destination"], p.attributes["kind"]): p.value
                for p in otel.points().get("exporter.verify.problems", [])}

    env = env_of(others)
    ok(add(harness, others["eu"], env))
    others["eu"].source.add(make_window_calls(W0, per_type={"track": 3}, seed=4))
    ok(harness.cli("run", "--now", "2026-11-28T12:11:01Z", extra_env=env))
    with harness.azurite.blob_service() as svc:
        svc.get_container_client(harness.container).upload_blob("eu/segment/stray.csv", b"x")
    run_verify_tick(harness.settings(), env={**harness.env, **env})
    first = gauge()
    assert first[("eu", "foreign")] == 1 and first[("default", "foreign")] == 0, first
    unresolved = {k: v for k, v in env.items() if k != "EU_TOKEN"}
    assert run_verify_tick(harness.settings(), env={**harness.env, **unresolved})["eu"] is None
    second = gauge()
    assert {k: v for k, v in second.items() if k[0] == "eu"} == {("eu", "not_audited"): 1}, second
    assert second[("default", "foreign")] == 0
    ok(harness.cli("destinations", "disable", "eu", extra_env=env))
    run_verify_tick(harness.settings(), env={**harness.env, **env})
    third = gauge()
    assert {k[0] for k in third} == {"default"}, third


def test_a_tick_that_could_not_read_the_destinations_reports_the_earlier_ones_as_not_audited(otel):
    telemetry.record_verify_tick({})  # the process's gauge holds what earlier tests' ticks audited
    try:
        telemetry.record_verify_problems("default", {"gap": 0})
        telemetry.record_verify_problems("eu", {"gap": 2})
        telemetry.record_verify_tick({"default": True}, others_unknown=True)
        points = {(p.attributes["destination"], p.attributes["kind"]): p.value
                  for p in otel.points()["exporter.verify.problems"]}
        assert points == {("default", "gap"): 0, ("eu", telemetry.NOT_AUDITED): 1}
    finally:
        telemetry.record_verify_tick({})


def test_a_plan_records_the_queue_gauges_and_each_work_item_its_duration_lag_and_flight(azurite, tmp_path, otel):
    from shared.planning import plan
    from shared.work_queue import WorkQueue
    from shared.worker import handle
    from tests.support.work import Fleet

    fleet = Fleet(azurite, tmp_path, ["prod-us"], W0, windows=2)
    queue = WorkQueue.of(fleet.app)
    try:
        planned = plan(fleet.app, NOW, destinations=fleet.planned(), queue=queue)
        points = otel.points()
        def ours(name):
            (point,) = [p for p in points[name] if p.attributes.get("queue") == fleet.queue]
            return point

        assert ours("exporter.queue.depth").value == len(planned.items) == 6
        assert ours("exporter.queue.poison").value == 0
        assert ours("exporter.queue.oldest_age_seconds").value >= 0
        lags = {p.attributes["type"]: p.value for p in points["exporter.lag_seconds"]
                if p.attributes.get("destination") == "prod-us"}  # a gauge keeps other tests' points
        assert lags == {t: (NOW - W0).total_seconds() for t in CALL_TYPES}
        while (message := queue.receive(30)) is not None:
            handle(message.content, fleet.app, queue=queue, destinations=fleet.planned())
            queue.delete(message)
        points = otel.points()
        durations = points["exporter.unit_duration_seconds"]
        assert sum(p.count for p in durations) == 12  # 6 types x 2 windows
        assert {(p.attributes["destination"], p.attributes["type"], p.attributes["outcome"]) for p in durations} \
            == {("prod-us", t, o) for t, o in [("track", "exported"), ("identify", "exported"), ("page", "exported"),
                                               ("screen", "empty"), ("alias", "empty"), ("group", "empty")]}
        assert {p.value for p in points["exporter.units_in_flight"]
                if p.attributes.get("destination") == "prod-us"} == {0}
    finally:
        queue.close()
        fleet.close()
