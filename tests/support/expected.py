"""What a file's row must be for a given input call: an independent statement of the rules."""

from __future__ import annotations

import json
from typing import Any

from shared.calltypes import COLUMNS, KNOWN_FIELDS
from shared.slug import slugify_event


def cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def expected_row(call: dict[str, Any]) -> dict[str, Any]:
    """The CSV/Parquet row (column -> cell) for a call, nested values decoded for comparison."""
    t = call["type"]
    row: dict[str, Any] = {}
    for col in COLUMNS[t]:
        if col == "extra":
            extra = {k: v for k, v in call.items() if k not in KNOWN_FIELDS[t]}
            row[col] = extra or None
        elif col == "event":
            row[col] = slugify_event(call["event"]) if call.get("event") is not None else None
        elif col == "event_text":
            row[col] = call.get("event")
        else:
            row[col] = call.get(col)
    return row


def normalize_row(row: dict[str, Any], call_type: str) -> dict[str, Any]:
    """A row read from a CSV/Parquet file with its JSON-text cells decoded where the input was JSON."""
    out = {}
    for col in COLUMNS[call_type]:
        value = row.get(col)
        if col in ("context", "integrations", "traits", "properties", "extra") and value is not None:
            value = json.loads(value)
        out[col] = value
    return out


def expected_json_doc(call: dict[str, Any]) -> dict[str, Any]:
    if call["type"] != "track" or "event" not in call:
        return call
    out: dict[str, Any] = {}
    for k, v in call.items():
        if k == "event":
            out["event"] = slugify_event(v) if v is not None else None
            out["event_text"] = v
        else:
            out[k] = v
    return out
