"""Every enabled destination's due units, inline, one destination after another (``default`` first).

What ``python -m shared.cli run`` and the timer do with more than one destination: each
destination runs :func:`shared.export.run_export` with its own settings, clients and sequence
(its own state rows and pin), so one destination's failure (bad row, unresolved secret, ETL API
down, a permanent error) is reported for it and the others still export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.clients import build_clients, close_clients
from shared.destinations import NamedDestination, load_destinations
from shared.errors import ExportError
from shared.export import run_export
from shared.secret_refs import SecretReader
from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT
from shared.settings import Settings
from shared.summary import FileWritten, RunFailed, RunSummary
from shared.telemetry import bind_log_context, reset_log_context
from shared.windows import format_rfc3339

log = logging.getLogger(__name__)


@dataclass
class DestinationRun:
    """One destination's part of a run: its summary, or the error that kept it from running."""

    name: str
    summary: RunSummary | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.summary is not None and self.summary.ok

    def failure(self) -> str:
        """One line: why this destination's run failed."""
        if self.error:
            return self.error
        assert self.summary is not None
        detail = self.summary.error or "; ".join(
            f"{u.call_type} {format_rfc3339(u.window.start)}: {u.error}" for u in self.summary.failures)
        return f"destination {self.name}: {detail}"


@dataclass
class TickOutcome:
    """What one tick (every enabled destination) did."""

    runs: list[DestinationRun]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    @property
    def summaries(self) -> list[RunSummary]:
        return [r.summary for r in self.runs if r.summary is not None]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.summaries)

    @property
    def files(self) -> list[FileWritten]:
        return [f for s in self.summaries for f in s.files]

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.summaries)


class DestinationsFailed(RunFailed):
    """Raised by the timer when a destination did not finish cleanly (the others ran): one line
    naming each failed destination. ``summary`` is the first failed destination's, if it ran."""

    def __init__(self, outcome: TickOutcome) -> None:
        failed = [r for r in outcome.runs if not r.ok]
        ExportError.__init__(self, "; ".join(r.failure() for r in failed))
        self.summary = next((r.summary for r in failed if r.summary is not None), None)  # type: ignore[assignment]
        self.outcome = outcome


def destinations_to_run(settings: Settings, *, env: Mapping[str, str] | None = None,
                        vault: SecretReader | None = None) -> tuple[list[NamedDestination], str | None]:
    """The enabled destinations (``default`` first) and, when the destinations table could not be
    read, that error: ``default`` then runs alone, reported as failing."""
    try:
        return load_destinations(settings, env=env, vault=vault), None
    except ExportError as exc:
        log.error("the named destinations could not be read: %s", exc)
        default = NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings)
        return [default], f"destinations table {settings.destinations_table}: {exc}"


def run_destinations(settings: Settings, now: datetime, *, env: Mapping[str, str] | None = None,
                     vault: SecretReader | None = None,
                     build: Callable[[Settings], Any] = build_clients,
                     before: Callable[[NamedDestination], None] | None = None,
                     after: Callable[[DestinationRun], None] | None = None,
                     monotonic: Callable[[], float] = time.monotonic,
                     loaded: tuple[list[NamedDestination], str | None] | None = None) -> list[DestinationRun]:
    """Run every enabled destination at ``now``, in turn (``before`` and ``after`` each one); never
    raises for one destination.

    The tick shares one ``RUN_BUDGET_SECONDS``: each destination may use what is left divided by
    the destinations still to run (:func:`budget_share`), so the tick stays within the function's
    timeout and a destination with a backlog cannot take every later one's time; one that finishes
    early leaves its time to the next. A destination stopped by its share goes on at the next tick.
    ``loaded``: what :func:`destinations_to_run` returned, when the caller already read it."""
    destinations, table_error = loaded or destinations_to_run(settings, env=env, vault=vault)
    runs: list[DestinationRun] = []
    if table_error:
        runs.append(DestinationRun("(destinations table)", error=table_error))
    deadline = monotonic() + settings.run_budget_seconds
    for i, dest in enumerate(destinations):
        if before is not None:
            before(dest)
        run = run_one(dest, now, build=build,
                      budget=budget_share(deadline - monotonic(), len(destinations) - i))
        runs.append(run)
        if after is not None:
            after(run)
    return runs


def budget_share(left: float, destinations_left: int) -> int:
    """The seconds one destination may start windows in: an equal share of what is left (at least 1)."""
    return max(1, int(left / max(1, destinations_left)))


def run_one(dest: NamedDestination, now: datetime, *, build: Callable[[Settings], Any] = build_clients,
            budget: int | None = None) -> DestinationRun:
    """One destination's run in its own sequence, with at most ``budget`` seconds to start windows in
    (default: its ``RUN_BUDGET_SECONDS``)."""
    if dest.settings is None:
        log.error("%s", dest.error)
        return DestinationRun(dest.name, error=dest.error)
    settings = dest.settings
    if budget is not None and budget < settings.run_budget_seconds:
        settings = replace(settings, run_budget_seconds=budget)
    try:
        clients = build(settings)
    except ExportError as exc:
        log.error("destination %s: %s", dest.name, exc)
        return DestinationRun(dest.name, error=f"destination {dest.name}: {exc}")
    context = bind_log_context(destination=dest.name)  # every log line of its run says whose it is
    try:
        summary = run_export(settings, clients, now, sequence=dest.sequence)
    finally:
        reset_log_context(context)
        close_clients(clients)
    return DestinationRun(dest.name, summary=summary)
