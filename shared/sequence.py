"""Which export a state row, a claim and a folder belong to: a :class:`Sequence`.

A sequence is one gapless run of positions per call type, in one folder: the live export of a
destination, or a backfill of it (docs/design.md, "Sequences"). Every key and folder that tells
sequences apart is made here and nowhere else, so two sequences never share a state row, even
when they read the same integration and action ids.

State rows (STATE_TABLE), PartitionKey:

- ``{integration}.{action}``: the live export of the destination named ``default`` (the one the
  app settings describe), as every earlier version keyed it;
- ``{integration}.{action}~{name}``: the live export of the destination ``name``;
- ``{integration}.{action}~{name}~{backfill}``: the backfill ``backfill`` of destination ``name``.

Ids are ``[A-Za-z0-9_-]`` and names and backfill ids never hold ``~``, so the number of ``~``
says which kind a key is, and no key of one sequence is a key of another.

Files keep their names (``<integration>.<action>.<position>.<type>.<ext>``): a backfill's live in
``{BLOB_PATH}/_backfill/{backfill}/``; each destination has its own container and BLOB_PATH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DESTINATION = "default"

#: A destination's name: short, lower case, safe in a Table key, a queue message and a metric.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: A backfill's id: safe in a Table key and a blob folder.
BACKFILL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

BACKFILL_FOLDER = "_backfill"


def check_name(name: str) -> str:
    """The name, or ValueError saying what a destination name may be."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"destination name {name[:40]!r} is not 1-32 of a-z, 0-9 and '-' (starting with a letter "
                         "or digit)")
    return name


def check_backfill(backfill: str) -> str:
    if not BACKFILL_PATTERN.fullmatch(backfill):
        raise ValueError(f"backfill id {backfill[:70]!r} is not 1-64 of A-Z, a-z, 0-9, '_' and '-' (starting with "
                         "a letter or digit)")
    return backfill


@dataclass(frozen=True)
class Sequence:
    """The live export of a destination (``backfill`` None) or one backfill of it."""

    destination: str = DEFAULT_DESTINATION
    backfill: str | None = None

    def __post_init__(self) -> None:
        check_name(self.destination)
        if self.backfill is not None:
            check_backfill(self.backfill)

    @property
    def live(self) -> bool:
        return self.backfill is None

    def state_key(self, integration_id: str, action_id: str) -> str:
        """The PartitionKey of this sequence's type rows for these ids."""
        key = f"{integration_id}.{action_id}"
        if self.backfill is not None:
            return f"{key}~{self.destination}~{self.backfill}"
        if self.destination != DEFAULT_DESTINATION:
            return f"{key}~{self.destination}"
        return key

    def folder(self, blob_path: str) -> str:
        """Where this sequence's files go, under the destination's BLOB_PATH ('' = the container root)."""
        if self.backfill is None:
            return blob_path
        inner = f"{BACKFILL_FOLDER}/{self.backfill}"
        return f"{blob_path.rstrip('/')}/{inner}" if blob_path.strip("/") else inner

    def label(self) -> str:
        return self.destination if self.backfill is None else f"{self.destination} backfill {self.backfill}"


#: The live export of the destination the app settings describe.
LIVE_DEFAULT = Sequence()


def parse_state_key(key: str) -> tuple[str, Sequence] | None:
    """``({integration}.{action}, Sequence)`` of a type row's PartitionKey, or None for a key that
    is not one (a pin row's partition, a row of another tool)."""
    parts = key.split("~")
    ids = parts[0]
    if ids.count(".") != 1 or not all(ids.split(".")):
        return None
    try:
        if len(parts) == 1:
            return ids, Sequence()
        if len(parts) == 2:
            return ids, Sequence(parts[1])
        if len(parts) == 3:
            return ids, Sequence(parts[1], parts[2])
    except ValueError:
        return None
    return None
