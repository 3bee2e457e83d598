"""Named destinations: one row each in ``DESTINATIONS_TABLE``, beside the app's own ``default``.

The app settings describe the destination named ``default`` (as every earlier version did, an
existing deployment needs no new setting). More destinations live in the table
``DESTINATIONS_TABLE`` (default ``exporterdestinations``) of the app's storage
(``AzureWebJobsStorage``, the table service that holds ``STATE_TABLE``): PartitionKey
``destination``, RowKey the name (shared/sequence.py's rule: 1-32 of ``a-z 0-9 -``), a boolean
``Enabled`` and one string property per per-destination setting under its usual name
(``ETL_API_ENDPOINT``, ``EXPORT_FORMAT``, ``BLOB_SAS_URL``...: ``PER_DESTINATION`` in
shared/settings.py). App-wide settings (``AzureWebJobsStorage``, ``STATE_TABLE``, the budgets,
schedule, telemetry) are the app's and are refused in a row. A secret setting holds a reference,
``@env:NAME`` or ``@kv:NAME`` (shared/secret_refs.py), never its value.

A setting a row leaves out takes its documented default, never the app's value: a destination
does not silently inherit another's endpoint, token or container.

:func:`load_destinations` is what runs, plans, ``status`` and ``check`` call: ``default`` first,
then the rows by name, each with its validated :class:`Settings` or, for a row that does not
validate or whose reference does not resolve, a one-line ``error`` (that destination is skipped,
the others go on). A named destination's state rows are its own sequence (``Sequence(name)``:
``{integration}.{action}~{name}``, its own pin row), so two destinations never share state,
even with the same ids and container. Removing a row stops its export; its state and files stay,
and adding the name again goes on from them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from shared.azure_errors import refused_by_app_storage, storage_call
from shared.errors import ExportError, SettingsError, StoragePermissionError
from shared.redact import SECRET_QUERY_KEYS
from shared.secret_refs import SecretReader, SecretResolver, is_secret, parse_ref
from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT, Sequence, check_name
from shared.settings import PER_DESTINATION, SETTING, Settings
from shared.state_store import make_table_service

log = logging.getLogger(__name__)

#: Destinations whose secret references are resolved at once by :func:`load_destinations`.
RESOLVE_THREADS = 8

#: PartitionKey of every destination row.
ROW_PARTITION = "destination"
ENABLED = "Enabled"
_SYSTEM = {"PartitionKey", "RowKey", "Timestamp", "etag", ENABLED}
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class NamedDestination:
    """One destination as a run sees it: ``settings`` None and ``error`` set when it cannot run."""

    name: str
    sequence: Sequence
    enabled: bool
    settings: Settings | None
    error: str | None = None
    #: What the row stores (secrets as references); empty for ``default`` (the app settings).
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.settings is not None


@dataclass(frozen=True)
class DestinationRow:
    name: str
    enabled: bool
    values: dict[str, str]
    error: str | None = None  # a row this version cannot read (a hand edit)


def _name(name: str) -> str:
    try:
        check_name(name)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return name


def _not_default(name: str, what: str) -> str:
    if _name(name) == DEFAULT_DESTINATION:
        raise SettingsError(f"'{DEFAULT_DESTINATION}' is the destination the app settings describe: it cannot "
                            f"be {what} here; change the app settings instead")
    return name


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``SETTING=VALUE`` words of ``destinations add`` as a row's values; SettingsError (one line,
    never quoting a secret) for a malformed word, an unknown or app-wide setting, a repeat, an
    empty value or a secret that is not a reference."""
    values: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        name, eq, value = pair.partition("=")
        name = name.strip()
        # Never quote the word itself: a pasted secret may be in it.
        if not eq or not _SETTING_NAME.fullmatch(name):
            raise SettingsError(f"argument {number} is not SETTING=VALUE (e.g. EXPORT_FORMAT=parquet)")
        if name not in SETTING:
            raise SettingsError(f"{name} is not a setting: use the names of the README's settings table")
        if name not in PER_DESTINATION:
            raise SettingsError(f"{name} is an app-wide setting: set it in the app settings, not in a destination")
        if name in values:
            raise SettingsError(f"{name} is given twice: give each setting once")
        value = value.strip()
        if not value:
            raise SettingsError(f"{name} is empty: leave it out to take its default")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise SettingsError(f"{name} holds a control character or a line break: remove it")
        if is_secret(name):
            parse_ref(name, value)
        elif name.endswith(("_URL", "_ENDPOINT")):
            _no_credential(name, value)
        values[name] = value
    return values


def _no_credential(name: str, value: str) -> None:
    """A URL that is not a secret setting is stored in clear: refuse one that carries a credential
    (a password, a SAS signature or a token in its query), naming what to do, never the value."""
    parts = urlsplit(value)
    try:
        password = parts.password
    except ValueError:
        password = None
    keys = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    found = "a password" if password else (f"'{sorted(keys & SECRET_QUERY_KEYS)[0]}=' in its query"
                                            if keys & SECRET_QUERY_KEYS else "")
    if found:
        where = ("use BLOB_SAS_URL=@env:APP_SETTING or @kv:SECRET_NAME for a SAS URL"
                 if name == "BLOB_ACCOUNT_URL" else "give the URL without it")
        raise SettingsError(f"{name} holds a credential ({found}): a destination row is stored in clear and "
                            f"holds no secret; {where}")


def validate(app: Settings, values: Mapping[str, str]) -> Settings:
    """The destination's settings as :meth:`Settings.for_destination` validates them, each secret
    reference standing for a well-formed value (references resolve when the destination runs)."""
    stand_in = {
        "ETL_API_TOKEN": secrets.token_hex(16),
        "BLOB_SAS_URL": f"https://stand-in.blob.core.windows.net/stand-in?sp=rcwl&sig={secrets.token_hex(16)}",
    }
    resolved = {}
    for name, value in values.items():
        if is_secret(name):
            parse_ref(name, value)
            resolved[name] = stand_in[name]
        else:
            resolved[name] = value
    return app.for_destination(resolved)


class DestinationStore:
    """The rows of ``DESTINATIONS_TABLE`` (conditional writes are not needed: an operator's edit)."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self.service = service
        self.table_name = table_name
        self.table = service.get_table_client(table_name)

    def _call(self, fn: Any, *, reading: bool = False) -> Any:
        missing = {} if reading else {
            "TableNotFound": f"the destinations table {self.table_name} does not exist: check DESTINATIONS_TABLE",
        }
        return storage_call(fn, service="table", denied=_denied, missing=missing, url=self.service.url)

    def rows(self) -> list[DestinationRow]:
        try:
            entities = self._call(lambda: list(self.table.query_entities(f"PartitionKey eq '{ROW_PARTITION}'")),
                                  reading=True)
        except ResourceNotFoundError:  # no table: no named destination
            return []
        return sorted((_row(e) for e in entities), key=lambda r: r.name)

    def get(self, name: str) -> DestinationRow | None:
        try:
            entity = self._call(lambda: self.table.get_entity(ROW_PARTITION, name), reading=True)
        except ResourceNotFoundError:
            return None
        return _row(entity)

    def put(self, name: str, values: Mapping[str, str]) -> bool:
        """Store ``name`` with exactly ``values`` (replacing its settings, keeping Enabled); True if new."""
        with contextlib.suppress(ResourceExistsError):
            self._call(lambda: self.service.create_table(self.table_name))
        current = self.get(name)
        entity = {"PartitionKey": ROW_PARTITION, "RowKey": name,
                  ENABLED: True if current is None else current.enabled, **values}
        self._call(lambda: self.table.upsert_entity(entity, mode=UpdateMode.REPLACE))
        return current is None

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """False when there is no such row."""
        if self.get(name) is None:
            return False
        entity = {"PartitionKey": ROW_PARTITION, "RowKey": name, ENABLED: enabled}
        try:
            self._call(lambda: self.table.update_entity(entity, mode=UpdateMode.MERGE))
        except ResourceNotFoundError:  # removed meanwhile
            return False
        return True

    def remove(self, name: str) -> bool:
        if self.get(name) is None:
            return False
        self._call(lambda: self.table.delete_entity(ROW_PARTITION, name))
        return True

    def close(self) -> None:
        self.service.close()


def _denied(exc: HttpResponseError) -> StoragePermissionError:
    return refused_by_app_storage(exc, "the destinations table", "'Storage Table Data Contributor'")


def _row(entity: Mapping[str, Any]) -> DestinationRow:
    name = str(entity.get("RowKey", ""))
    enabled = entity.get(ENABLED, True)
    values: dict[str, str] = {}
    error = None
    for key, value in entity.items():
        if key in _SYSTEM:
            continue
        if not isinstance(value, str):
            error = error or f"{key} is not a string in the row: store it again with 'destinations add'"
            continue
        values[key] = value
    if not isinstance(enabled, bool):
        error = error or f"{ENABLED} is not a boolean in the row: use 'destinations enable' or 'disable'"
        enabled = False
    return DestinationRow(name, enabled, values, error)


def open_store(settings: Settings, **table_kwargs: Any) -> DestinationStore:
    service = make_table_service(settings.storage_connection, settings.table_service_uri, **table_kwargs)
    return DestinationStore(service, settings.destinations_table)


def _named(app: Settings, row: DestinationRow, resolver: SecretResolver) -> NamedDestination:
    def failed(message: str) -> NamedDestination:
        return NamedDestination(row.name, sequence, row.enabled, None, f"destination {row.name}: {message}",
                                row.values)

    try:
        sequence = Sequence(row.name)
    except ValueError as exc:  # a row added by hand under a name this version cannot key
        sequence = LIVE_DEFAULT
        return NamedDestination(row.name, sequence, False, None, f"destination row: {exc}; remove the row",
                                row.values)
    if row.name == DEFAULT_DESTINATION:
        return failed("'default' is the app settings' destination: remove this row")
    if row.error:
        return failed(row.error)
    try:
        for name in row.values:
            if name not in PER_DESTINATION:
                raise SettingsError(f"{name} is {'not a setting' if name not in SETTING else 'app-wide'}: "
                                    "remove it from the row (destinations add NAME ... replaces the row)")
        values = {n: resolver.resolve(n, v) if is_secret(n) else v for n, v in row.values.items()}
        settings = app.for_destination(values)
    except ExportError as exc:
        return failed(str(exc))
    return NamedDestination(row.name, sequence, row.enabled, settings, None, row.values)


def _resolver(settings: Settings, env: Mapping[str, str] | None, vault: SecretReader | None) -> SecretResolver:
    return SecretResolver(os.environ if env is None else env, settings.key_vault_url, vault)


def load_destinations(settings: Settings, *, include_disabled: bool = False, env: Mapping[str, str] | None = None,
                      vault: SecretReader | None = None, store: DestinationStore | None = None,
                      table_kwargs: Mapping[str, Any] | None = None) -> list[NamedDestination]:
    """``default`` (these app settings), then every named destination by name (disabled ones only
    with ``include_disabled``), each validated with its secrets resolved, or with its ``error``.

    ``env`` is where ``@env:`` references look (the app settings: ``os.environ`` by default),
    ``vault`` reads ``@kv:`` ones (default: ``KEY_VAULT_URL`` with the managed identity). Raises
    an ExportError only when the destinations table itself cannot be read (``table_kwargs`` reach
    its client: ``check`` retries once)."""
    own = store is None
    store = store or open_store(settings, **(table_kwargs or {}))
    try:
        rows = store.rows()
    finally:
        if own:
            store.close()
    resolver = _resolver(settings, env, vault)
    wanted = [row for row in rows if row.enabled or include_disabled]
    if len(wanted) <= 1:
        return [NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings),
                *(_named(settings, row, resolver) for row in wanted)]
    # Each row's secrets are a Key Vault read or two (cached a while): read a few rows at once, so a
    # tick over many destinations does not wait for them one by one (a slow vault slows it less).
    with ThreadPoolExecutor(min(RESOLVE_THREADS, len(wanted)), thread_name_prefix="resolve") as pool:
        named = list(pool.map(lambda row: _named(settings, row, resolver), wanted))
    return [NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings), *named]


def get_destination(settings: Settings, name: str, *, env: Mapping[str, str] | None = None,
                    vault: SecretReader | None = None, store: DestinationStore | None = None,
                    table_kwargs: Mapping[str, Any] | None = None) -> NamedDestination:
    """One destination by name (enabled or not); SettingsError when there is none of that name."""
    if _name(name) == DEFAULT_DESTINATION:
        return NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings)
    own = store is None
    store = store or open_store(settings, **(table_kwargs or {}))
    try:
        row = store.get(name)
    finally:
        if own:
            store.close()
    if row is None:
        raise SettingsError(f"there is no destination {name!r} in DESTINATIONS_TABLE {settings.destinations_table}: "
                            "'destinations list' shows them")
    return _named(settings, row, _resolver(settings, env, vault))


# -- the operator's edits (the CLI's ``destinations`` commands) ------------------------------------

def add_destination(settings: Settings, name: str, pairs: Iterable[str], *, store: DestinationStore) -> bool:
    """Validate and store destination ``name`` (replacing its settings, never its state); True if new.
    Nothing is stored when anything is wrong (SettingsError)."""
    _not_default(name, "added")
    values = parse_assignments(pairs)
    try:
        validate(settings, values)
    except SettingsError as exc:
        if store.get(name) is None:
            raise
        # A setting left out takes its default, not the row's value of before: say so.
        raise SettingsError(f"{exc} (destinations add replaces all of {name}'s settings: repeat the others "
                            "from 'destinations list')") from None
    return store.put(name, values)


def set_enabled(name: str, enabled: bool, *, store: DestinationStore) -> None:
    _not_default(name, "enabled" if enabled else "disabled")
    if not store.set_enabled(name, enabled):
        raise SettingsError(f"there is no destination {name!r}: 'destinations list' shows them")


def remove_destination(name: str, *, store: DestinationStore) -> None:
    _not_default(name, "removed")
    if not store.remove(name):
        raise SettingsError(f"there is no destination {name!r}: 'destinations list' shows them")
