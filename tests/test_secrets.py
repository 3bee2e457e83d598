"""Invariant 7: with DEBUG logging on (Azure SDK and urllib3 included) and faults triggered, no
log record, exception text or CLI output carries the SAS signature or the ETL API token."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from emulator.faults import Fault
from shared.redact import install_log_redaction
from tests.conftest import TOKEN
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import (
    FailingTransport,
    LosingTransport,
    is_blob_commit,
    is_table_conditional_write,
)
from tests.support.runs import run_with

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:21:01Z"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text += record.exc_text
        self.texts.append(text)


@pytest.fixture
def debug_logs():
    # The entry points (the timer's run_tick and the CLI) install redaction at start; so do we.
    install_log_redaction()
    root = logging.getLogger()
    capture = Capture()
    saved = {n: logging.getLogger(n).level for n in ("", "azure", "urllib3", "shared")}
    root.addHandler(capture)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def secrets_of(harness) -> list[str]:
    sig = parse_qs(urlsplit(harness.env["BLOB_SAS_URL"]).query)["sig"][0]
    return [TOKEN, sig, quote(sig, safe=""), harness.env["ETL_API_TOKEN"]]


def assert_clean(texts, secrets):
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:300]}"


def test_no_secret_in_debug_logs_or_errors_under_storage_and_etl_faults(harness, azurite, container, debug_logs):
    harness.source.add(make_window_calls(W0, per_type={"track": 5, "page": 2}, seed=1))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 3}, seed=2))
    harness.etl.add_fault(Fault("status", status=429, retry_after=0, call_type="page"))
    harness.etl.add_fault(Fault("reset", call_type="track"))
    texts: list[str] = []
    summary = run_with(harness, NOW, blob_transport=LosingTransport(is_blob_commit),
                       table_transport=FailingTransport(is_table_conditional_write, times=1), **START)
    assert summary.ok
    # Permanent failures: an expired SAS, a tampered SAS, a refused token.
    secrets = secrets_of(harness)
    expired = azurite.sas_url(container, expiry=datetime.now(UTC) - timedelta(minutes=1))
    tampered = azurite.sas_url(container).replace("sig=", "sig=AAAA")
    harness.source.add(make_window_calls(W0 + timedelta(minutes=20), per_type={"track": 3}, seed=3))
    for sas in (expired, tampered):
        harness.env["BLOB_SAS_URL"] = sas
        secrets += secrets_of(harness)
        summary = run_with(harness, "2026-11-28T12:31:01Z", **START)
        assert summary.error
        texts.append(summary.error)
    harness.env["BLOB_SAS_URL"] = azurite.sas_url(container)
    harness.etl.add_fault(Fault("status", status=401, times=5))
    summary = run_with(harness, "2026-11-28T12:31:01Z", **START)
    assert summary.error and "ETL_API_TOKEN" in summary.error
    texts.append(summary.error)
    assert len(debug_logs.texts) > 50  # the SDK really logged at DEBUG
    assert any("sig=REDACTED" in t or "sig=" not in t for t in debug_logs.texts)
    assert_clean(debug_logs.texts + texts, [s for s in secrets if s])


@pytest.mark.parametrize("case", ["expired_sas", "tampered_sas", "bad_token", "etl_403", "ok_with_faults"])
def test_no_secret_in_cli_output_at_debug(harness, azurite, container, case):
    harness.source.add(make_window_calls(W0, per_type={"track": 3}, seed=1))
    harness.env.update(START)
    secrets = secrets_of(harness)
    if case == "expired_sas":
        harness.env["BLOB_SAS_URL"] = azurite.sas_url(container, expiry=datetime.now(UTC) - timedelta(minutes=1))
    elif case == "tampered_sas":
        harness.env["BLOB_SAS_URL"] = azurite.sas_url(container).replace("sig=", "sig=AAAA")
    elif case == "bad_token":
        harness.env["ETL_API_TOKEN"] = "another-secret-token-xyz"
    elif case == "etl_403":
        harness.etl.add_fault(Fault("status", status=403, times=20))
    else:
        harness.etl.add_fault(Fault("status", status=503, retry_after=0, times=2))
    secrets += secrets_of(harness)
    proc = harness.cli("-v", "run", "--now", "2026-11-28T12:11:01Z")
    assert proc.returncode == (0 if case == "ok_with_faults" else 1), proc.stderr
    assert "DEBUG" in proc.stderr
    if case != "ok_with_faults":
        assert "error:" in proc.stderr
    assert_clean([proc.stdout, proc.stderr], [s for s in secrets if s])
