"""The destinations the planner and the workers serve, from the destinations table.

:func:`planned` returns ``(name, sequence, settings)`` for every enabled destination that can run
(``default`` first, then the rows of DESTINATIONS_TABLE: shared/destinations.py) and, apart, the
ones that cannot (a row that does not validate, a secret reference that does not resolve, the
table unreadable) with their one-line errors. A worker looks up only its item's destination
(:func:`planned_destination`), so no other destination's secrets are read for it. Tests pass
their own list to the planner and the worker instead.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.destination_runs import destinations_to_run
from shared.destinations import get_destination
from shared.errors import SettingsError
from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT, Sequence
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
    # The plan names the destination before its error: the error's own prefix is not repeated.
    errors = [(d.name, (d.error or "cannot run").removeprefix(f"destination {d.name}: "))
              for d in found if d.settings is None]
    if table_error:
        errors.insert(0, ("(destinations table)", table_error))
    return ok, errors


def planned_destination(settings: Settings, name: str) -> tuple[PlannedDestination | None, str]:
    """The one destination a work item names (a worker's lookup), resolved alone: another
    destination's secret references are not read, so its unreadable Key Vault never delays or
    fails this one's units. ``(None, why)`` when it is not planned any more (removed, disabled) or
    cannot run (its row's one-line error). Raises the ExportError of a destinations table that
    cannot be read, so a work item is not dropped for a passing fault."""
    if name == DEFAULT_DESTINATION:
        return (name, LIVE_DEFAULT, settings), ""
    try:
        found = get_destination(settings, name)
    except SettingsError:  # no row of that name (a table fault is another ExportError: raised)
        return None, "the destination was removed"
    if not found.enabled:
        return None, "the destination is disabled"
    if found.settings is None:
        return None, found.error or "the destination cannot run"
    return (found.name, found.sequence, found.settings), ""
