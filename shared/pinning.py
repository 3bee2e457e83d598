"""Pin a destination's ids on first use, and refuse a change of what the ETL API names.

The state rows of a destination are keyed by its ids (``{integration_id}.{action_id}``), and the
ids are in every file name. If each run took them from ``GET /v1/destination`` as they come, an
answer that changes (9999 instead of 2184) would start a second export from ``EXPORT_START`` under
the new name (duplicates) or, without it, from the latest window (a gap). So the first run records
the ids in a pin row named after the destination (``default`` until named destinations exist) and
every later run checks the answer against it: a difference stops the run with a permanent error
before anything is read or written.

Deployments from before the pin have rows keyed by the ids and no pin: the first run adopts the ids
it is given when rows exist for them (nothing is exported again), and refuses when the table only
holds rows of other ids (the answer changed at the same moment as the upgrade).
"""

from __future__ import annotations

import logging

from shared.errors import StateConflictError
from shared.etl_client import Destination
from shared.state_store import DestinationPin, StateStore

log = logging.getLogger(__name__)

DEFAULT_DESTINATION = "default"


def pin_destination(
    store: StateStore,
    remote: Destination,
    *,
    container: str,
    blob_path: str,
    name: str = DEFAULT_DESTINATION,
) -> Destination:
    """The pinned destination for this run (the ids its rows are keyed by); raises
    :class:`StateConflictError` when the ETL API names another one."""
    pin = store.get_pin(name)
    if pin is None:
        keys = store.destination_keys()
        others = sorted(keys - {remote.key})
        if others and remote.key not in keys:
            raise StateConflictError(
                f"GET /v1/destination returns {remote.key}, but STATE_TABLE {store.table_name} holds "
                f"the positions of {', '.join(others)} and no destination pin: nothing was exported; "
                "if the ETL API is wrong get it fixed, if the destination really changed export it "
                "with a new STATE_TABLE (docs/operations.md, 'The ETL API names another destination')"
            )
        pin = store.create_pin(DestinationPin(
            name, remote.integration_id, remote.action_id, container=container, blob_path=blob_path,
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
        log.warning(
            "the files of %s now go to %s (before: %s): positions go on from the stored state, "
            "EXPORT_START is not read again, and a pending window is finished where it started; "
            "to export from EXPORT_START into a fresh place use a new STATE_TABLE (docs/operations.md)",
            pin.key, _place(container, blob_path), _place(pin.container, pin.blob_path), extra=_ids(pin),
        )
        store.move_pin(pin, container, blob_path)
    return Destination(pin.integration_id, pin.action_id)


def _ids(pin: DestinationPin) -> dict[str, str]:
    """Log record attributes: these lines come before the run binds its destination to its logs."""
    return {"integration_id": pin.integration_id, "action_id": pin.action_id}


def _place(container: str, blob_path: str) -> str:
    return f"{container}/{blob_path}" if blob_path else container
