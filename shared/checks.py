"""``check``: is this deployment able to export? One line per check, with the fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import urlsplit

from shared.blob_store import sas_expiry, sas_permissions
from shared.errors import ExportError
from shared.redact import redact_text
from shared.settings import Settings
from shared.wiring import build_clients, close_clients

REQUIRED_PERMISSIONS = {"r": "read", "c": "create", "w": "write", "l": "list"}
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


def sas_checks(sas_url: str, now: datetime) -> list[Check]:
    """Pure checks of the SAS URL itself: transport, permissions, expiry."""
    out: list[Check] = []
    host = urlsplit(sas_url).hostname or ""
    loopback = host in ("127.0.0.1", "localhost", "::1")
    https = urlsplit(sas_url).scheme == "https"
    out.append(Check("SAS uses https", https or loopback,
                     "https" if https else ("http on loopback (local only)" if loopback
                                            else "plain http: use an https SAS URL")))
    granted = sas_permissions(sas_url)
    missing = [name for p, name in REQUIRED_PERMISSIONS.items() if p not in granted]
    out.append(Check(
        "SAS permissions", not missing,
        f"grants sp={granted}" if not missing else
        f"missing {', '.join(missing)} (sp={granted or 'none'}): issue a SAS with sp=rcwl",
    ))
    expiry = sas_expiry(sas_url)
    if expiry is None:
        out.append(Check("SAS expiry", True, "no expiry in the URL (a stored access policy?)", warn=True))
    elif expiry <= now:
        out.append(Check("SAS expiry", False, f"expired at {expiry:%Y-%m-%dT%H:%M:%SZ}: issue a new SAS"))
    else:
        left = expiry - now
        out.append(Check("SAS expiry", True,
                         f"expires {expiry:%Y-%m-%dT%H:%M:%SZ} ({left.days} days left)"
                         + ("; renew it soon" if left < SAS_WARN else ""),
                         warn=left < SAS_WARN))
    return out


def _probe(name: str, fn: Callable[[], str], fix: str) -> Check:
    try:
        return Check(name, True, fn())
    except ExportError as exc:
        return Check(name, False, redact_text(str(exc)))
    except Exception as exc:  # an unreachable host surfaces as many exception types
        return Check(name, False, f"{redact_text(str(exc))[:200]}: {fix}")


def run_checks(settings: Settings, out: TextIO, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    checks = [Check("settings", True, repr(settings))]
    clients = build_clients(settings, etl_kwargs={"retry": _one_try()})
    try:
        checks.append(_probe(
            "ETL API", lambda: f"destination {clients.etl.destination().key}",
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


def _one_try():  # type: ignore[no-untyped-def]
    from shared.etl_client import RetryPolicy

    return RetryPolicy(attempts=1)
