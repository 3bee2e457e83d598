"""What a run did: the outcome of each (window, type) and of the whole run (values, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.errors import ExportError
from shared.etl_client import Destination
from shared.windows import Window, format_rfc3339


class UnitStatus(StrEnum):
    """How one (window, type) ended in this run (a ``str``: ``status == "failed"`` holds)."""

    EXPORTED = "exported"  # its files and state are committed
    EMPTY = "empty"  # no call in the window: no file, the state moved on
    BUSY = "busy"  # another run holds or took the window over; left to it
    NOT_CLOSED = "not_closed"  # the ETL API says the window is still open
    FAILED = "failed"  # a transient error; the claim stays and the next run resumes it


@dataclass(frozen=True)
class FileWritten:
    window: Window
    call_type: str
    position: int
    name: str
    rows: int
    bytes: int
    created: bool


@dataclass
class UnitResult:
    """What happened to one (window, type)."""

    window: Window
    call_type: str
    status: UnitStatus = UnitStatus.EXPORTED
    files: list[FileWritten] = field(default_factory=list)
    rows: int = 0
    rejected: int = 0
    rejected_blob: str | None = None
    error: str | None = None


@dataclass
class RunSummary:
    run_id: str
    destination: Destination | None
    now: datetime
    units: list[UnitResult] = field(default_factory=list)
    error: str | None = None  # a permanent error that stopped the run
    stopped_by_budget: bool = False

    @property
    def failures(self) -> list[UnitResult]:
        return [u for u in self.units if u.status == UnitStatus.FAILED]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    @property
    def files(self) -> list[FileWritten]:
        return [f for u in self.units for f in u.files]

    @property
    def rows(self) -> int:
        return sum(u.rows for u in self.units)

    @property
    def rejected(self) -> int:
        return sum(u.rejected for u in self.units)


class RunFailed(ExportError):
    """Raised by the timer (:func:`shared.timer.run_tick`) when a run did not finish cleanly."""

    def __init__(self, summary: RunSummary) -> None:
        detail = summary.error or "; ".join(
            f"{u.call_type} {format_rfc3339(u.window.start)}: {u.error}" for u in summary.failures
        )
        super().__init__(detail)
        self.summary = summary
