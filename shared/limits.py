"""The value types of a bad call: the caps that make a line one, and the rejected line itself.

Shared by the prefilter (:mod:`shared.prefilter`) and the parsers (:mod:`shared.records`,
:mod:`shared.columnar`), which import this module and not each other (docs/design.md, "Modules").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps that make a line a bad call. Documented in docs/file-format.md."""

    max_call_bytes: int = 65536  # MAX_CALL_BYTES: Segment's 32 KB doubled (docs/file-format.md)
    max_depth: int = 32


@dataclass(frozen=True)
class RejectedCall:
    """A line the export will not put in a data file, and why."""

    line: bytes
    reason: str
