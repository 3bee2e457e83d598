"""``check``: is this deployment able to export? One line per check, with the fix.

Each line reads ``PASS|WARN|FAIL  <name>: <detail / fix>``. A WARN is a pass that needs attention
soon (a SAS that expires within 14 days, permissions that cannot be read from the URL). Nothing
here writes data: the probes read the destination, list the container and read the state table
(creating the table if it is absent, as the first run would).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import parse_qs, urlsplit

from shared.blob_store import sas_expiry, sas_permissions
from shared.clients import build_clients, close_clients
from shared.errors import ExportError
from shared.netloc import is_loopback
from shared.redact import redact_text
from shared.settings import Settings
from shared.windows import format_rfc3339

REQUIRED_PERMISSIONS = {"r": "read", "c": "create", "w": "write", "l": "list"}
#: Warn this long before the SAS expires (check, status and every timer run).
SAS_WARN = timedelta(days=14)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warn: bool = False

    def line(self) -> str:
        mark = "WARN" if (self.ok and self.warn) else ("PASS" if self.ok else "FAIL")
        return f"{mark}  {self.name}: {self.detail}"


def sas_expiry_warning(sas_url: str, now: datetime) -> str | None:
    """A one-line warning when the SAS has expired or expires within :data:`SAS_WARN`, else None."""
    expiry = sas_expiry(sas_url) if sas_url else None
    if expiry is None:
        return None
    if expiry <= now:
        return f"the BLOB_SAS_URL token expired at {format_rfc3339(expiry)}: issue a new SAS (sp=rcwl)"
    left = expiry - now
    if left < SAS_WARN:
        return (f"the BLOB_SAS_URL token expires at {format_rfc3339(expiry)} ({_days(left)} left): "
                "issue a new SAS and update the Key Vault secret blob-sas-url")
    return None


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.1f} days" if days < 1 else f"{int(days)} days"


def sas_checks(sas_url: str, now: datetime) -> list[Check]:
    """Pure checks of the SAS URL itself: transport, permissions, expiry."""
    out: list[Check] = []
    parts = urlsplit(sas_url)
    host = parts.hostname or ""
    loopback = is_loopback(host)
    https = parts.scheme == "https"
    out.append(Check("SAS uses https", https or loopback,
                     "https" if https else ("http on loopback (local only)" if loopback
                                            else "plain http: use an https SAS URL")))
    granted = sas_permissions(sas_url)
    policy = parse_qs(parts.query).get("si", [""])[0]
    missing = [name for p, name in REQUIRED_PERMISSIONS.items() if p not in granted]
    if not granted and policy:
        out.append(Check("SAS permissions", True,
                         f"set by the stored access policy {policy!r}: make sure it grants rcwl",
                         warn=True))
    else:
        out.append(Check(
            "SAS permissions", not missing,
            f"grants sp={granted}" if not missing else
            f"missing {', '.join(missing)} (sp={granted or 'none'}): issue a SAS with sp=rcwl",
        ))
    expiry = sas_expiry(sas_url)
    warning = sas_expiry_warning(sas_url, now)
    if expiry is None:
        out.append(Check("SAS expiry", True, "no expiry in the URL (a stored access policy?)", warn=True))
    elif expiry <= now:
        out.append(Check("SAS expiry", False, warning or "expired"))
    else:
        detail = warning or f"expires {format_rfc3339(expiry)} ({_days(expiry - now)} left)"
        out.append(Check("SAS expiry", True, detail, warn=warning is not None))
    return out


def _probe(name: str, fn: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, fn())
    except ExportError as exc:  # our errors name the cause; a transient one also needs the fix
        message = redact_text(str(exc))
        return Check(name, False, message + (f": {fix}" if exc.transient and fix not in message else ""))
    except Exception as exc:  # an unreachable host surfaces as many exception types
        return Check(name, False, f"{redact_text(str(exc))[:200]}: {fix}")


def _allowed(probe: Callable[[], None]) -> str:
    probe()
    return "allowed (asked without writing: a read and a conditional write that cannot land)"


def run_checks(settings: Settings, out: TextIO, now: datetime | None = None) -> bool:
    """Run every check, print one line each to ``out``; True when none failed (WARN passes)."""
    now = now or datetime.now(UTC)
    checks = [Check("settings", True, settings.summary())]
    # One try for the ETL API and one retry for storage: check should answer in seconds and
    # name the cause, where a run's retries would wait it out.
    clients = build_clients(settings, etl_kwargs={"retry": _one_try()},
                            blob_kwargs={"retry_total": 1}, table_kwargs={"retry_total": 1})
    try:
        checks.append(_probe(
            "ETL API", lambda: f"GET /v1/destination -> destination {clients.etl.destination().key}",
            "check ETL_API_ENDPOINT and that the API is reachable",
        ))
        if settings.blob_sas_url:
            checks.extend(sas_checks(settings.blob_sas_url, now))

        def list_container() -> str:
            clients.blobs.call("l", lambda: next(iter(clients.blobs.container.list_blobs(
                name_starts_with=clients.blobs.name("_"), results_per_page=1).by_page()), None))
            return f"reachable: {settings.destination_label}"

        checks.append(_probe("destination container", list_container,
                             "check BLOB_SAS_URL (or BLOB_ACCOUNT_URL/BLOB_CONTAINER and the role)"))
        if checks[-1].ok:
            checks.append(_probe("blob read and write", lambda: _allowed(clients.blobs.probe_access),
                                 "grant the identity 'Storage Blob Data Contributor' (or a SAS with sp=rcwl)"))

        def table() -> str:
            clients.state.ensure_table()
            clients.state.get("check", "check")
            return f"table {settings.state_table} reachable"

        checks.append(_probe("state table", table, "check AzureWebJobsStorage"))
    finally:
        close_clients(clients)
    for c in checks:
        print(c.line(), file=out)
    return all(c.ok for c in checks)


def settings_failure(message: str, out: TextIO) -> None:
    """The one line ``check`` prints when the settings themselves do not validate."""
    print(Check("settings", False, redact_text(message)).line(), file=out)


def log_sas_expiry(sas_url: str, now: datetime, logger: logging.Logger) -> str | None:
    """Log a WARNING when the SAS is about to expire (or has); returns the message."""
    warning = sas_expiry_warning(sas_url, now)
    if warning:
        logger.warning("%s", warning)
    return warning


def _one_try():  # type: ignore[no-untyped-def]
    from shared.etl_client import RetryPolicy

    return RetryPolicy(attempts=1)
