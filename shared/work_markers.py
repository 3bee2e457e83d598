"""At most one live work item per (destination, type): a marker row per (destination, type).

Rows in STATE_TABLE under PartitionKey ``work`` (no '.': :func:`shared.sequence.parse_state_key`
rejects it, so no code takes it for a type row), RowKey ``{destination}~{type}``:

- ``chain``: the chain of items that is live (the plan that started it named it);
- ``window``: the window the chain's current message asks for;
- ``horizon``: that chain's horizon;
- ``touched``: wall-clock seconds (Unix time) when the chain last showed life: planned, a unit
  started or renewed, a window committed.

Every write is conditional (insert-if-absent, If-Match on the ETag), so two planners or two
deliveries of one message never both move a marker. The planner sends a message only after it
wrote the marker; a worker moves the marker to the next window before it sends the next message.
A marker that was not touched for two leases is stale: its message was lost, poisoned or its
worker died, and the next plan replaces it (a new chain). A message whose chain or window is not
the marker's is a stale duplicate: it is acknowledged and dropped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.state_store import StateStore
from shared.windows import format_rfc3339
from shared.work_item import WorkItem

MARKERS_PARTITION = "work"


@dataclass(frozen=True)
class Marker:
    key: str
    chain: str
    window: str  # RFC 3339 start of the window the live message asks for
    horizon: str
    touched: float
    etag: str = ""

    def holds(self, item: WorkItem) -> bool:
        """Whether ``item`` is the chain's current message (not a stale duplicate)."""
        return self.chain == item.chain and self.window == format_rfc3339(item.window_start)

    def stale_after(self, lease_seconds: int) -> float:
        """The Unix time after which the marker is stale: two leases without being touched."""
        return self.touched + 2 * lease_seconds

    def stale(self, wall: float, lease_seconds: int) -> bool:
        return wall > self.stale_after(lease_seconds)


def _entity(item: WorkItem, touched: float) -> dict[str, Any]:
    return {"PartitionKey": MARKERS_PARTITION, "RowKey": item.key, "chain": item.chain,
            "window": format_rfc3339(item.window_start), "horizon": format_rfc3339(item.horizon),
            "touched": float(touched)}


class MarkerStore:
    """The marker rows, through the state table's client (same table, same errors)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get(self, key: str) -> Marker | None:
        try:
            e = self.store._call(lambda: self.store.table.get_entity(MARKERS_PARTITION, key), reading=True)
        except ResourceNotFoundError:
            return None
        return _read(key, e)

    def all(self) -> list[Marker]:
        try:
            rows = self.store._call(lambda: list(self.store.table.query_entities(
                f"PartitionKey eq '{MARKERS_PARTITION}'")), reading=True)
        except ResourceNotFoundError:
            return []
        return [_read(r["RowKey"], r) for r in rows]

    def start(self, item: WorkItem, wall: float, replacing: Marker | None = None) -> Marker | None:
        """Make ``item`` the live chain: insert if there is no marker, else replace ``replacing``
        (If-Match). The marker written, or None when another planner got there first."""
        try:
            if replacing is None:
                meta = self.store._call(lambda: self.store.table.create_entity(_entity(item, wall)))
                return _written(item, wall, meta)
            return self._replace(replacing, item, wall)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None

    def take(self, item: WorkItem, wall: float) -> Marker | None:
        """A worker's first touch of ``item``'s marker: the marker written, or None when ``item``
        is not its chain's current message (a stale duplicate, or a plan replaced the chain).

        With the ETag the message carries (shared/work_item.py) this is one conditional write:
        If-Match succeeds only if nobody wrote the marker since the message was sent, so the item
        is still the live one. Without it, or when it is stale, the marker is read and touched."""
        if item.marker:
            sent = Marker(item.key, item.chain, format_rfc3339(item.window_start), format_rfc3339(item.horizon),
                          0.0, item.marker)
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                return self._replace(sent, item, wall)
        return self.touch(item, wall)

    def advance(self, item: WorkItem, following: WorkItem, wall: float, known: Marker | None = None,
                ) -> Marker | None:
        """Move the chain from ``item`` to ``following``: the marker written, or None when ``item``
        is not its current message any more (a duplicate did it first, or a plan replaced it).
        ``known``: the marker as last read or written (saves a read when its ETag still holds)."""
        marker = known
        for _ in range(3):  # a heartbeat may change the ETag between our read and our write
            if marker is None:
                marker = self.get(item.key)
            if marker is None or not marker.holds(item):
                return None
            try:
                return self._replace(marker, following, wall)
            except (ResourceModifiedError, ResourceNotFoundError):
                marker = None
        return None

    def touch(self, item: WorkItem, wall: float, known: Marker | None = None) -> Marker | None:
        """Record that ``item``'s chain is alive (its unit runs); None if it is not the live one."""
        return self.advance(item, item, wall, known)

    def release(self, item: WorkItem, known: Marker | None = None) -> bool:
        """End ``item``'s chain (nothing more is due at its horizon, or it waits for the next plan)."""
        if known is not None and known.holds(item):
            with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
                self.store._call(lambda: self.store.table.delete_entity(
                    MARKERS_PARTITION, item.key, etag=known.etag, match_condition=MatchConditions.IfNotModified))
                return True
        marker = self.get(item.key)
        if marker is None or not marker.holds(item):
            return False
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self.store._call(lambda: self.store.table.delete_entity(
                MARKERS_PARTITION, item.key, etag=marker.etag, match_condition=MatchConditions.IfNotModified))
            return True
        return False

    def _replace(self, marker: Marker, item: WorkItem, wall: float) -> Marker:
        meta = self.store._call(lambda: self.store.table.update_entity(
            _entity(item, wall), mode=UpdateMode.REPLACE, etag=marker.etag,
            match_condition=MatchConditions.IfNotModified))
        return _written(item, wall, meta)


def _read(key: str, e: Any) -> Marker:
    """A marker row as read (a point read or a query's entity, with its ETag)."""
    touched = e.get("touched")
    return Marker(key, str(e.get("chain", "")), str(e.get("window", "")), str(e.get("horizon", "")),
                  float(touched) if isinstance(touched, int | float) else 0.0, e.metadata.get("etag", ""))


def _written(item: WorkItem, wall: float, meta: dict[str, Any]) -> Marker:
    """The marker as just written for ``item`` (``meta``: the write's response, with its ETag)."""
    return Marker(item.key, item.chain, format_rfc3339(item.window_start), format_rfc3339(item.horizon),
                  float(wall), (meta or {}).get("etag", ""))

