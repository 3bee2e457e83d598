"""A window's manifest (pure): what it says, its name, its canonical bytes, reading one back.

A manifest is written for every window of a sequence once all six types have committed it
(shared/manifests.py writes it); its bytes are a pure function of the window's outcome (the files
and dead letters of each type, the previous manifest), never of who wrote it or when, so two
writers build the same bytes. The schema is docs/manifest.schema.json; docs/guarantees.md says
how a loader uses it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.calltypes import CALL_TYPES
from shared.windows import Window, format_rfc3339, parse_rfc3339

MANIFEST_VERSION = 1
MANIFESTS_FOLDER = "_manifests"
CONTENT_TYPE = "application/json"
STAMP = "%Y%m%dT%H%MZ"
_NAME = re.compile(r"(?P<key>[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\.(?P<stamp>\d{8}T\d{4}Z)\.json\Z")
_SHA = re.compile(r"[0-9a-f]{64}\Z")
NO_CALLS = "no calls"


class ManifestError(ValueError):
    """A manifest this version cannot read (the message says what is wrong with it)."""


@dataclass(frozen=True)
class ListedFile:
    """A data or dead-letter file as a manifest lists it."""

    name: str
    rows: int
    bytes: int
    sha256: str
    position: int = 0  # 0 for a dead-letter file

    def as_json(self, *, data: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "bytes": self.bytes, "sha256": self.sha256}
        if data:
            doc.update(position=self.position, rows=self.rows)
        else:
            doc["calls"] = self.rows
        return doc


@dataclass(frozen=True)
class TypeOutcome:
    """One type's outcome in a window: its data files (in position order), its dead-letter file,
    and its last position once the window is done (the previous one when it wrote no file)."""

    files: tuple[ListedFile, ...]
    rejected: ListedFile | None
    last_position: int

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def as_json(self) -> dict[str, Any]:
        status = "files" if self.files else ("rejected only" if self.rejected else NO_CALLS)
        return {
            "status": status,
            "files": [f.as_json(data=True) for f in self.files],
            "rows": self.rows,
            "rejected": self.rejected.as_json(data=False) if self.rejected else None,
            "last_position": self.last_position,
        }


@dataclass(frozen=True)
class Manifest:
    """A window's manifest. ``recipe`` is informative (the settings its files were written with)."""

    integration_id: str
    action_id: str
    destination: str
    backfill: str | None
    window: Window
    types: dict[str, TypeOutcome]
    previous_name: str | None
    previous_sha256: str | None
    recipe: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.integration_id}.{self.action_id}"

    def as_json(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "exporter": "cdp-blob-exporter",
            "integration_id": self.integration_id,
            "action_id": self.action_id,
            "sequence": {"destination": self.destination, "backfill": self.backfill},
            "window": {"start": format_rfc3339(self.window.start), "end": format_rfc3339(self.window.end)},
            "previous": ({"name": self.previous_name, "sha256": self.previous_sha256}
                         if self.previous_name is not None else None),
            "recipe": self.recipe,
            "types": {t: self.types[t].as_json() for t in CALL_TYPES if t in self.types},
        }

    def encode(self) -> bytes:
        return canonical(self.as_json())

    def outcome(self) -> dict[str, Any]:
        """Everything but the recipe: what two manifests of one window must agree on."""
        doc = self.as_json()
        doc.pop("recipe")
        return doc


def canonical(doc: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8, one trailing newline: the same document gives the same bytes."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8") + b"\n"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


def manifest_name(folder: str, dest_key: str, window_start: datetime) -> str:
    """``{folder}/_manifests/{integration}.{action}.{YYYYMMDDTHHMMZ}.json`` (folder '' = the root)."""
    leaf = f"{MANIFESTS_FOLDER}/{dest_key}.{stamp(window_start)}.json"
    folder = folder.strip("/")
    return f"{folder}/{leaf}" if folder else leaf


def parse_name(leaf: str) -> tuple[str, datetime] | None:
    """``(dest_key, window_start)`` of a manifest's name inside ``_manifests/``, or None."""
    m = _NAME.match(leaf)
    if not m:
        return None
    try:
        start = datetime.strptime(m.group("stamp"), STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return m.group("key"), start


def recipe_json(recipe: Any) -> dict[str, Any]:
    """The recipe's settings a loader cares about (not where the files went: the names say it)."""
    return {
        "format": recipe.export_format,
        "compression": "gzip" if recipe.gzip else "none",
        "parquet_compression": recipe.parquet_compression,
        "csv_escape_formulas": recipe.csv_escape_formulas,
        "max_file_rows": recipe.max_file_rows,
        "max_file_bytes": recipe.max_file_bytes,
        "max_call_bytes": recipe.max_call_bytes,
    }


def parse(data: bytes) -> Manifest:
    """A manifest read back, checked field by field; :class:`ManifestError` says what is wrong."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ManifestError("it is not JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError("it is not a JSON object")
    if doc.get("manifest_version") != MANIFEST_VERSION:
        raise ManifestError(f"manifest_version is {doc.get('manifest_version')!r}, this version reads "
                            f"{MANIFEST_VERSION}")
    try:
        window = doc["window"]
        start, end = parse_rfc3339(window["start"]), parse_rfc3339(window["end"])
        if end - start != timedelta(minutes=10):
            raise ManifestError("its window is not 10 minutes")
        prev = doc["previous"]
        if prev is not None and not (isinstance(prev.get("name"), str) and _SHA.match(str(prev.get("sha256")))):
            raise ManifestError("previous is neither null nor {name, sha256}")
        seq = doc["sequence"]
        if not doc["types"] or not set(doc["types"]) <= set(CALL_TYPES):
            raise ManifestError(f"types are {sorted(doc['types'])}, not some of the six call types")
        types = {t: _outcome(doc["types"][t]) for t in CALL_TYPES if t in doc["types"]}
        return Manifest(
            integration_id=_text(doc["integration_id"]), action_id=_text(doc["action_id"]),
            destination=_text(seq["destination"]), backfill=seq["backfill"], window=Window(start, end),
            types=types, previous_name=prev["name"] if prev else None,
            previous_sha256=prev["sha256"] if prev else None, recipe=dict(doc["recipe"]),
        )
    except ManifestError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(f"a field is missing or of the wrong type ({type(exc).__name__}: {exc})") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{value!r} is not a count")
    return value


def _outcome(doc: dict[str, Any]) -> TypeOutcome:
    files = tuple(
        ListedFile(_text(f["name"]), _count(f["rows"]), _count(f["bytes"]), _sha(f["sha256"]), _count(f["position"]))
        for f in doc["files"]
    )
    rej = doc["rejected"]
    rejected = (ListedFile(_text(rej["name"]), _count(rej["calls"]), _count(rej["bytes"]), _sha(rej["sha256"]))
                if rej is not None else None)
    return TypeOutcome(files, rejected, _count(doc["last_position"]))


def _sha(value: Any) -> str:
    if not isinstance(value, str) or not _SHA.match(value):
        raise TypeError(f"{value!r} is not a sha256")
    return value
