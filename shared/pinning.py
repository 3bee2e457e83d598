"""Pin a destination's ids on first use, and refuse a change of what the ETL API names.

The state rows of a destination are keyed by its ids (``{integration_id}.{action_id}``), and the
ids are in every file name. If each run took them from ``GET /v1/destination`` as they come, an
answer that changes (9999 instead of 2184) would start a second export from ``EXPORT_START`` under
the new name (duplicates) or, without it, from the latest window (a gap). So the first run records
the ids in a pin row named after the destination (``default`` until named destinations exist) and
every later run checks the answer against it: a difference stops the run with a permanent error
before anything is read or written.

Each named destination has its own pin (RowKey its name, shared/destinations.py); only ``default``
can have rows from before the pin, so only its first run looks at existing rows.

Deployments from before the pin have rows keyed by the ids and no pin: the first run adopts the ids
it is given when rows exist for them (nothing is exported again), and refuses when the table only
holds rows of other ids (the answer changed at the same moment as the upgrade).

A new pin also records where the destination's export starts (``start``), before any type row is
created: a first run that stops between two row inserts leaves the other types to a later run,
which starts them at that same instant, never at its own clock. Pins of earlier versions (and
pins that adopt existing rows) have no start; their missing rows start as before (EXPORT_START,
or the window due at the run's clock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import StateConflictError
from shared.etl_client import Destination
from shared.sequence import DEFAULT_DESTINATION, Sequence, parse_state_key
from shared.state_store import DestinationPin, StateStore

log = logging.getLogger(__name__)


def pin_destination(
    store: StateStore,
    remote: Destination,
    *,
    container: str,
    blob_path: str,
    start: Callable[[], datetime],
    name: str = DEFAULT_DESTINATION,
    before_move: Callable[[DestinationPin], None] | None = None,
) -> DestinationPin:
    """The pin of this run's destination (the ids its rows are keyed by, where its export
    started); raises :class:`StateConflictError` when the ETL API names another one.

    ``start`` is called only when a new pin is written for a destination without rows: the instant
    its export starts (it may raise to write nothing, e.g. while the ETL API has not closed it).
    ``before_move`` gets the pin (its old place) before the files' place is moved: what is still
    owed in the old place (the manifests of windows committed there) is finished there first."""
    pin = store.get_pin(name)
    if pin is None:
        # Only the rows of the live default export were ever keyed without a pin: a named
        # destination has none to adopt, and the default's rows say nothing about its ids.
        keys = {k for k in store.destination_keys() if (parsed := parse_state_key(k)) and parsed[1] == Sequence()
                } if name == DEFAULT_DESTINATION else set()
        others = sorted(keys - {remote.key})
        if others and remote.key not in keys:
            raise StateConflictError(
                f"GET /v1/destination returns {remote.key}, but STATE_TABLE {store.table_name} holds "
                f"the positions of {', '.join(others)} and no destination pin: nothing was exported; "
                "if the ETL API is wrong get it fixed, if the destination really changed export it "
                "with a new STATE_TABLE (docs/operations.md, 'The ETL API names another destination')"
            )
        adopting = remote.key in keys
        pin = store.create_pin(DestinationPin(
            name, remote.integration_id, remote.action_id, container=container, blob_path=blob_path,
            start=None if adopting else start(),
        ))
        log.info("destination %r pinned to %s%s", name, pin.key,
                 ", adopting its existing positions" if remote.key in keys else "", extra=_ids(pin))
    if (pin.integration_id, pin.action_id) != (remote.integration_id, remote.action_id):
        raise StateConflictError(
            f"GET /v1/destination now returns {remote.key}, but destination {name!r} is pinned to "
            f"{pin.key} (STATE_TABLE {store.table_name}): nothing was exported; if the ETL API is "
            "wrong get it fixed, if the destination really changed export it with a new STATE_TABLE "
            "(docs/operations.md, 'The ETL API names another destination')"
        )
    if (pin.container, pin.blob_path) != (container, blob_path):
        if before_move is not None:  # may refuse the move: then nothing is said about one
            before_move(pin)
        log.warning(
            "the files of %s now go to %s (before: %s): positions go on from the stored state, "
            "EXPORT_START is not read again (every window of the old place was finished there first); "
            "to export from EXPORT_START into a fresh place use a new STATE_TABLE (docs/operations.md)",
            pin.key, _place(container, blob_path), _place(pin.container, pin.blob_path), extra=_ids(pin),
        )
        store.move_pin(pin, container, blob_path)
    return pin


def pinned_for_backfill(store: StateStore, remote: Destination, backfill: Sequence) -> DestinationPin:
    """The live destination's pin a backfill writes its file names with, read only: a backfill
    never creates, re-pins or moves it. StateConflictError when there is none yet or the ETL API
    names other ids."""
    pin = store.get_pin(backfill.destination)
    if pin is None:
        raise StateConflictError(
            f"{backfill.label()}: destination {backfill.destination!r} has no pin in STATE_TABLE "
            f"{store.table_name} yet (its ids are recorded by its first live run): run "
            "`python -m shared.cli run` once, then the backfill again; nothing was exported"
        )
    if (pin.integration_id, pin.action_id) != (remote.integration_id, remote.action_id):
        raise StateConflictError(
            f"GET /v1/destination now returns {remote.key}, but destination {backfill.destination!r} is "
            f"pinned to {pin.key} (STATE_TABLE {store.table_name}): nothing was exported; if the ETL API "
            "is wrong get it fixed (docs/operations.md, 'The ETL API names another destination')"
        )
    return pin


def _ids(pin: DestinationPin) -> dict[str, str]:
    """Log record attributes: these lines come before the run binds its destination to its logs."""
    return {"integration_id": pin.integration_id, "action_id": pin.action_id}


def _place(container: str, blob_path: str) -> str:
    return f"{container}/{blob_path}" if blob_path else container
