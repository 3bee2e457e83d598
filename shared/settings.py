"""Typed settings, read once from the environment and validated at start.

A missing or malformed setting raises :class:`SettingsError` with one line naming the setting and
the fix. Secrets (the token, the SAS URL) are hidden from ``repr``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.errors import SettingsError
from shared.formats import FORMATS
from shared.netloc import is_loopback
from shared.redact import (
    redact_url,
    register_connection_string,
    register_secret,
    register_url,
)
from shared.windows import floor_window, parse_rfc3339

DEFAULT_SCHEDULE = "0 */10 * * * *"


@dataclass(frozen=True)
class Setting:
    """One app setting, declared once: this drives parsing, :data:`ALL_SETTINGS` and the check
    that the README, the Bicep and local.settings.sample.json agree with the code
    (tests/test_settings_consistency.py)."""

    name: str
    type: type
    default: str | int | bool | None = None  # None: no default (required, or unset means absent)
    required: bool = False  # "one of" pairs (BLOB_SAS_URL / BLOB_ACCOUNT_URL) are checked by code
    secret: bool = False  # hidden from repr and every message
    help: str = ""
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    #: Describes one destination (a destination row may set it); False: app-wide, app settings only.
    per_destination: bool = False


_MiB = 1024 * 1024

#: Every app setting the exporter reads (the Bicep and local.settings.sample.json set the same).
SETTINGS: tuple[Setting, ...] = (
    Setting("ETL_API_ENDPOINT", str, required=True, help="ETL API base URL (https; http only on loopback)",
            per_destination=True),
    Setting("ETL_API_TOKEN", str, required=True, secret=True, help="bearer token for the ETL API",
            per_destination=True),
    Setting("EXPORT_FORMAT", str, required=True, choices=FORMATS, help="file format", per_destination=True),
    Setting("BLOB_SAS_URL", str, secret=True, help="container SAS URL with permissions r c w l", per_destination=True),
    Setting("BLOB_ACCOUNT_URL", str, help="instead of a SAS: the account URL, reached with managed identity",
            per_destination=True),
    Setting("BLOB_CONTAINER", str, help="the destination container, with BLOB_ACCOUNT_URL", per_destination=True),
    Setting("BLOB_PATH", str, "", help="folder inside the container", per_destination=True),
    Setting("AzureWebJobsStorage", str, required=True, secret=True,
            help="the app's storage account (the positions table lives here)"),
    Setting("STATE_TABLE", str, "exporterpositions", help="table holding positions and claims"),
    Setting("DESTINATIONS_TABLE", str, "exporterdestinations",
            help="table holding the named destinations (in AzureWebJobsStorage)"),
    Setting("KEY_VAULT_URL", str, help="the Key Vault that @kv:NAME references in destination rows read"),
    Setting("EXPORT_SCHEDULE", str, DEFAULT_SCHEDULE, help="NCRONTAB schedule of the timer, with seconds"),
    Setting("VERIFY_SCHEDULE", str, "", help="NCRONTAB schedule of the daily verify timer; empty: off"),
    Setting("EXPORT_START", str, help="RFC 3339 start of the first window for a new destination", per_destination=True),
    Setting("SETTLE_SECONDS", int, 60, minimum=0, maximum=86_400,
            help="a window is exported only when end + SETTLE_SECONDS <= now", per_destination=True),
    Setting("MAX_WINDOWS_PER_RUN", int, 36, minimum=1, maximum=10_000, help="catch-up bound per tick",
            per_destination=True),
    Setting("RUN_BUDGET_SECONDS", int, 480, minimum=10, maximum=86_400, help="no new window starts after this"),
    Setting("MAX_FILE_BYTES", int, 256 * _MiB, minimum=1024, maximum=190 * 1024**4,
            help="size cap per file, bytes before compression", per_destination=True),
    Setting("MAX_FILE_ROWS", int, 1_000_000, minimum=1, maximum=2_000_000_000, help="row cap per file",
            per_destination=True),
    Setting("EXPORT_COMPRESSION", str, "none", choices=("none", "gzip"), help="gzip for csv and json",
            per_destination=True),
    Setting("PARQUET_COMPRESSION", str, "snappy", choices=("snappy", "zstd", "none"), help="Parquet codec",
            per_destination=True),
    Setting("CSV_ESCAPE_FORMULAS", bool, False, help="prefix ' to CSV cells starting with = + - @",
            per_destination=True),
    Setting("MAX_CALL_BYTES", int, 65536, minimum=256, maximum=16 * _MiB,
            help="lines larger than this are dead-lettered", per_destination=True),
    Setting("MAX_PAGE_BYTES", int, 64 * _MiB, minimum=_MiB, maximum=1024**3,
            help="most bytes one ETL API page may inflate to", per_destination=True),
    Setting("ETL_PAGE_TIMEOUT_SECONDS", int, 60, minimum=1, maximum=3600,
            help="most time one ETL API request may take in total", per_destination=True),
    Setting("UNIT_BUDGET_SECONDS", int, 100, minimum=1, maximum=86_400,
            help="most time one (window, type) may take"),
    Setting("MAX_PAGES_PER_WINDOW", int, 10_000, minimum=1, maximum=1_000_000,
            help="most ETL API pages of one (window, type)", per_destination=True),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", str, secret=True,
            help="enables OpenTelemetry export to Application Insights"),
    Setting("EXPORT_MODE", str, "inline", choices=("inline", "queue"),
            help="what the timer does: inline runs every due unit in the tick; queue plans them on EXPORT_QUEUE"),
    Setting("EXPORT_QUEUE", str, "export-units", help="the work queue in AzureWebJobsStorage (poison: <name>-poison)"),
    Setting("WORK_LEASE_SECONDS", int, 60, minimum=2, maximum=600,
            help="how long a work item stays invisible while its unit runs (renewed)"),
)
SETTING: dict[str, Setting] = {s.name: s for s in SETTINGS}
ALL_SETTINGS: tuple[str, ...] = tuple(SETTING)
#: The settings a destination row may hold (shared/destinations.py); the rest are the app's.
PER_DESTINATION: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.per_destination)


def _hidden(value: str) -> str:
    return "***" if value else ""


@dataclass(frozen=True)
class Settings:
    """The exporter's configuration. Build it with :meth:`from_env` (defaults: :data:`SETTINGS`)."""

    etl_api_endpoint: str
    etl_api_token: str = field(repr=False)
    export_format: str
    blob_sas_url: str = field(repr=False)
    blob_account_url: str
    blob_container: str
    blob_path: str
    storage_connection: str = field(repr=False)
    table_service_uri: str
    state_table: str
    destinations_table: str
    key_vault_url: str
    export_start: datetime | None
    settle_seconds: int
    max_windows_per_run: int
    run_budget_seconds: int
    max_file_bytes: int
    max_file_rows: int
    gzip: bool
    parquet_compression: str
    csv_escape_formulas: bool
    max_call_bytes: int
    max_page_bytes: int
    etl_page_timeout_seconds: int
    unit_budget_seconds: int
    max_pages_per_window: int
    export_schedule: str
    verify_schedule: str
    appinsights_connection_string: str = field(repr=False)
    export_mode: str = "inline"
    export_queue: str = "export-units"
    work_lease_seconds: int = 60
    queue_service_uri: str = ""  # identity-based AzureWebJobsStorage: the queue endpoint

    def __repr__(self) -> str:  # secrets stay out, the rest helps support
        return (
            f"Settings(endpoint={redact_url(self.etl_api_endpoint)!r}, token={_hidden(self.etl_api_token)!r}, "
            f"format={self.export_format!r}, destination={self.destination_label!r}, "
            f"blob_path={self.blob_path!r}, state_table={self.state_table!r}, "
            f"export_start={self.export_start}, settle_seconds={self.settle_seconds}, "
            f"max_windows_per_run={self.max_windows_per_run}, "
            f"run_budget_seconds={self.run_budget_seconds}, max_file_bytes={self.max_file_bytes}, "
            f"max_file_rows={self.max_file_rows}, gzip={self.gzip}, "
            f"parquet_compression={self.parquet_compression!r}, "
            f"csv_escape_formulas={self.csv_escape_formulas}, max_call_bytes={self.max_call_bytes}, "
            f"max_page_bytes={self.max_page_bytes}, "
            f"etl_page_timeout_seconds={self.etl_page_timeout_seconds}, "
            f"unit_budget_seconds={self.unit_budget_seconds}, "
            f"max_pages_per_window={self.max_pages_per_window}, "
            f"export_schedule={self.export_schedule!r}, verify_schedule={self.verify_schedule!r}, "
            f"export_mode={self.export_mode!r}, "
            f"export_queue={self.export_queue!r}, work_lease_seconds={self.work_lease_seconds})"
        )

    __str__ = __repr__

    def summary(self) -> str:
        """One short line for ``check``: what is exported, from where to where (no secret)."""
        if self.blob_sas_url:
            container = _where(self.blob_sas_url)
        else:
            container = f"{_where(self.blob_account_url)}/{self.blob_container}"
        place = container + (f"/{self.blob_path}" if self.blob_path else "")
        return (f"{self.export_format} files to {place}, from {_where(self.etl_api_endpoint)}; "
                f"STATE_TABLE {self.state_table}, EXPORT_MODE {self.export_mode}")

    @property
    def destination_label(self) -> str:
        """Where files go, safe to print (the SAS signature redacted)."""
        if self.blob_sas_url:
            return redact_url(self.blob_sas_url)
        return f"{redact_url(self.blob_account_url).rstrip('/')}/{self.blob_container}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the settings (``os.environ`` by default). Raises SettingsError."""
        env = os.environ if env is None else env
        return _parse(env)

    def for_destination(self, values: Mapping[str, str]) -> Settings:
        """These app settings with the per-destination ones taken from ``values`` (a destination
        row, its secret references resolved), validated exactly as :meth:`from_env` validates
        them. A per-destination setting ``values`` lacks takes its documented default, never this
        app's value (a destination must not inherit another's endpoint, token or container).
        Raises SettingsError; ``values`` must hold per-destination settings only."""
        others = sorted(set(values) - set(PER_DESTINATION))
        if others:
            raise SettingsError(f"{others[0]} is an app-wide setting: set it in the app settings, not in a "
                                "destination")
        return replace(self, **_destination_fields(values))


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if value.startswith("@Microsoft.KeyVault("):
        raise SettingsError(
            f"{name}: the Key Vault reference did not resolve; check that the app's identity has "
            "'Key Vault Secrets User' on the vault and that the secret exists"
        )
    return value


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = _get(env, name)
    if not value:
        raise SettingsError(f"{name} is not set: set it to {what}")
    return value


def _int(env: Mapping[str, str], name: str) -> int:
    spec = SETTING[name]
    assert isinstance(spec.default, int) and spec.minimum is not None and spec.maximum is not None
    minimum, maximum = spec.minimum, spec.maximum
    raw = _get(env, name)
    if not raw:
        return spec.default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value} is out of range: use {minimum}..{maximum}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name).lower()
    if not raw:
        return bool(SETTING[name].default)
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _choice(env: Mapping[str, str], name: str) -> str:
    spec = SETTING[name]
    choices, default = spec.choices, spec.default
    assert choices and (default is None or isinstance(default, str))
    raw = _get(env, name).lower()
    if not raw:
        if default is None:
            raise SettingsError(f"{name} is not set: set it to one of {', '.join(choices)}")
        return default
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} is not supported: use one of {', '.join(choices)}")
    return raw


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = redact_url(value)
        raise SettingsError(f"{name}={shown!r} is not an http(s) URL")
    try:
        port = parts.port  # urlsplit checks the port only when asked: every later read would raise
    except ValueError:
        port = 0
    if port == 0:  # the URL is not shown: its text before the host may be a credential
        raise SettingsError(f"{name} has a port that is not a number from 1 to 65535: fix or remove "
                            "the :<port> after the host")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SettingsError(
            f"{name} must use https (plain http is only allowed on loopback for local runs)"
        )
    return value


def _sas_url(value: str) -> str:
    _http_url("BLOB_SAS_URL", value)
    parts = urlsplit(value)
    query = parse_qs(parts.query)
    if "sig" not in query:
        raise SettingsError(
            "BLOB_SAS_URL has no SAS token (no 'sig='): use a container SAS URL like "
            "https://<account>.blob.core.windows.net/<container>?sv=...&sp=rcwl&sig=..."
        )
    path = [p for p in parts.path.split("/") if p]
    # Azurite and other emulators put the account name first in the path.
    container_segments = 2 if is_loopback(parts.hostname) else 1
    if len(path) != container_segments:
        raise SettingsError(
            "BLOB_SAS_URL must point at a container (…/<container>?<sas>), not an account or "
            "a blob; put a folder in BLOB_PATH"
        )
    return value


def _blob_path(raw: str) -> str:
    path = raw.strip().strip("/")
    if any(part in ("", ".", "..") for part in path.split("/")) and path:
        raise SettingsError(f"BLOB_PATH={raw!r} has an empty, '.' or '..' segment")
    if len(path) > 512:
        raise SettingsError("BLOB_PATH is longer than 512 characters")
    return path


def _storage(env: Mapping[str, str]) -> tuple[str, str]:
    """(connection string, table service URI): one of the two forms Functions accepts."""
    conn = _get(env, "AzureWebJobsStorage")
    if conn:
        if conn == "UseDevelopmentStorage=true" or "AccountName=" in conn or "TableEndpoint=" in conn:
            return conn, ""
        raise SettingsError(
            "AzureWebJobsStorage is not a storage connection string (expected "
            "'DefaultEndpointsProtocol=...;AccountName=...' or 'UseDevelopmentStorage=true')"
        )
    uri = _get(env, "AzureWebJobsStorage__tableServiceUri")
    account = _get(env, "AzureWebJobsStorage__accountName")
    if not uri and account:
        uri = f"https://{account}.table.core.windows.net"
    if uri:
        return "", _http_url("AzureWebJobsStorage__tableServiceUri", uri)
    raise SettingsError(
        "AzureWebJobsStorage is not set: set it to the function app's storage connection string "
        "(locally 'UseDevelopmentStorage=true' for Azurite) or use the identity-based "
        "AzureWebJobsStorage__accountName"
    )


def _raw(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    return "" if value.startswith("@Microsoft.KeyVault(") else value  # a reference, not the secret


def _where(url: str) -> str:
    """A URL's scheme, host, port and path only: no user name or password, query or fragment,
    where a credential may sit under any name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def _register_secrets(env: Mapping[str, str]) -> None:
    """Register every secret value before anything is validated, so that no message (a settings
    error included) and nothing shown later can carry one (:mod:`shared.redact`)."""
    register_secret(_raw(env, "ETL_API_TOKEN"))
    for name in ("ETL_API_ENDPOINT", "BLOB_SAS_URL", "BLOB_ACCOUNT_URL",
                 "AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__queueServiceUri", "KEY_VAULT_URL"):
        register_url(_raw(env, name))
    register_connection_string(_raw(env, "AzureWebJobsStorage"))


def _parse(env: Mapping[str, str]) -> Settings:
    _register_secrets(env)
    destination = _destination_fields(env)
    connection, table_uri = _storage(env)
    return Settings(
        **destination,
        storage_connection=connection,
        table_service_uri=table_uri,
        state_table=_table_name(env, "STATE_TABLE"),
        destinations_table=_table_name(env, "DESTINATIONS_TABLE"),
        key_vault_url=_key_vault_url(env),
        run_budget_seconds=_int(env, "RUN_BUDGET_SECONDS"),
        unit_budget_seconds=_int(env, "UNIT_BUDGET_SECONDS"),
        export_schedule=export_schedule(env),
        verify_schedule=verify_schedule(env),
        appinsights_connection_string=_get(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
        export_mode=_choice(env, "EXPORT_MODE"),
        export_queue=_queue_name(_get(env, "EXPORT_QUEUE") or str(SETTING["EXPORT_QUEUE"].default)),
        work_lease_seconds=_int(env, "WORK_LEASE_SECONDS"),
        queue_service_uri=_queue_uri(env, table_uri),
    )


def _destination_fields(env: Mapping[str, str]) -> dict[str, Any]:
    """The :class:`Settings` fields of the per-destination settings (:data:`PER_DESTINATION`)."""
    _register_secrets({k: v for k, v in env.items() if k in PER_DESTINATION})
    endpoint = _http_url(
        "ETL_API_ENDPOINT",
        _required(env, "ETL_API_ENDPOINT", "the ETL API base URL, e.g. https://etl.example.com"),
    ).rstrip("/")
    token = _required(env, "ETL_API_TOKEN", "the ETL API bearer token")
    if not all("!" <= c <= "~" for c in token):
        # It could not be sent as a header (HTTP would fail with the value in its message).
        raise SettingsError(
            "ETL_API_TOKEN holds a space, a line break, a control or a non-ASCII character: "
            "copy the token again (a bearer token is printable ASCII)"
        )
    export_format = _choice(env, "EXPORT_FORMAT")
    sas = _get(env, "BLOB_SAS_URL")
    account_url = _get(env, "BLOB_ACCOUNT_URL")
    container = _get(env, "BLOB_CONTAINER")
    if sas and account_url:
        raise SettingsError("set either BLOB_SAS_URL or BLOB_ACCOUNT_URL + BLOB_CONTAINER, not both")
    if sas:
        _sas_url(sas)
    elif account_url:
        if urlsplit(_http_url("BLOB_ACCOUNT_URL", account_url)).scheme != "https":
            # The SDK refuses a token credential over http (a raw ValueError at every run).
            raise SettingsError(
                "BLOB_ACCOUNT_URL must use https: the managed identity's token is only sent over "
                "https (for a local Azurite, use BLOB_SAS_URL)"
            )
        if not container:
            raise SettingsError("BLOB_CONTAINER is not set: with BLOB_ACCOUNT_URL, name the container")
    else:
        raise SettingsError(
            "BLOB_SAS_URL is not set: set it to a container SAS URL with read, create, write "
            "and list permissions (or use BLOB_ACCOUNT_URL + BLOB_CONTAINER with managed identity)"
        )
    start_raw = _get(env, "EXPORT_START")
    export_start = None
    if start_raw:
        try:
            export_start = floor_window(parse_rfc3339(start_raw))
        except ValueError:
            raise SettingsError(
                f"EXPORT_START={start_raw!r} is not an RFC 3339 time like 2026-01-01T00:00:00Z"
            ) from None
    compression = _choice(env, "EXPORT_COMPRESSION")
    if compression == "gzip" and export_format == "parquet":
        raise SettingsError(
            "EXPORT_COMPRESSION=gzip applies to csv and json; for parquet use PARQUET_COMPRESSION"
        )
    return {
        "etl_api_endpoint": endpoint,
        "etl_api_token": token,
        "export_format": export_format,
        "blob_sas_url": sas,
        "blob_account_url": account_url.rstrip("/"),
        "blob_container": container,
        "blob_path": _blob_path(_get(env, "BLOB_PATH")),
        "export_start": export_start,
        "settle_seconds": _int(env, "SETTLE_SECONDS"),
        "max_windows_per_run": _int(env, "MAX_WINDOWS_PER_RUN"),
        "max_file_bytes": _int(env, "MAX_FILE_BYTES"),
        "max_file_rows": _int(env, "MAX_FILE_ROWS"),
        "gzip": compression == "gzip",
        "parquet_compression": _choice(env, "PARQUET_COMPRESSION"),
        "csv_escape_formulas": _bool(env, "CSV_ESCAPE_FORMULAS"),
        "max_call_bytes": _int(env, "MAX_CALL_BYTES"),
        "max_page_bytes": _int(env, "MAX_PAGE_BYTES"),
        "etl_page_timeout_seconds": _int(env, "ETL_PAGE_TIMEOUT_SECONDS"),
        "max_pages_per_window": _int(env, "MAX_PAGES_PER_WINDOW"),
    }


def _table_name(env: Mapping[str, str], name: str) -> str:
    table = _get(env, name) or str(SETTING[name].default)
    if not (3 <= len(table) <= 63 and table.isalnum() and table[0].isalpha()):
        raise SettingsError(
            f"{name}={table!r} is not a valid table name (3-63 letters and digits, "
            "starting with a letter)"
        )
    return table


def _key_vault_url(env: Mapping[str, str]) -> str:
    raw = _get(env, "KEY_VAULT_URL")
    if not raw:
        return ""
    if urlsplit(_http_url("KEY_VAULT_URL", raw)).scheme != "https":
        raise SettingsError("KEY_VAULT_URL must use https, e.g. https://<vault>.vault.azure.net/")
    return raw.rstrip("/") + "/"


#: A daily verify at 03:30 UTC: the example the settings' errors and the docs give.
DAILY_VERIFY = "0 30 3 * * *"
def _queue_name(name: str) -> str:
    """A queue name whose poison queue (``<name>-poison``) is valid too (3-63 characters in all)."""
    if not (3 <= len(name) <= 56 and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)):
        raise SettingsError(
            f"EXPORT_QUEUE={name[:70]!r} is not a valid queue name: use 3-56 of a-z, 0-9 and single '-' "
            "(starting and ending with a letter or digit; the poison queue adds '-poison')"
        )
    return name


def _queue_uri(env: Mapping[str, str], table_uri: str) -> str:
    """The queue endpoint of an identity-based AzureWebJobsStorage ('' with a connection string)."""
    if not table_uri:
        return ""
    uri = _get(env, "AzureWebJobsStorage__queueServiceUri")
    account = _get(env, "AzureWebJobsStorage__accountName")
    if not uri and account:
        uri = f"https://{account}.queue.core.windows.net"
    if not uri:
        return ""  # the work queue says so when it is used (an inline deployment needs none)
    return _http_url("AzureWebJobsStorage__queueServiceUri", uri)


_CRON_FIELDS = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def export_schedule(env: Mapping[str, str] | None = None) -> str:
    """``EXPORT_SCHEDULE`` (default :data:`DEFAULT_SCHEDULE`), checked as a six-field NCRONTAB.

    The timer reads it when the app loads (shared/timer.py): the trigger is bound to the value,
    not to ``%EXPORT_SCHEDULE%``, so an app without the setting runs on the default.
    """
    return _schedule(env, "EXPORT_SCHEDULE") or DEFAULT_SCHEDULE


def verify_schedule(env: Mapping[str, str] | None = None) -> str:
    """``VERIFY_SCHEDULE``, checked as a six-field NCRONTAB; "" (the default) leaves the verify
    timer out of the app (shared/verify_timer.py)."""
    return _schedule(env, "VERIFY_SCHEDULE")


def _schedule(env: Mapping[str, str] | None, name: str) -> str:
    """The setting ``name`` as a checked six-field NCRONTAB schedule, or "" when unset."""
    env = os.environ if env is None else env
    raw = _get(env, name)
    if not raw:
        return ""
    fields = raw.split()
    usage = ("use six fields 'second minute hour day month day-of-week', "
             f"e.g. '{DEFAULT_SCHEDULE}' (every 10 minutes) or '{DAILY_VERIFY}' (daily at 03:30)")
    if len(fields) != 6:
        raise SettingsError(f"{name}={raw!r} is not an NCRONTAB schedule: {usage}")
    for text, (field_name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        if not _cron_field_ok(text, low, high, names):
            raise SettingsError(
                f"{name}={raw!r}: the {field_name} field {text!r} is not valid "
                f"(numbers {low}-{high}{', names' if names else ''}, '*', ranges a-b, lists a,b, "
                f"steps /n): {usage}"
            )
    return " ".join(fields)


def _cron_field_ok(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    def value(token: str) -> int | None:
        if token.upper() in names:
            return names.index(token.upper()) + low
        if token.isascii() and token.isdigit() and len(token) <= 2 and low <= int(token) <= high:
            return int(token)
        return None

    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit() and 0 < int(step) <= high + 1):
            return False
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        a = value(first)
        b = value(last) if dash else a
        if a is None or b is None or a > b:
            return False
    return True


def load_local_settings(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Merge the ``Values`` of a local.settings.json under ``env`` (the environment wins, as with func)."""
    merged: dict[str, str] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{path}: not valid JSON ({exc})") from None
        values = data.get("Values", {}) if isinstance(data, dict) else {}
        merged.update({k: str(v) for k, v in values.items()})
    merged.update(env)
    return merged

