"""The recipe of a window's files: every setting that shapes them, recorded with the claim.

A window resumed after a crash is finished with the recipe it was started with: its files stay in
one container and folder, keep one extension and the same split, whatever changed meanwhile
(docs/design.md, invariant 10).

A recorded recipe is read strictly: a key this version does not know (written by a newer version),
a key it misses (an older one), a value of the wrong type or text that is not JSON raises
:class:`UnreadableRecipe`, never a fallback to the settings of the day (they may put the rest of
the window in another folder or split it elsewhere). Two shapes of earlier versions are known: no
recipe at all (the caller uses the current settings) and a recipe without its place (``container``
and ``blob_path``), finished in the current place.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from shared.blob_store import container_location
from shared.formats import FORMATS
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """Every setting that shapes a window's files (where they go, names, split points, bytes)."""

    export_format: str
    gzip: bool
    parquet_compression: str
    csv_escape_formulas: bool
    max_file_rows: int
    max_file_bytes: int
    max_call_bytes: int
    container: str = ""  # container_location(): the container's URL, no query, no secret
    blob_path: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Recipe:
        """The recipe of the settings now."""
        return cls(
            export_format=settings.export_format,
            gzip=settings.gzip,
            parquet_compression=settings.parquet_compression,
            csv_escape_formulas=settings.csv_escape_formulas,
            max_file_rows=settings.max_file_rows,
            max_file_bytes=settings.max_file_bytes,
            max_call_bytes=settings.max_call_bytes,
            container=container_location(sas_url=settings.blob_sas_url, account_url=settings.blob_account_url,
                                         container=settings.blob_container),
            blob_path=settings.blob_path,
        )

    def to_json(self) -> str:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str, current: Recipe) -> Recipe:
        """The recorded recipe; raises :class:`UnreadableRecipe` saying what this version cannot read.

        A recipe from before the place was recorded is in ``current``'s place."""
        stored = _recorded_object(text)
        names = {f.name: f.type for f in fields(cls)}
        if stored.keys() == names.keys() - _PLACE:  # an earlier version: no place recorded
            stored.update(container=current.container, blob_path=current.blob_path)
        unknown = sorted(stored.keys() - names.keys())
        if unknown:
            raise UnreadableRecipe(f"it has setting(s) this version does not know: {', '.join(unknown)}")
        missing = sorted(names.keys() - stored.keys())
        if missing:
            raise UnreadableRecipe(f"it lacks setting(s) this version needs: {', '.join(missing)}")
        for name, kind in names.items():
            value = stored[name]
            if type(value).__name__ != kind:  # bool is not int here; annotations are strings
                raise UnreadableRecipe(f"{name} is {value!r}, not of type {kind}")
        if stored["export_format"] not in FORMATS:
            raise UnreadableRecipe(f"export_format {stored['export_format']!r} is not one of {', '.join(FORMATS)}")
        return cls(**stored)


_PLACE = frozenset({"container", "blob_path"})


def _recorded_object(text: str) -> dict[str, Any]:
    """A recorded recipe's JSON object; :class:`UnreadableRecipe` when the text is not one."""
    try:
        stored = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise UnreadableRecipe("it is not whole JSON (cut or edited)") from None
    if not isinstance(stored, dict):
        raise UnreadableRecipe("it is not a JSON object")
    return stored


def recorded_folder(text: str, current_container: str, current_path: str) -> tuple[str, str]:
    """(container, blob_path) that a recorded recipe's files went to; a recipe of an earlier
    version without its place is in the current one. :class:`UnreadableRecipe` otherwise."""
    stored = _recorded_object(text)
    if not stored.keys() & _PLACE:
        return current_container, current_path
    container, path = stored.get("container"), stored.get("blob_path")
    if not isinstance(container, str) or not isinstance(path, str):
        raise UnreadableRecipe(f"its place is {container!r}, {path!r}, not two strings")
    return container, path


def recipe_diff(recorded: str, now: str) -> str:
    """``setting recorded -> now`` of each setting that differs (the recipes hold no secret); the
    recorded text itself (cut) when it is not a JSON object (a hand edit may be anything)."""
    try:
        was, current = _recorded_object(recorded), _recorded_object(now)
    except UnreadableRecipe:
        return f"recorded recipe {recorded[:200]}"
    return ", ".join(f"{k} {was.get(k)!r} -> {current.get(k)!r}" for k in sorted(was.keys() | current.keys())
                     if was.get(k) != current.get(k))


def recorded_place(text: str) -> str | None:
    """Where a recorded recipe says its window's files go (``BLOB_PATH=... in <container URL>``),
    when that much of it can be read even though the rest cannot; else None. The container is
    recorded without any query, so no secret is shown."""
    try:
        stored = _recorded_object(text)
    except UnreadableRecipe:
        return None
    path, container = stored.get("blob_path"), stored.get("container")
    if not isinstance(path, str) or not isinstance(container, str) or "?" in container:
        return None
    return f"BLOB_PATH={path or '(none)'} in {container or 'the container of the settings'}"


class UnreadableRecipe(ValueError):
    """A recorded recipe this version cannot read exactly (the message says what is wrong)."""
