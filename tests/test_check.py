"""``python -m shared.cli check`` against a real Azurite and the ETL API emulator, and the SAS
expiry warnings of ``status`` and of the timer run."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta

import pytest

from shared.checks import sas_checks, sas_expiry_warning


def _lines(stdout: str) -> dict[str, str]:
    """check name -> its whole line."""
    out = {}
    for line in stdout.splitlines():
        mark, _, rest = line.partition("  ")
        assert mark in ("PASS", "WARN", "FAIL"), line
        out[rest.split(":", 1)[0]] = line
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_passes_on_the_default_settings(harness):
    result = harness.cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert set(lines) == {"settings", "ETL API", "SAS uses https", "SAS permissions", "SAS expiry",
                          "destination container", "blob read and write", "state table"}
    assert all(line.startswith("PASS") for line in lines.values()), result.stdout
    assert "destination 2184.13699" in lines["ETL API"]
    assert "sp=rcwl" in lines["SAS permissions"]
    # one short line says what goes where: no SAS query, no token, no full settings dump
    settings_line = lines["settings"]
    assert settings_line.startswith("PASS  settings: csv files to http://127.0.0.1:"), settings_line
    assert f"/{harness.container}/exports/segment, from http://127.0.0.1:" in settings_line
    assert "?" not in settings_line and "sig=" not in settings_line and len(settings_line) < 250


def test_check_fails_for_a_sas_without_create_permission(harness):
    sas = harness.azurite.sas_url(harness.container, permission="rwl")
    result = harness.cli("check", extra_env={"BLOB_SAS_URL": sas})
    assert result.returncode == 1
    line = _lines(result.stdout)["SAS permissions"]
    assert line == "FAIL  SAS permissions: missing create (sp=rwl): issue a SAS with sp=rcwl"


def _policy_sas(harness, permission: str) -> str:
    """A SAS whose permissions and expiry are a stored access policy's (the URL has no sp, no se)."""
    from azure.storage.blob import AccessPolicy, generate_container_sas

    from devtools.azurite import ACCOUNT, KEY

    now = datetime.now(UTC)
    harness.azurite.blob_service().get_container_client(harness.container).set_container_access_policy(
        signed_identifiers={"exporter": AccessPolicy(permission=permission, expiry=now + timedelta(days=1),
                                                     start=now - timedelta(minutes=5))})
    token = generate_container_sas(ACCOUNT, harness.container, account_key=KEY, policy_id="exporter")
    return f"{harness.azurite.blob_url}/{harness.container}?{token}"


@pytest.mark.parametrize(("permission", "refused"), [("cwl", "read"), ("rl", "create + write"), ("rcwl", None),
                                                     # create alone makes a Put Blob, not a file of blocks (> 16 MiB)
                                                     ("rcl", "write")])
def test_check_asks_storage_for_the_permissions_a_stored_policy_or_a_role_grants(harness, permission, refused):
    # The URL cannot say what the policy grants (as for a managed identity's role): check asks.
    sas = _policy_sas(harness, permission)
    before = [b.name for b in harness.azurite.blob_service().get_container_client(harness.container)
              .list_blobs(include=["uncommittedblobs"])]
    result = harness.cli("check", extra_env={"BLOB_SAS_URL": sas})
    lines = _lines(result.stdout)
    assert lines["SAS permissions"].startswith("WARN  SAS permissions: set by the stored access policy 'exporter'")
    if refused is None:
        assert result.returncode == 0, result.stdout
        assert lines["blob read and write"].startswith("PASS  blob read and write: allowed (asked without writing")
    else:
        assert result.returncode == 1, result.stdout
        assert lines["blob read and write"] == (
            f"FAIL  blob read and write: the stored access policy 'exporter' of the BLOB_SAS_URL token does not "
            f"grant {refused} (AuthorizationPermissionMismatch), or it expired or was removed: the exporter needs "
            "a policy with rcwl")
    after = [b.name for b in harness.azurite.blob_service().get_container_client(harness.container)
             .list_blobs(include=["uncommittedblobs"])]
    assert after == before  # the probe wrote nothing, not even an uncommitted block


def test_check_fails_for_an_expired_sas(harness):
    sas = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) - timedelta(hours=2))
    result = harness.cli("check", extra_env={"BLOB_SAS_URL": sas})
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert lines["SAS expiry"].startswith("FAIL  SAS expiry: the BLOB_SAS_URL token expired at ")
    assert "issue a new SAS" in lines["SAS expiry"]
    # Azurite refuses the expired SAS too, and the probe says why.
    assert lines["destination container"].startswith("FAIL")
    assert "expired" in lines["destination container"]


def test_check_warns_but_passes_when_the_sas_expires_within_14_days(harness):
    sas = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) + timedelta(days=3))
    result = harness.cli("check", extra_env={"BLOB_SAS_URL": sas})
    assert result.returncode == 0, result.stdout
    line = _lines(result.stdout)["SAS expiry"]
    assert line.startswith("WARN  SAS expiry: the BLOB_SAS_URL token expires at ")
    assert "days left" in line


def test_check_fails_for_a_wrong_token(harness):
    result = harness.cli("check", extra_env={"ETL_API_TOKEN": "not-the-token-0000"})
    assert result.returncode == 1
    line = _lines(result.stdout)["ETL API"]
    assert line.startswith("FAIL  ETL API: the ETL API rejected the token: check ETL_API_TOKEN")
    assert "not-the-token-0000" not in result.stdout + result.stderr


def test_check_fails_for_an_unreachable_endpoint(harness):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = harness.cli("check", extra_env={"ETL_API_ENDPOINT": endpoint}, timeout=60)
    assert result.returncode == 1
    line = _lines(result.stdout)["ETL API"]
    assert line.startswith("FAIL  ETL API: ")
    assert "connection failed" in line and "check ETL_API_ENDPOINT" in line
    # The other checks still run and pass.
    assert _lines(result.stdout)["state table"].startswith("PASS")


def test_check_reports_a_settings_error_as_its_one_failed_line(harness):
    result = harness.cli("check", extra_env={"ETL_API_TOKEN": ""})
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "FAIL  settings: ETL_API_TOKEN is not set: set it to the ETL API bearer token"]
    assert "Traceback" not in result.stderr


def test_check_output_holds_no_secret(harness):
    result = harness.cli("check")
    sig = harness.env["BLOB_SAS_URL"].split("sig=")[1].split("&")[0]
    assert harness.env["ETL_API_TOKEN"] not in result.stdout + result.stderr
    assert sig not in result.stdout + result.stderr
    assert "sig=REDACTED" in result.stdout


@pytest.mark.parametrize(("query", "mark"), [
    ("sp=rcwl&se=2030-01-01T00:00:00Z&sig=x", "PASS"),
    ("sp=rcwld&se=2030-01-01T00:00:00Z&sig=x", "PASS"),
    ("sp=cwl&se=2030-01-01T00:00:00Z&sig=x", "FAIL"),
    ("si=exporter-2025a&sig=x", "WARN"),  # a stored access policy holds the permissions
])
def test_the_sas_permission_check_reads_sp_or_defers_to_a_stored_policy(query, mark):
    url = f"https://acct.blob.core.windows.net/exports?{query}"
    checks = {c.name: c for c in sas_checks(url, datetime(2029, 1, 1, tzinfo=UTC))}
    assert checks["SAS permissions"].line().startswith(mark)
    assert checks["SAS uses https"].ok


def test_a_plain_http_sas_off_loopback_fails_the_transport_check():
    url = "http://acct.blob.core.windows.net/exports?sp=rcwl&se=2030-01-01T00:00:00Z&sig=x"
    (transport, *_) = sas_checks(url, datetime(2029, 1, 1, tzinfo=UTC))
    assert transport.line() == "FAIL  SAS uses https: plain http: use an https SAS URL"


def test_the_expiry_warning_starts_14_days_before():
    url = "https://acct.blob.core.windows.net/exports?sp=rcwl&se=2030-01-15T00:00:00Z&sig=x"
    assert sas_expiry_warning(url, datetime(2029, 12, 31, 23, 59, tzinfo=UTC)) is None
    assert "expires at 2030-01-15T00:00:00Z" in sas_expiry_warning(url, datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    assert "expired at" in sas_expiry_warning(url, datetime(2030, 1, 15, tzinfo=UTC))


def test_status_shows_the_lag_and_the_sas_expiry(harness):
    harness.env["BLOB_SAS_URL"] = harness.azurite.sas_url(
        harness.container, expiry=datetime.now(UTC) + timedelta(days=5))
    assert harness.cli("run").returncode == 0
    result = harness.cli("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("type"))
    assert "lag" in header.split()
    track = next(line for line in lines if line.startswith("track"))
    assert track.split()[-1].endswith("m")  # e.g. "10m": the lag of the last window
    sas_line = lines[-1]
    assert sas_line.startswith("SAS expires ") and " in 4d" in sas_line
    assert "WARNING: the BLOB_SAS_URL token expires at" in sas_line


def test_a_timer_run_logs_a_warning_when_the_sas_expires_within_14_days(harness, caplog):
    from shared.timer import run_tick

    sas = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) + timedelta(days=10))
    caplog.set_level(logging.WARNING, logger="shared.timer")
    summary = run_tick(datetime.now(UTC), harness.settings(BLOB_SAS_URL=sas))
    assert summary.ok
    warnings = [r for r in caplog.records if r.name == "shared.timer" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the BLOB_SAS_URL token expires at" in warnings[0].getMessage()
    assert "sig=" not in warnings[0].getMessage()


def test_a_timer_run_does_not_warn_when_the_sas_has_time_left(harness, caplog):
    from shared.timer import run_tick

    caplog.set_level(logging.WARNING, logger="shared.timer")
    assert run_tick(datetime.now(UTC), harness.settings()).ok
    assert not [r for r in caplog.records if r.name == "shared.timer"]
