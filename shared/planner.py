"""Which (destination, type) gets a work item at a plan: pure, from state rows and markers.

A (destination, type) is planned when its next window (the state row's ``window_end``) is due at
the plan's instant and it has no live work item: no marker, or a marker that was not touched for
two leases (its message was lost or poisoned, or its worker died without the message coming back).
At most one item per (destination, type): a destination with a huge backlog has one chain per
type, like every other destination, so it cannot starve them (docs/design.md, "Plan, queue, work").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.state_store import TypeState
from shared.windows import WINDOW, latest_due_end
from shared.work_markers import Marker


@dataclass(frozen=True)
class Due:
    """One item to plan: the type's next window, and the stale marker it replaces (None: no marker)."""

    call_type: str
    window_start: datetime
    replacing: Marker | None = None


def _due(states: Mapping[str, TypeState], now: datetime, settle_seconds: int) -> Iterator[tuple[str, TypeState]]:
    """The types whose next window is due at ``now``, with their rows."""
    last_end = latest_due_end(now, settle_seconds)
    return ((t, state) for t, state in states.items() if state.window_end + WINDOW <= last_end)


def held_items(states: Mapping[str, TypeState], markers: Mapping[str, Marker | None], now: datetime,
               settle_seconds: int, wall: float, lease_seconds: int) -> dict[str, float]:
    """The types due at ``now`` that are not planned because a live work item holds them: by type,
    the Unix time after which they are planned again if that item makes no progress."""
    return {t: m.stale_after(lease_seconds) for t, _ in _due(states, now, settle_seconds)
            if (m := markers.get(t)) is not None and not m.stale(wall, lease_seconds)}


def due_items(states: Mapping[str, TypeState], markers: Mapping[str, Marker | None], now: datetime,
              settle_seconds: int, wall: float, lease_seconds: int) -> list[Due]:
    """The types of one destination to plan at ``now`` (``markers`` by type; ``wall`` is Unix time)."""
    out: list[Due] = []
    for call_type, state in _due(states, now, settle_seconds):
        marker = markers.get(call_type)
        if marker is None:
            out.append(Due(call_type, state.window_end))
        elif marker.stale(wall, lease_seconds):
            out.append(Due(call_type, state.window_end, marker))
    return out
