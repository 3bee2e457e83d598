"""Call types and the columns each one's files carry (docs/file-format.md, "Columns")."""

from __future__ import annotations

CALL_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "alias", "group")

COMMON_COLUMNS: tuple[str, ...] = (
    "messageId",
    "type",
    "userId",
    "anonymousId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "context",
    "integrations",
)

_TYPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "identify": ("traits",),
    "track": ("event", "event_text", "properties"),
    "page": ("name", "category", "properties"),
    "screen": ("name", "category", "properties"),
    "group": ("groupId", "traits"),
    "alias": ("previousId",),
}

EXTRA_COLUMN = "extra"

#: Columns of a CSV or Parquet file, in order; the last one is always ``extra``.
COLUMNS: dict[str, tuple[str, ...]] = {
    t: COMMON_COLUMNS + _TYPE_COLUMNS[t] + (EXTRA_COLUMN,) for t in CALL_TYPES
}

#: Fields of a call that map to a column of their own (everything else goes to ``extra``).
#: ``event_text`` is derived from ``event`` for track; a call's own ``event_text`` is an extra field.
KNOWN_FIELDS: dict[str, frozenset[str]] = {
    t: frozenset(c for c in COLUMNS[t] if c not in (EXTRA_COLUMN, "event_text")) for t in CALL_TYPES
}
