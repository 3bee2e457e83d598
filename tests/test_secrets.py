"""Invariant 7 (docs/design.md): with DEBUG logging on (Azure SDK and urllib3 included) and faults triggered, no
log record, exception text or CLI output carries the SAS signature or the ETL API token."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from emulator.faults import Fault
from shared.calltypes import CALL_TYPES
from shared.redact import install_log_redaction
from shared.summary import RunFailed
from shared.timer import run_tick
from tests.conftest import TOKEN
from tests.support.calls import make_window_calls
from tests.support.echoing_etl import ECHO_VARIANTS, EchoingEtl
from tests.support.faulty_transport import (
    FailingTransport,
    LosingTransport,
    is_blob_commit,
    is_table_conditional_write,
)
from tests.support.leaks import assert_no_leak
from tests.support.runs import at, run_with

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


# --- secrets a server sends back (issue 9, item 8) ----------------------------------------------

#: A token with every character that encodes differently in URLs, JSON and reprs.
SPECIAL_TOKEN = 'Zq7"t0k/en+=&%\\s3cr3t-K9wX'


def sig_of(harness) -> str:
    return parse_qs(urlsplit(harness.env["BLOB_SAS_URL"]).query)["sig"][0]


def echoed(harness, variant: str, *, calls_status: int = 403, destination_status: int = 200):
    api = EchoingEtl(sig=sig_of(harness), variant=variant, calls_status=calls_status,
                     destination_status=destination_status)
    harness.env.update(ETL_API_ENDPOINT=api.url, ETL_API_TOKEN=SPECIAL_TOKEN, **START)
    return api


def failure_texts(summary) -> list[str]:
    """Everything a run's outcome shows: the error, each unit's error, the timer's RunFailed
    (its message and its traceback as the Functions host logs it)."""
    failed = RunFailed(summary)
    try:
        raise failed
    except RunFailed:
        shown = traceback.format_exc()
    return [summary.error or "", *(u.error or "" for u in summary.units), str(failed), shown]


@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_a_403_that_echoes_the_token_and_the_sig_leaves_them_nowhere(harness, debug_logs, variant):
    with echoed(harness, variant):
        summary = run_with(harness, NOW)
    assert summary.error and "check ETL_API_TOKEN" in summary.error and "HTTP 403" in summary.error
    assert "\n" not in summary.error and len(summary.error) < 400  # the server's text is cut short
    assert_no_leak(failure_texts(summary) + debug_logs.texts, [SPECIAL_TOKEN, sig_of(harness)])


@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_a_500_that_echoes_the_token_and_the_sig_leaves_them_nowhere(harness, debug_logs, variant):
    with echoed(harness, variant, calls_status=500):
        summary = run_with(harness, NOW)
    assert summary.error is None and len(summary.failures) == len(CALL_TYPES)
    assert all("HTTP 500" in u.error for u in summary.failures)
    assert_no_leak(failure_texts(summary) + debug_logs.texts, [SPECIAL_TOKEN, sig_of(harness)])


def test_the_timer_fails_with_a_message_that_holds_no_echoed_secret(harness, debug_logs):
    with echoed(harness, "token_forms"), pytest.raises(RunFailed) as failed:
        run_tick(at(NOW), harness.settings())
    shown = "".join(traceback.format_exception(failed.value))
    assert "check ETL_API_TOKEN" in shown
    assert_no_leak([shown, *debug_logs.texts], [SPECIAL_TOKEN, sig_of(harness)])


def test_remote_text_loses_its_control_characters(harness):
    # A server's error text reaches messages, logs and terminals: no escape sequences, no line ends.
    import json as _json

    from shared.etl_client import _error_detail

    body = _json.dumps({"error": "bad\x1b[2J\x1b]0;pwned\x07 token\r\nFAKE LOG LINE\u202e\u2028x"}).encode()
    detail = _error_detail(body)
    assert detail == "bad[2J]0;pwned token  FAKE LOG LINEx"


@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_cli_run_shows_no_echoed_secret(harness, variant):
    with echoed(harness, variant):
        proc = harness.cli("-v", "run", "--now", NOW)
    assert proc.returncode == 1, proc.stderr
    assert "error: the ETL API token is not allowed" in proc.stderr and "DEBUG" in proc.stderr
    assert_no_leak([proc.stdout, proc.stderr], [SPECIAL_TOKEN, sig_of(harness)])


def test_cli_run_failed_cells_show_no_echoed_secret(harness):
    with echoed(harness, "token_forms", calls_status=500):
        proc = harness.cli("run", "--now", NOW, extra_env={"RUN_BUDGET_SECONDS": "10"})
    assert proc.returncode == 1, proc.stderr
    assert "failed: ETL API /v1/calls kept failing: HTTP 500" in proc.stdout
    assert_no_leak([proc.stdout, proc.stderr], [SPECIAL_TOKEN, sig_of(harness)])


def account_url_with_sas(harness) -> dict[str, str]:
    """BLOB_ACCOUNT_URL carrying the container SAS's query (a misplaced SAS), instead of BLOB_SAS_URL."""
    parts = urlsplit(harness.env["BLOB_SAS_URL"])
    account = parts.path.strip("/").split("/")[0]
    # https (a token credential needs it): status never reaches the blobs; check's probe fails.
    return {"BLOB_SAS_URL": "", "BLOB_ACCOUNT_URL": f"https://{parts.netloc}/{account}?{parts.query}",
            "BLOB_CONTAINER": harness.container,
            # No identity here: the one credential tried is unavailable at once (no probing).
            "AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential"}


@pytest.mark.parametrize("command", ["status", "check"])
def test_cli_status_and_check_show_no_sas_of_an_account_url(harness, command):
    sig = sig_of(harness)
    with echoed(harness, "sig_forms"):
        proc = harness.cli("-v", command, extra_env=account_url_with_sas(harness))
    if command == "status":  # the place is shown with its query, the signature redacted
        assert "sig=REDACTED" in proc.stdout, proc.stdout + proc.stderr
    else:  # check's settings line names the place without any query
        (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("PASS  settings: ")]
        assert f"/devstoreaccount1/{harness.container}/" in line and "?" not in line, line
    assert_no_leak([proc.stdout, proc.stderr], [SPECIAL_TOKEN, sig])


@pytest.mark.parametrize("command", ["status", "check"])
@pytest.mark.parametrize("variant", ECHO_VARIANTS)
def test_cli_status_and_check_show_no_secret_a_refusing_etl_api_echoes(harness, command, variant):
    with echoed(harness, variant, destination_status=403):
        proc = harness.cli("-v", command)
    assert proc.returncode == 1
    assert "the ETL API token is not allowed" in proc.stdout + proc.stderr
    assert_no_leak([proc.stdout, proc.stderr], [SPECIAL_TOKEN, sig_of(harness)])


def test_an_unexpected_error_reaches_the_functions_host_as_one_scrubbed_line(debug_logs):
    """Whatever raised it (here the ValueError http.client raises for a header it refuses, with
    the value in its message), the host gets an ExportError without the secret, and the log the
    scrubbed traceback."""
    from shared.errors import UnexpectedError
    from shared.redact import register_secret
    from shared.timer import unexpected

    token = "uXq81-Kz0p-4471-Wvq9"
    register_secret(token)
    try:
        raise ValueError(f"Invalid header value b'Bearer {token}'\nsecond line")
    except ValueError as exc:
        error = unexpected(exc)
    assert isinstance(error, UnexpectedError)
    assert str(error) == "unexpected ValueError: Invalid header value b'Bearer REDACTED' second line"
    assert any("the export stopped on an unexpected error" in t and "Traceback" in t for t in debug_logs.texts)
    assert_no_leak([str(error), *debug_logs.texts], [token])

