"""A work item: the message on EXPORT_QUEUE that asks for one unit (pure, no I/O).

    {"v": 1, "destination": "default", "type": "track", "window": "2026-11-28T12:00:00Z",
     "horizon": "2026-11-28T12:31:00Z", "chain": "<hex>",
     "integration_id": "2184", "action_id": "13699", "marker": "<ETag>"}
    {"v": 2, ..., "backfill": "bf-20261128T1200Z-20261128T1500Z-1a2b3c4d"}

Version 1 is an item of a destination's live export; version 2 adds ``backfill``, the id of a
recorded backfill or replay (shared/backfill.py) whose chain this is: the message only names it,
the definition row in STATE_TABLE is the truth. A live item is still written as version 1, so a
worker of an earlier version reads every live item; it refuses a version 2 one with a permanent
error (BadWorkItem: the poison queue, nothing exported). This version reads both.
``integration_id``/``action_id`` (the pinned ids) and ``marker`` (the marker's ETag) are
optional hints of either version: they save reads, they decide nothing.

``window`` is the start of the (window, type) to export; ``horizon`` the instant of the plan that
made the chain: the chain exports the windows due at that instant, no later ones (the next plan
moves it). ``chain`` names the chain of items one plan started for one (destination, type); the
marker of that (destination, type) (shared/work_markers.py) says which chain is live. A message
is only a hint: the state row is the truth (docs/design.md, "Plan, queue, work").

Two optional fields save a work item's worker requests, and decide nothing: ``integration_id`` and
``action_id``, the destination's pinned ids as the plan that started the chain read them (the plan
checks the pin against ``GET /v1/destination`` at every tick; a pin's ids never change), so the
worker reads the type's state row directly instead of asking the ETL API and reading the pin; and
``marker``, the ETag of the marker row as written just before the message was sent, so the worker's
first touch of the marker is one conditional write (If-Match) instead of a read and a write: a
stale ETag (a duplicate touched it first, a plan replaced the chain) fails and the worker reads the
marker as it would without one. A message without them (an earlier version's) is handled the long
way. Neither takes part in equality: they are not part of what the item asks for.

Text on the queue is JSON; the queue client base64-encodes it, as the Functions queue trigger
expects by default (shared/work_queue.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.calltypes import CALL_TYPES
from shared.errors import ExportError
from shared.sequence import check_backfill, check_name
from shared.windows import WINDOW, floor_window, format_rfc3339, latest_due_end, parse_rfc3339

VERSION = 1  # a live item
BACKFILL_VERSION = 2  # an item of a backfill's (or replay's) chain: adds "backfill"
#: The most a message may hold (a valid one is ~200 bytes; the queue takes 64 KiB).
MAX_TEXT = 2048
#: A destination id (as shared/etl_client.py checks the ETL API's) and a marker ETag.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ETAG = re.compile(r"[\x21-\x7e]{1,200}")


class BadWorkItem(ExportError):
    """A message this version cannot read: permanent (it ends in the poison queue; nothing is lost,
    the next plan re-plans its (destination, type))."""

    transient = False


@dataclass(frozen=True)
class WorkItem:
    destination: str
    call_type: str
    window_start: datetime
    horizon: datetime
    chain: str
    backfill: str | None = None  # the backfill (or replay) id; None: the destination's live export
    integration_id: str = field(default="", compare=False)  # the pinned ids (both or neither)
    action_id: str = field(default="", compare=False)
    marker: str = field(default="", compare=False)  # the marker's ETag when the message was sent

    def __post_init__(self) -> None:
        check_name(self.destination)
        if self.backfill is not None:
            check_backfill(self.backfill)
        if self.call_type not in CALL_TYPES:
            raise ValueError(f"type {self.call_type!r} is not one of {', '.join(CALL_TYPES)}")
        if floor_window(self.window_start) != self.window_start:
            raise ValueError(f"window {format_rfc3339(self.window_start)} is not on a 10-minute boundary")
        if not (self.chain and len(self.chain) <= 64 and self.chain.isascii() and self.chain.isalnum()):
            raise ValueError("chain is not 1-64 ASCII letters and digits")
        if (self.integration_id or self.action_id) and not (
                _ID.fullmatch(self.integration_id) and _ID.fullmatch(self.action_id)):
            raise ValueError("integration_id and action_id are not both 1-64 ASCII letters, digits, '-' or '_'")
        if self.marker and not _ETAG.fullmatch(self.marker):
            raise ValueError("marker is not 1-200 printable ASCII characters")

    @property
    def ids(self) -> tuple[str, str] | None:
        """The destination's pinned ids the item carries, or None (an earlier version's message)."""
        return (self.integration_id, self.action_id) if self.integration_id else None

    def sent_with(self, marker_etag: str) -> WorkItem:
        """This item, carrying the ETag of the marker written just before it is sent."""
        return replace(self, marker=marker_etag)

    @property
    def key(self) -> str:
        """The (sequence, type) this item is for, as the marker's RowKey: ``{destination}~{type}``
        for the live export, ``{destination}~{backfill}~{type}`` for a backfill's chain (names, ids
        and types hold no '~', so no key of one is a key of the other)."""
        if self.backfill is not None:
            return f"{self.destination}~{self.backfill}~{self.call_type}"
        return f"{self.destination}~{self.call_type}"

    def label(self) -> str:
        who = self.destination if self.backfill is None else f"{self.destination} backfill {self.backfill}"
        return f"{who} {self.call_type} {format_rfc3339(self.window_start)}"

    def at(self, window_start: datetime) -> WorkItem:
        """The same chain (the same pinned ids), pointed at another window."""
        return replace(self, window_start=window_start, marker="")

    def pinned(self, integration_id: str, action_id: str) -> WorkItem:
        """This item, carrying the destination's pinned ids."""
        return replace(self, integration_id=integration_id, action_id=action_id)

    def to_text(self) -> str:
        data: dict[str, object] = {
            "v": VERSION, "destination": self.destination, "type": self.call_type,
            "window": format_rfc3339(self.window_start), "horizon": format_rfc3339(self.horizon),
            "chain": self.chain,
        }
        if self.backfill is not None:
            data.update(v=BACKFILL_VERSION, backfill=self.backfill)
        if self.integration_id:
            data.update(integration_id=self.integration_id, action_id=self.action_id)
        if self.marker:
            data["marker"] = self.marker
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str) -> WorkItem:
        """Parse a message; :class:`BadWorkItem` (one line, no echo of more than 80 characters)."""
        shown = repr(text[:80]) + ("..." if len(text) > 80 else "")
        if len(text) > MAX_TEXT:
            raise BadWorkItem(f"work item of {len(text)} characters is not one this exporter wrote "
                              f"({shown}): delete it from the poison queue (docs/operations.md)")
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            version = data.get("v")
            if type(version) is not int or version not in (VERSION, BACKFILL_VERSION):
                raise ValueError(f"version {version!r}, this exporter reads {VERSION} and {BACKFILL_VERSION}")
            names: tuple[str, ...] = ("destination", "type", "window", "horizon", "chain")
            names += ("backfill",) if version == BACKFILL_VERSION else ()
            fields = {k: data[k] for k in names}
            optional = {k: data.get(k, "") for k in ("integration_id", "action_id", "marker")}
            if not all(isinstance(v, str) for v in (*fields.values(), *optional.values())):
                raise ValueError("a field is not text")
            return cls(fields["destination"], fields["type"], parse_rfc3339(fields["window"]),
                       parse_rfc3339(fields["horizon"]), fields["chain"], fields.get("backfill"), **optional)
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
            why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)[:120]
            raise BadWorkItem(f"work item {shown} is unreadable ({why}): it was not written by this version "
                              "of the exporter; nothing was exported for it, the next plan re-plans its "
                              "unit (docs/operations.md, 'The poison queue')") from None

    def due(self, window_start: datetime, settle_seconds: int) -> bool:
        """Whether the window starting at ``window_start`` is due at this chain's horizon."""
        return window_start + WINDOW <= latest_due_end(self.horizon, settle_seconds)
