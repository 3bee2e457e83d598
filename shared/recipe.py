"""The recipe of a window's files: every setting that shapes them, recorded with the claim.

A window resumed after a crash is finished with the recipe it was started with: its files stay in
one container and folder, keep one extension and the same split, whatever changed meanwhile
(docs/design.md, invariant 10).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import orjson

from shared.blob_store import container_location
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
    def from_json(cls, text: str, fallback: Recipe) -> Recipe:
        """The stored recipe; a claim from before the place was recorded is in the current place."""
        try:
            stored = orjson.loads(text)
            if not stored.get("container"):
                stored.update(container=fallback.container, blob_path=fallback.blob_path)
            return cls(**stored)
        except (orjson.JSONDecodeError, TypeError, AttributeError):
            log.warning("a pending claim's recipe is unreadable; using the current settings")
            return fallback
