"""A backfill's definition: the closed range and the types it exports again, as its own sequence.

Pure logic (no I/O): the command line's times, types and ids checked into a :class:`Definition`,
the id a range derives, the :class:`Scope` a run of the backfill may touch, the definition as a
row of STATE_TABLE (read strictly) and its progress from the state rows.

A backfill is ``Sequence(destination, id)`` (shared/sequence.py): its state rows are its own, its
files go to ``{BLOB_PATH}/_backfill/{id}/``. Its definition (kind, range, types, recipe) is
recorded in STATE_TABLE at its first run, in the partition :data:`BACKFILLS_PARTITION` (no type
row's key, which always holds one '.'), and a later run with the same id and another definition
is refused: the id names one export, never two.

Two kinds: ``backfill`` reads its windows from the ETL API again; ``replay`` reads the calls of
the live export's ``_rejected/`` files again (shared/replay.py) and exports only the windows
that have one of any of its types, each of them for all its types (``Scope.windows``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.calltypes import CALL_TYPES
from shared.errors import StateConflictError
from shared.sequence import DEFAULT_DESTINATION, Sequence, check_backfill, check_name
from shared.windows import WINDOW, floor_window, format_rfc3339, latest_due_end, parse_rfc3339

#: PartitionKey of the definition rows (RowKey ``{destination}~{id}``).
BACKFILLS_PARTITION = "backfills"
KINDS = ("backfill", "replay")


class UsageError(ValueError):
    """A command-line value that is not right; the message is one line saying what to pass."""


@dataclass(frozen=True)
class Scope:
    """What one run of a backfill may touch: its type rows start at ``start``, no window ending
    after ``end`` is ever claimed, only ``types`` get rows. ``windows`` (a replay): per type, the
    only window starts it exports (the others in the range are skipped, using no position)."""

    start: datetime
    end: datetime
    types: tuple[str, ...]
    windows: Mapping[str, frozenset[datetime]] | None = None

    def next_start(self, call_type: str, window_end: datetime) -> datetime | None:
        """The start of the type's next window in scope for a row standing at ``window_end``."""
        if self.windows is None:
            return window_end if window_end + WINDOW <= self.end else None
        later = [w for w in self.windows.get(call_type, ()) if w >= window_end and w + WINDOW <= self.end]
        return min(later) if later else None

    def plan(self, window_ends: Mapping[str, datetime], now: datetime, settle_seconds: int,
             limit: int) -> list[datetime]:
        """The window starts a run goes through, oldest first, at most ``limit``: each type's due
        windows in scope from where its row stands (never one ending after ``end``)."""
        last_end = min(self.end, latest_due_end(now, settle_seconds))
        starts: set[datetime] = set()
        for call_type, window_end in window_ends.items():
            if self.windows is None:
                start = window_end
                for _ in range(limit):
                    if start + WINDOW > last_end:
                        break
                    starts.add(start)
                    start += WINDOW
            else:
                starts.update(w for w in self.windows.get(call_type, ()) if w >= window_end and w + WINDOW <= last_end)
        return sorted(starts)[:limit]


@dataclass(frozen=True)
class Definition:
    """One backfill as recorded at its first run."""

    id: str
    kind: str
    start: datetime
    end: datetime
    types: tuple[str, ...]
    recipe: str  # Recipe.to_json() of its files (format, codecs, caps, where)
    destination: str = DEFAULT_DESTINATION
    #: A replay's dead letters: "" the live export's ``_rejected/``, else the backfill or replay of
    #: that id whose own ``_rejected/`` it replays (what failed again there: ``rejected replay --of``).
    source: str = ""

    @property
    def sequence(self) -> Sequence:
        return Sequence(self.destination, self.id)

    @property
    def row_key(self) -> str:
        return row_key(self.destination, self.id)

    def windows(self) -> int:
        return (self.end - self.start) // WINDOW

    def same_as(self, other: Definition) -> str | None:
        """None when ``other`` is this definition, else what differs (for the refusal)."""
        for label, mine, theirs in (
            ("kind", self.kind, other.kind),
            ("range", self.range_label(), other.range_label()),
            ("types", ",".join(self.types), ",".join(other.types)),
            ("source", self.source_label(), other.source_label()),
            ("recipe (the settings that shape its files)", self.recipe, other.recipe),
        ):
            if mine != theirs:
                return f"{label} {theirs} (recorded: {mine})"
        return None

    def source_label(self) -> str:
        return f"the dead letters of {self.source}" if self.source else "the live export's dead letters"

    def range_label(self) -> str:
        return f"{format_rfc3339(self.start)}..{format_rfc3339(self.end)}"

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": BACKFILLS_PARTITION,
            "RowKey": self.row_key,
            "kind": self.kind,
            "destination": self.destination,
            "backfill": self.id,
            "start": format_rfc3339(self.start),
            "end": format_rfc3339(self.end),
            "types": ",".join(self.types),
            "recipe": self.recipe,
            **({"source": self.source} if self.source else {}),
        }

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any], table: str) -> Definition:
        """The recorded definition; StateConflictError naming the row and the field when it is not
        one this version wrote."""
        where = f"STATE_TABLE {table}, row {BACKFILLS_PARTITION}/{entity.get('RowKey')}"

        def bad(field: str) -> StateConflictError:
            return StateConflictError(
                f"{where}: {field} is not what the exporter writes (a hand edit or another version): "
                "nothing was exported; set it back, or start the backfill again under another --id"
            )

        def text(field: str) -> str:
            value = entity.get(field)
            if not isinstance(value, str) or not value:
                raise bad(field)
            return value

        def moment(field: str) -> datetime:
            try:
                value = parse_rfc3339(text(field))
            except ValueError:
                raise bad(field) from None
            if floor_window(value) != value:
                raise bad(field)
            return value

        kind = text("kind")
        if kind not in KINDS:
            raise bad("kind")
        checks = {"destination": check_name, "backfill": check_backfill, "types": parse_types}
        values: dict[str, Any] = {}
        for field, check in checks.items():
            try:
                values[field] = check(text(field))
            except ValueError:  # UsageError too
                raise bad(field) from None
        destination, backfill, types = values["destination"], values["backfill"], values["types"]
        start, end = moment("start"), moment("end")
        if end <= start:
            raise bad("end")
        source = entity.get("source", "")
        try:
            source = check_backfill(source) if source != "" and kind == "replay" else source
        except (ValueError, TypeError):
            raise bad("source") from None
        if source != "" and (kind != "replay" or source == backfill):
            raise bad("source")
        return cls(backfill, kind, start, end, types, text("recipe"), destination, source)


def lineage(source: str, recorded: Mapping[str, Definition]) -> tuple[tuple[str, ...], str]:
    """The dead letters a replay of ``source``'s reads come from: the ids it descends from
    (``source``, that replay's source, ...) and their root, ``""`` for the live export's dead
    letters, else the backfill whose dead letters the chain starts at.

    A replay's dead letters are calls its source did not export, so the whole family of a root
    draws from the same calls: a replay that exported nothing leaves them in its own ``_rejected/``
    *and* free in its source's. An id not recorded (a row deleted) or a loop (rows edited by hand)
    is taken as the live export's family, whose replays then refuse overlaps: refusing loses nothing."""
    chain: list[str] = []
    current = source
    while current:
        if current in chain:
            return tuple(chain), ""
        chain.append(current)
        definition = recorded.get(current)
        if definition is None:
            return tuple(chain), ""
        if definition.kind != "replay":
            return tuple(chain), current
        current = definition.source
    return tuple(chain), ""


def row_key(destination: str, backfill: str) -> str:
    return f"{destination}~{backfill}"


def backfill_of_row(destination: str, key: str) -> str | None:
    """The id part of a definition row's key (:func:`row_key`) when the row is ``destination``'s,
    else None: a destination reads its rows by their key, not by a field a hand edit may change."""
    prefix = row_key(destination, "")
    return key[len(prefix):] if key.startswith(prefix) else None


def parse_types(text: str | None) -> tuple[str, ...]:
    """``track,page`` -> the types in their canonical order; None or empty -> every type."""
    if text is None or not text.strip():
        return CALL_TYPES
    asked = [t.strip() for t in text.split(",")]
    unknown = [t for t in asked if t not in CALL_TYPES]
    if unknown or not all(asked):
        shown = ", ".join(repr(t[:20]) for t in unknown) or "an empty name"
        raise UsageError(f"--types: {shown} is not a call type; pass some of {','.join(CALL_TYPES)}, "
                         "comma-separated")
    return tuple(t for t in CALL_TYPES if t in asked)


def parse_boundary(option: str, text: str) -> datetime:
    """An RFC 3339 instant on a window boundary (``2026-11-28T12:00:00Z``)."""
    try:
        moment = parse_rfc3339(text)
    except (ValueError, OverflowError):
        raise UsageError(f"{option} {text[:40]!r} is not an RFC 3339 time like 2026-11-28T12:00:00Z") from None
    if floor_window(moment) != moment:
        raise UsageError(f"{option} {format_rfc3339(moment)} is not a window boundary (10-minute, UTC): pass "
                         f"{format_rfc3339(floor_window(moment))} or "
                         f"{format_rfc3339(floor_window(moment) + WINDOW)}")
    return moment


def parse_range(start_text: str, end_text: str, now: datetime, settle_seconds: int) -> tuple[datetime, datetime]:
    """``--start``/``--end``: window boundaries, start before end, every window of the range
    closed at ``now`` (``end + SETTLE_SECONDS <= now``)."""
    start = parse_boundary("--start", start_text)
    end = parse_boundary("--end", end_text)
    if end <= start:
        raise UsageError(f"--end {format_rfc3339(end)} is not after --start {format_rfc3339(start)}: the range "
                         "is the windows from --start up to --end")
    due = latest_due_end(now, settle_seconds)
    if end > due:
        raise UsageError(f"--end {format_rfc3339(end)} is not closed yet (a window is closed once its end plus "
                         f"SETTLE_SECONDS={settle_seconds} has passed): pass --end {format_rfc3339(due)} or earlier")
    return start, end


def derived_id(kind: str, start: datetime, end: datetime, types: Iterable[str]) -> str:
    """The id a range and its types derive: the same command gives the same id (it resumes), another
    range or other types another one. ``bf-20261128T0000Z-20261129T0000Z-<8 hex of the types>``."""
    names = ",".join(types)
    digest = hashlib.sha256(f"{kind}|{format_rfc3339(start)}|{format_rfc3339(end)}|{names}".encode()).hexdigest()
    prefix = "bf" if kind == "backfill" else "replay"
    stamp = "%Y%m%dT%H%MZ"
    return check_backfill(f"{prefix}-{start.strftime(stamp)}-{end.strftime(stamp)}-{digest[:8]}")


def parse_id(text: str) -> str:
    try:
        return check_backfill(text)
    except ValueError as exc:
        raise UsageError(f"--id: {exc}") from None


@dataclass(frozen=True)
class Progress:
    """How far a backfill is: windows exported of its types, out of all in its range."""

    done: int
    total: int
    through: datetime  # the oldest point its types stand at
    pending: bool  # a claim is pending (a run stopped in a window)

    @property
    def finished(self) -> bool:
        return self.done >= self.total and not self.pending


def progress(definition: Definition, rows: Mapping[str, tuple[datetime, bool] | None],
             windows: Mapping[str, frozenset[datetime]] | None = None) -> Progress:
    """From each type's row (window end, pending?) or None (not started); ``windows``: a replay's
    windows per type (its units are those, not every window of its range)."""
    done = total = 0
    through = definition.end
    pending = False
    for call_type in definition.types:
        row = rows.get(call_type)
        stands = definition.start if row is None else min(max(row[0], definition.start), definition.end)
        pending = pending or (row is not None and row[1])
        if windows is None:
            done += (stands - definition.start) // WINDOW
            total += definition.windows()
        else:
            mine = windows.get(call_type, frozenset())
            done += sum(1 for w in mine if w < stands)
            total += len(mine)
            if all(w < stands for w in mine):
                stands = definition.end
        through = min(through, stands)
    return Progress(done, total, through, pending)
