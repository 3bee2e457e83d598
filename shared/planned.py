"""The destinations the planner and the workers serve, from the destinations table.

:func:`planned` returns ``(name, sequence, settings)`` for every enabled destination that can run
(``default`` first, then the rows of DESTINATIONS_TABLE: shared/destinations.py) and, apart, the
ones that cannot (a row that does not validate, a secret reference that does not resolve, the
table unreadable) with their one-line errors. Tests pass their own list to the planner and the
worker instead.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.destination_runs import destinations_to_run
from shared.destinations import load_destinations
from shared.sequence import Sequence
from shared.settings import Settings

PlannedDestination = tuple[str, Sequence, Settings]
#: Where a planner or a worker gets the destinations from (called at each plan and each item).
DestinationSource = Callable[[Settings], list[PlannedDestination]]


def planned(settings: Settings) -> tuple[list[PlannedDestination], list[tuple[str, str]]]:
    """Every enabled destination that can run, and (name, error) of those that cannot. When the
    destinations table cannot be read, ``default`` is planned alone and the table's error is one
    of the errors."""
    found, table_error = destinations_to_run(settings)
    ok = [(d.name, d.sequence, d.settings) for d in found if d.settings is not None]
    errors = [(d.name, d.error or "cannot run") for d in found if d.settings is None]
    if table_error:
        errors.insert(0, ("(destinations table)", table_error))
    return ok, errors


def planned_destinations(settings: Settings) -> list[PlannedDestination]:
    """Every enabled destination that can run (a worker's lookup). Raises the ExportError of a
    destinations table that cannot be read, so a work item is not dropped for a passing fault."""
    return [(d.name, d.sequence, d.settings) for d in load_destinations(settings) if d.settings is not None]
