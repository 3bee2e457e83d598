"""The destinations the planner and the workers serve: ONE seam, rewired when destinations land.

:func:`planned_destinations` returns ``(name, sequence, settings)`` for every enabled destination.
Today that is the destination the app settings describe (``default``); the destinations table
(DESTINATIONS_TABLE) adds its rows here. Tests pass their own list to the planner and the worker.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT, Sequence
from shared.settings import Settings

PlannedDestination = tuple[str, Sequence, Settings]
#: Where a planner or a worker gets the destinations from (called at each plan and each item).
DestinationSource = Callable[[Settings], list[PlannedDestination]]


def planned_destinations(settings: Settings) -> list[PlannedDestination]:
    """Every enabled destination: (name, its live sequence, its settings)."""
    return [(DEFAULT_DESTINATION, LIVE_DEFAULT, settings)]
