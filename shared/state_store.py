"""Positions and progress per (integration, action, type), in Azure Table Storage.

One row per type: PartitionKey ``{integration_id}.{action_id}``, RowKey the type. It holds the
last committed ``position``, the end of the last exported window (``window_end``), and a pending
claim (``pending_start``, ``pending_position``, ``pending_run``, ``pending_recipe``) written before
any upload. Positions are ``Edm.Int64`` (rows written as ``Edm.Int32`` by earlier versions read the
same). Every change is conditional: insert-if-absent to create, If-Match on the ETag to claim and
to commit, so two runs can never both move the same row. A response lost after the service applied
our write is recognised by re-reading the row and finding our own run id in it.

One more row per destination pins the ids its rows are keyed by: PartitionKey ``destinations``,
RowKey the destination's name (``default``), with the ids and the place its files last went
(:class:`DestinationPin`). The ids in it, never the ETL API's answer of the day, choose the rows.

Rows are read in one place (:func:`_entity_to_state`, :func:`_entity_to_pin`): a value this
version did not write (a hand edit such as ``position=12a``, a ``window_end`` without a zone or
empty) stops the run with a :class:`StateConflictError` naming the table, the row, the field and
the fix, never a raw ``ValueError`` and never a default (an empty ``window_end`` is not 1970).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, TableClient, TableServiceClient, UpdateMode

from shared.azure_errors import refused_by_app_storage, storage_call
from shared.calltypes import CALL_TYPES
from shared.errors import StateConflictError, StorageError, StoragePermissionError
from shared.windows import floor_window, format_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)

# Transport settings, spelled out. The Table SDK's default read timeout is days long; a run has a
# time budget, so a stuck request must fail fast and be retried by the SDK's policy.
CONNECTION_TIMEOUT = 10
READ_TIMEOUT = 30
RETRY_TOTAL = 5
RETRY_BACKOFF = 1


#: PartitionKey of the manifest cursor rows (RowKey: the sequence's state key), which
#: parse_state_key rejects, so no type row and no pin ever shares it.
CURSORS_PARTITION = "manifests"

#: PartitionKey of the destination pin rows. Type rows are keyed ``{integration}.{action}``, and ids
#: never hold a '.', so a pin never shares a partition with them.
PINS_PARTITION = "destinations"
#: PartitionKey of the backfill definitions (shared/backfill.py BACKFILLS_PARTITION).
BACKFILLS_PARTITION = "backfills"
#: PartitionKey of short leases (:meth:`StateStore.take_lease`): one step at a time across runs.
LEASES_PARTITION = "leases"


@dataclass(frozen=True)
class DestinationPin:
    """The ids a destination's state is keyed by, recorded on first use, and where its files went."""

    name: str
    integration_id: str
    action_id: str
    container: str = ""  # container_location() of the last run
    blob_path: str = ""
    # The start of the destination's export, recorded when the pin is first written (before any
    # type row): every type row created later starts there. None in pins of earlier versions.
    start: datetime | None = None
    etag: str = ""

    @property
    def key(self) -> str:
        return f"{self.integration_id}.{self.action_id}"


@dataclass(frozen=True)
class TypeState:
    """One row: where a type's export stands."""

    dest_key: str
    call_type: str
    position: int  # last committed file position (0 before the first file)
    window_end: datetime  # end of the last exported window = start of the next one
    pending_start: datetime | None = None
    pending_position: int | None = None
    pending_run: str | None = None
    pending_recipe: str | None = None  # the output settings the pending window was started with
    last_run: str | None = None
    etag: str = ""

    @property
    def next_position(self) -> int:
        return self.position + 1


@dataclass(frozen=True)
class ManifestCursor:
    """Where a sequence's manifest chain stands: the end of its last manifest's window (or, before
    the first one, where the chain starts), that manifest's name and SHA-256, and each type's last
    position at that instant (shared/manifests.py)."""

    state_key: str
    window_end: datetime
    name: str = ""  # "" before the first manifest
    sha256: str = ""
    positions: dict[str, int] = field(default_factory=dict)
    etag: str = ""


def make_table_service(
    connection_string: str = "", table_service_uri: str = "", credential: Any = None, **client_kwargs: Any
) -> TableServiceClient:
    kwargs: dict[str, Any] = {
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retry_total": RETRY_TOTAL,
        "retry_backoff_factor": RETRY_BACKOFF,
    }
    kwargs.update(client_kwargs)
    if connection_string:
        if connection_string.strip() == "UseDevelopmentStorage=true":
            connection_string = AZURITE_CONNECTION_STRING
        return TableServiceClient.from_connection_string(connection_string, **kwargs)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return TableServiceClient(endpoint=table_service_uri, credential=credential, **kwargs)


AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


class _Row:
    """One entity as read, and the one way to say that a field of it is not what we wrote."""

    def __init__(self, entity: Any, table: str) -> None:
        self.entity = entity
        self.table = table

    def unreadable(self, field: str, why: str) -> StateConflictError:
        key = f"{self.entity.get('PartitionKey')}/{self.entity.get('RowKey')}"
        row_key = self.entity.get("RowKey")
        return StateConflictError(
            f"STATE_TABLE {self.table}, row {key}: {field} {why}; the exporter did not write that "
            "(a hand edit or another tool): nothing was exported; set the field back to what it was "
            "(docs/operations.md, 'A state row the exporter cannot read')",
            call_type=row_key if row_key in CALL_TYPES else None,
        )

    def text(self, field: str) -> str:
        value = self.entity.get(field)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.unreadable(field, f"is {_shown(value)}, not text")
        return value

    def moment(self, field: str, *, required: bool) -> datetime | None:
        """An RFC 3339 instant on a window boundary (as the exporter writes them)."""
        value = self.text(field).strip()
        if not value:
            if required:
                raise self.unreadable(field, "is missing or empty")
            return None
        try:
            moment = parse_rfc3339(value)
        except ValueError:
            raise self.unreadable(field, f"is {_shown(value)}, not a time like 2026-11-28T12:00:00Z") from None
        if floor_window(moment) != moment:
            raise self.unreadable(field, f"is {_shown(value)}, not the start of a 10-minute window")
        return moment

    def count(self, field: str, *, required: bool, minimum: int) -> int | None:
        """A whole number (Edm.Int64/Int32, or digits as text, as `az storage entity` writes them)."""
        value = _plain(self.entity.get(field))
        if value is None or value == "":
            if required:
                raise self.unreadable(field, "is missing or empty")
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.unreadable(field, f"is {_shown(value)}, not a whole number")
        if isinstance(value, str):
            digits = value.strip()
            if not digits.lstrip("-").isdigit() or not digits.isascii():
                raise self.unreadable(field, f"is {_shown(value)}, not a whole number")
            value = int(digits)
        if value < minimum:
            raise self.unreadable(field, f"is {value}, below {minimum}")
        return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _entity_to_state(entity: Any, table: str) -> TypeState:
    row = _Row(entity, table)
    pending_start = row.moment("pending_start", required=False)
    pending_position: int | None = None
    if pending_start is not None:
        # -1 (or nothing) is how an empty claim position is written; it is ignored without a claim.
        pending_position = row.count("pending_position", required=False, minimum=-1)
        if pending_position is not None and pending_position == 0:
            raise row.unreadable("pending_position", "is 0, positions start at 1")
        if pending_position is not None and pending_position < 0:
            pending_position = None
    window_end = row.moment("window_end", required=True)
    assert window_end is not None
    return TypeState(
        dest_key=entity["PartitionKey"],
        call_type=entity["RowKey"],
        position=row.count("position", required=True, minimum=0) or 0,
        window_end=window_end,
        pending_start=pending_start,
        pending_position=pending_position,
        pending_run=row.text("pending_run") or None,
        pending_recipe=row.text("pending_recipe") or None,
        last_run=row.text("last_run") or None,
        etag=entity.metadata.get("etag", "") if hasattr(entity, "metadata") else "",
    )


def _entity_to_pin(entity: Any, table: str) -> DestinationPin:
    row = _Row(entity, table)
    return DestinationPin(
        name=entity["RowKey"],
        integration_id=row.text("integration_id"),
        action_id=row.text("action_id"),
        container=row.text("container"),
        blob_path=row.text("blob_path"),
        start=row.moment("start", required=False),
        etag=entity.metadata.get("etag", "") if hasattr(entity, "metadata") else "",
    )


def _plain(value: Any) -> Any:
    """An Edm.Int64 property comes back wrapped in an EntityProperty; an Int32 one as a plain int."""
    return value.value if isinstance(value, EntityProperty) else value


def _int64(value: int) -> EntityProperty:
    # Int32, the SDK's default for an int, raised a raw TypeError at 2**31 and the type was stuck:
    # a position is a counter with no bound of its own, so it is stored as a 64-bit integer.
    return EntityProperty(int(value), EdmType.INT64)


def _state_to_entity(state: TypeState) -> dict[str, Any]:
    return {
        "PartitionKey": state.dest_key,
        "RowKey": state.call_type,
        "position": _int64(state.position),
        "window_end": format_rfc3339(state.window_end),
        "pending_start": format_rfc3339(state.pending_start) if state.pending_start else "",
        "pending_position": _int64(state.pending_position if state.pending_position is not None else -1),
        "pending_run": state.pending_run or "",
        "pending_recipe": state.pending_recipe or "",
        "last_run": state.last_run or "",
    }


def _entity_to_cursor(entity: Any, table: str) -> ManifestCursor:
    row = _Row(entity, table)
    window_end = row.moment("window_end", required=True)
    assert window_end is not None
    try:
        positions = json.loads(row.text("positions") or "{}")
        if not isinstance(positions, dict) or not all(
                t in CALL_TYPES and type(p) is int and p >= 0 for t, p in positions.items()):
            raise ValueError
    except ValueError:
        raise row.unreadable("positions", "is not a JSON object of call types and positions") from None
    return ManifestCursor(
        state_key=entity["RowKey"], window_end=window_end, name=row.text("name"), sha256=row.text("sha256"),
        positions=positions, etag=entity.metadata.get("etag", "") if hasattr(entity, "metadata") else "",
    )


def _cursor_to_entity(cursor: ManifestCursor) -> dict[str, Any]:
    return {
        "PartitionKey": CURSORS_PARTITION,
        "RowKey": cursor.state_key,
        "window_end": format_rfc3339(cursor.window_end),
        "name": cursor.name,
        "sha256": cursor.sha256,
        "positions": json.dumps(cursor.positions, sort_keys=True, separators=(",", ":")),
    }


def _pin_to_entity(pin: DestinationPin) -> dict[str, Any]:
    return {
        "PartitionKey": PINS_PARTITION,
        "RowKey": pin.name,
        "integration_id": pin.integration_id,
        "action_id": pin.action_id,
        "container": pin.container,
        "blob_path": pin.blob_path,
        "start": format_rfc3339(pin.start) if pin.start else "",
    }


class StateStore:
    """Conditional reads and writes of the per-type rows."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self.service = service
        self.table_name = table_name
        self.table: TableClient = service.get_table_client(table_name)

    def ensure_table(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._call(lambda: self.service.create_table(self.table_name))

    def get(self, dest_key: str, call_type: str) -> TypeState | None:
        """The row, or None when there is none (or no table yet: nothing started)."""
        try:
            entity = self._call(lambda: self.table.get_entity(dest_key, call_type), reading=True)
        except ResourceNotFoundError:
            return None
        return _entity_to_state(entity, self.table_name)

    def create(self, dest_key: str, call_type: str, first_window_start: datetime) -> TypeState:
        """Insert the row if absent (409 -> someone else did: read theirs).

        Never under a manifest chain that counts files of the type (a cursor row of ``dest_key``
        with a position of it): the chain is started once every type has its row
        (shared/manifests.py), so a row missing under it was deleted by hand, and a new one would
        start over at positions the chain does not know (its next manifests would list none of the
        type's files): a StateConflictError naming the cursor row, the row not created. One more
        read, only when a row is created."""
        cursor = self.get_cursor(dest_key)
        if cursor is not None and cursor.positions.get(call_type, 0) > 0:
            current = self.get(dest_key, call_type)  # created by a run beside us (then the chain)
            if current is not None:
                return current
            raise StateConflictError(
                f"STATE_TABLE {self.table_name} has no row {dest_key}/{call_type} but the manifest chain of "
                f"{dest_key} is there (row {CURSORS_PARTITION}/{dest_key}, {call_type} at position "
                f"{cursor.positions[call_type]}): the rows were deleted to start over, and the chain would go "
                "on at the positions of before; the row was not created: delete that row too (docs/operations.md, "
                "'Start a destination over'), or put the deleted rows back",
                call_type=call_type,
            )
        state = TypeState(dest_key, call_type, position=0, window_end=first_window_start)
        with contextlib.suppress(ResourceExistsError):  # someone else created it: read theirs
            self._call(lambda: self.table.create_entity(_state_to_entity(state)))
        current = self.get(dest_key, call_type)
        if current is None:
            raise StorageError(f"the state row {dest_key}/{call_type} vanished after it was created",
                               call_type=call_type)
        return current

    def claim(
        self, state: TypeState, window_start: datetime, run_id: str, recipe: str = ""
    ) -> TypeState | None:
        """Record the pending (window, first position, output recipe) for our run before any upload.

        Resuming a pending claim of the same window keeps its first position and its recipe, so a
        window is finished exactly as it was started even if the settings changed in between.
        Returns the new state, or None when another run changed the row first (it owns the work).
        """
        resuming = state.pending_start == window_start
        position = state.pending_position if resuming else None
        claimed = replace(
            state,
            pending_start=window_start,
            pending_position=position if position is not None else state.next_position,
            pending_run=run_id,
            pending_recipe=(state.pending_recipe if resuming and state.pending_recipe else recipe) or None,
        )
        return self._conditional(state, claimed, run_id, lambda cur: cur.pending_run == run_id
                                 and cur.pending_start == window_start)

    def commit(self, claimed: TypeState, window_end: datetime, last_position: int, run_id: str) -> TypeState | None:
        """Advance past the window (its files are committed) and clear the claim.

        Returns the new state, or None when another run moved the row first.
        """
        done = replace(
            claimed,
            position=last_position,
            window_end=window_end,
            pending_start=None,
            pending_position=None,
            pending_run=None,
            pending_recipe=None,
            last_run=run_id,
        )
        return self._conditional(claimed, done, run_id, lambda cur: cur.last_run == run_id
                                 and cur.window_end == window_end and cur.position == last_position)

    def holds_claim(self, claimed: TypeState) -> bool:
        """Whether the row still carries this claim (run id and window): read before each file commit."""
        current = self.get(claimed.dest_key, claimed.call_type)
        return (
            current is not None
            and current.pending_run == claimed.pending_run
            and current.pending_start == claimed.pending_start
        )

    # -- destination pins ---------------------------------------------------------------------
    def get_pin(self, name: str) -> DestinationPin | None:
        entity = self._entity(PINS_PARTITION, name)
        return None if entity is None else _entity_to_pin(entity, self.table_name)

    def create_pin(self, pin: DestinationPin) -> DestinationPin:
        """Insert the pin if absent; when another run inserted one first, theirs is returned."""
        return _entity_to_pin(self._insert_if_absent(_pin_to_entity(pin), f"the destination pin {pin.name}"),
                              self.table_name)

    def move_pin(self, pin: DestinationPin, container: str, blob_path: str) -> None:
        """Record a new place for the files (If-Match; a concurrent move wins, that is fine)."""
        moved = replace(pin, container=container, blob_path=blob_path)
        with contextlib.suppress(ResourceModifiedError):
            self._call(lambda: self.table.update_entity(
                _pin_to_entity(moved), mode=UpdateMode.REPLACE, etag=pin.etag,
                match_condition=MatchConditions.IfNotModified,
            ))

    def type_rows(self, dest_key: str) -> dict[str, TypeState]:
        """Every type row of a state key, in one query (the types that have none are absent)."""
        try:
            entities = self._call(lambda: list(self.table.query_entities(
                "PartitionKey eq @key", parameters={"key": dest_key})), reading=True)
        except ResourceNotFoundError:
            return {}
        return {e["RowKey"]: _entity_to_state(e, self.table_name) for e in entities if e["RowKey"] in CALL_TYPES}

    # -- manifest cursors ---------------------------------------------------------------------
    def get_cursor(self, state_key: str) -> ManifestCursor | None:
        entity = self._entity(CURSORS_PARTITION, state_key)
        return None if entity is None else _entity_to_cursor(entity, self.table_name)

    def create_cursor(self, cursor: ManifestCursor) -> ManifestCursor:
        """Insert the cursor if absent; when another writer inserted one first, theirs is returned."""
        return _entity_to_cursor(self._insert_if_absent(_cursor_to_entity(cursor),
                                                        f"the manifest cursor {cursor.state_key}"), self.table_name)

    def advance_cursor(self, before: ManifestCursor, after: ManifestCursor) -> ManifestCursor | None:
        """Move the cursor (If-Match): the new cursor, or None when another writer moved it first."""
        try:
            meta = self._call(lambda: self.table.update_entity(
                _cursor_to_entity(after), mode=UpdateMode.REPLACE, etag=before.etag,
                match_condition=MatchConditions.IfNotModified,
            ))
            return replace(after, etag=meta.get("etag", ""))
        except ResourceModifiedError:
            return None

    def destination_keys(self) -> set[str]:
        """The ``{integration}.{action}`` keys that have type rows in the table (pins, backfill
        definitions and manifest cursors excluded)."""
        try:
            entities = self._call(lambda: list(self.table.query_entities(
                f"PartitionKey ne '{PINS_PARTITION}' and PartitionKey ne '{BACKFILLS_PARTITION}' "
                f"and PartitionKey ne '{CURSORS_PARTITION}'",
                select=["PartitionKey"])), reading=True)
        except ResourceNotFoundError:  # no table: no rows
            return set()
        return {e["PartitionKey"] for e in entities}

    # -- plain rows of other partitions (backfill definitions: shared/backfill.py reads them) ---
    def get_row(self, partition: str, row: str) -> dict[str, Any] | None:
        entity = self._entity(partition, row)
        return None if entity is None else dict(entity)

    def insert_row(self, entity: dict[str, Any]) -> dict[str, Any]:
        """Insert the row if absent; the row as stored (another run's, when it inserted one first)."""
        return dict(self._insert_if_absent(entity, f"the row {entity['PartitionKey']}/{entity['RowKey']}"))

    # -- leases: one holder at a time for a short step (recording a replay) ---------------------
    def take_lease(self, name: str, holder: str, seconds: float, now: datetime) -> datetime | None:
        """Hold the lease ``name`` for ``seconds`` from ``now``: None when taken (or already ours),
        else the end of the other holder's lease. An expired lease is taken over with If-Match,
        so two takers of a dead holder's lease never both win."""
        entity = {"PartitionKey": LEASES_PARTITION, "RowKey": name, "holder": holder,
                  "expires": format_rfc3339(now + timedelta(seconds=seconds))}
        self.ensure_table()
        with contextlib.suppress(ResourceExistsError):
            self._call(lambda: self.table.create_entity(entity))
            return None
        current = self._entity(LEASES_PARTITION, name)
        if current is None:  # released in between: take it fresh
            return self.take_lease(name, holder, seconds, now)
        if current.get("holder") == holder:
            return None
        expires = _lease_end(current, now)
        if expires > now:
            return expires
        try:
            self._call(lambda: self.table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified))
        except (ResourceModifiedError, ResourceNotFoundError):  # another taker was first
            taken = self._entity(LEASES_PARTITION, name)
            if taken is None:
                return self.take_lease(name, holder, seconds, now)
            return None if taken.get("holder") == holder else _lease_end(taken, now + timedelta(seconds=seconds))
        return None

    def holds_lease(self, name: str, holder: str) -> bool:
        """Whether ``holder`` still holds the lease ``name`` (not expired into another's hands)."""
        current = self._entity(LEASES_PARTITION, name)
        return current is not None and current.get("holder") == holder

    def delete_row(self, partition: str, row: str) -> None:
        """Delete a row (nothing when it is gone already)."""
        with contextlib.suppress(ResourceNotFoundError):
            self._call(lambda: self.table.delete_entity(partition, row))

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease back if it is still ours (never another holder's)."""
        current = self._entity(LEASES_PARTITION, name)
        if current is None or current.get("holder") != holder:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._call(lambda: self.table.delete_entity(
                LEASES_PARTITION, name, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified))

    def _entity(self, partition: str, row: str) -> Any:
        """One entity as the SDK returns it (with its ETag), or None when there is none (or no table)."""
        try:
            return self._call(lambda: self.table.get_entity(partition, row), reading=True)
        except ResourceNotFoundError:
            return None

    def _insert_if_absent(self, entity: dict[str, Any], what: str) -> Any:
        """Insert ``entity`` unless its row exists; the stored entity (another writer's, when it
        inserted one first)."""
        with contextlib.suppress(ResourceExistsError):
            self._call(lambda: self.table.create_entity(entity))
        current = self._entity(entity["PartitionKey"], entity["RowKey"])
        if current is None:
            raise StorageError(f"{what} vanished after it was created")
        return current

    def rows(self, partition: str) -> list[dict[str, Any]]:
        """Every row of a partition (none without a table)."""
        try:
            return self._call(lambda: [dict(e) for e in self.table.query_entities(
                "PartitionKey eq @p", parameters={"p": partition})], reading=True)
        except ResourceNotFoundError:
            return []

    def _conditional(self, before: TypeState, after: TypeState, run_id: str, is_ours: Any) -> TypeState | None:
        try:
            meta = self._call(lambda: self.table.update_entity(
                _state_to_entity(after), mode=UpdateMode.REPLACE, etag=before.etag,
                match_condition=MatchConditions.IfNotModified,
            ))
            return replace(after, etag=meta.get("etag", ""))
        except ResourceModifiedError:
            current = self.get(before.dest_key, before.call_type)
            if current is not None and is_ours(current):
                # Our write landed and its response was lost; the SDK retried and got 412.
                log.info("state write for %s/%s had already landed", before.dest_key, before.call_type)
                return current
            return None

    def _call(self, fn: Any, *, reading: bool = False) -> Any:
        """One SDK call, its failures mapped by shared/azure_errors.py.

        A read of a missing table is "no row" (nothing started yet); a write to one is an error.
        """
        missing = {} if reading else {
            "TableNotFound": f"the state table {self.table_name} does not exist (deleted during the run?): "
                             "check STATE_TABLE and AzureWebJobsStorage; a run creates it when it starts",
        }
        return storage_call(fn, service="table", denied=_denied, missing=missing, url=self.service.url)


def _lease_end(entity: Any, unreadable: datetime) -> datetime:
    """When a lease row's lease ends (``unreadable`` when its ``expires`` is not a time)."""
    try:
        return parse_rfc3339(str(entity.get("expires", "")))
    except ValueError:
        return unreadable


def _denied(exc: HttpResponseError) -> StoragePermissionError:
    return refused_by_app_storage(exc, "the state table", "'Storage Table Data Contributor'")
