"""The life of one unit of work, a (window, type): its state machine (docs/design.md, "The unit
of work").

    claim (If-Match) -> stream (files committed as they fill) -> commit the last file
    -> commit the dead letters -> commit the state (If-Match)

in two steps: :meth:`Unit.start` (the run's thread) claims and streams; :meth:`Unit.finish`
(the finisher thread, :mod:`shared.finisher`) commits the tail. Each returns a :class:`Step`:
the unit's result and what comes :class:`Next`. The crash points of the claim and of the state
commit are here; those of the files are in :mod:`shared.writers.rotating`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from opentelemetry import trace

from shared.abandoning import AbandonedOnError
from shared.clients import Clients
from shared.crashpoints import crashpoint
from shared.errors import ClaimLost, ExportError, StateConflictError, WindowNotClosed
from shared.etl_client import Destination
from shared.manifests import ManifestChain
from shared.recipe import Recipe, UnreadableRecipe, recorded_place
from shared.settings import Settings
from shared.state_store import TypeState
from shared.stream import WindowFiles
from shared.summary import FileWritten, UnitResult, UnitStatus
from shared.telemetry import annotate, record_unit_metrics, tracer
from shared.windows import Window, format_rfc3339

log = logging.getLogger(__name__)


class Next(Enum):
    """What comes after a step of a unit."""

    FINISH = "finish"  # streamed: the tail (last file, dead letters, state) is next, Unit.finish
    NEXT_WINDOW = "next_window"  # committed: the type goes on with its next window in this run
    STOP = "stop"  # ended otherwise (busy, not closed, failed): the type waits for the next run


@dataclass(frozen=True)
class Step:
    """The outcome of :meth:`Unit.start` (FINISH or STOP) or :meth:`Unit.finish` (NEXT_WINDOW or
    STOP). ``state`` is the committed state, with NEXT_WINDOW only."""

    next: Next
    result: UnitResult
    state: TypeState | None = None


class Unit(AbandonedOnError):
    """One (window, type) under one ``export.window`` span; ``with unit:`` abandons it if the block
    raises (a started unit that will not be finished)."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        dest: Destination,
        state: TypeState,
        window: Window,
        run_id: str,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.dest = dest
        self.state = state
        self.call_type = state.call_type
        self.window = window
        self.run_id = run_id
        self.result = UnitResult(window, state.call_type)
        self.claimed: TypeState | None = None
        self.files: WindowFiles | None = None
        self._ended = False
        self.span = tracer.start_span("export.window")
        annotate(
            self.span, type=state.call_type, window_start=format_rfc3339(window.start),
            window_end=format_rfc3339(window.end), integration_id=dest.integration_id,
            action_id=dest.action_id,
        )

    def start(self) -> Step:
        """Claim and stream: FINISH when the tail is next, STOP when the unit ended here."""
        ok = False
        deadline = time.monotonic() + self.settings.unit_budget_seconds
        with trace.use_span(self.span, end_on_exit=False):
            try:
                current = Recipe.of(self.settings)
                recipe = self._recipe(current)  # before the claim: an unreadable one moves nothing
                claimed = self.clients.state.claim(self.state, self.window.start, self.run_id, current.to_json())
                if claimed is None:
                    log.info("%s %s: another run is exporting it; leaving it to that run",
                             self.call_type, self.window.label())
                    return self._stop(UnitStatus.BUSY)
                crashpoint("after_claim")
                self.claimed = claimed
                self.files = WindowFiles(self.clients, self.dest, claimed, self.window, recipe, current,
                                         guard=self._guard, resumed=self._resumed)
                self.files.read(self.clients.etl, deadline)
                ok = True
            except ClaimLost:
                return self._lost()
            except WindowNotClosed as exc:
                log.info("%s %s: %s", self.call_type, self.window.label(), exc)
                return self._stop(UnitStatus.NOT_CLOSED, error=str(exc))
            except ExportError as exc:
                if not exc.transient:
                    raise
                return self._failed(exc)
            finally:
                if not ok:  # an error on its way up: the span still ends
                    self._end_span()
        return Step(Next.FINISH, self.result)

    def finish(self) -> Step:
        """Commit the last file, the dead letters, then the state: NEXT_WINDOW or STOP."""
        assert self.files is not None and self.claimed is not None
        files, claimed, window, result = self.files, self.claimed, self.window, self.result
        with trace.use_span(self.span, end_on_exit=True):
            try:
                closed = files.finish()
                last_position = claimed.pending_position - 1 + len(closed)  # type: ignore[operator]
                if files.written_before:  # only a window that was written before can have a file past it
                    files.check_nothing_past(last_position)
            except ClaimLost:
                return self._lost()
            except ExportError as exc:
                if not exc.transient:
                    raise
                return self._failed(exc)
            result.files = [FileWritten(window, self.call_type, f.position, f.name, f.rows, f.bytes, f.created)
                            for f in closed]
            result.rows = files.files.rows
            result.rejected = files.dead_letters.count
            result.rejected_blob = files.dead_letters.blob
            if not closed:
                result.status = UnitStatus.EMPTY
            crashpoint("before_state_commit")
            committed = self.clients.state.commit(claimed, window.end, last_position, self.run_id)
            crashpoint("after_state_commit")
            if committed is None:
                current = self.clients.state.get(claimed.dest_key, claimed.call_type)
                if current is None or current.window_end < window.end:
                    result.status = UnitStatus.BUSY
                    log.info("%s %s: another run took the window over; its files are in place",
                             self.call_type, window.label())
                    return Step(Next.STOP, result)
                committed = current
            self._record(result)
            self._manifests(files, committed.window_end)
            return Step(Next.NEXT_WINDOW, result, committed)

    def _manifests(self, files: WindowFiles, window_end: datetime) -> None:
        """After the state commit: the manifest of every window the six types have now committed
        (shared/manifests.py), in the folder the unit's files went to. A transient failure is left
        to the next completion, which writes the missing manifests first."""
        chain = ManifestChain(files.blobs, self.clients.state, self.dest, self.state.dest_key)
        try:
            chain.complete(files.recipe, rose_to=window_end)
        except ExportError as exc:
            if not exc.transient:
                raise
            log.warning("the manifest of %s waits for the next window: %s", self.window.label(), exc)

    @property
    def _resumed(self) -> bool:
        """The claim takes over a pending claim of this window (a crash, a takeover): files of the
        window may already be in place. Otherwise no writer held the window since its row was
        created (a claim is cleared only by the state commit that moves past it), so none of its
        files is expected; one found all the same (a type started over without moving its files)
        turns the window into a resumed one (:attr:`WindowFiles.written_before`)."""
        return self.state.pending_start == self.window.start

    def _recipe(self, current: Recipe) -> Recipe:
        """The recipe the window is written with: the one its pending claim recorded (the claim
        keeps it), else the settings now. A claim without a recipe (from before recipes) is finished
        with the settings now; one this version cannot read stops the run (it never falls back)."""
        state = self.state
        if state.pending_start != self.window.start or not state.pending_recipe:
            return current
        try:
            return Recipe.from_json(state.pending_recipe, current)
        except UnreadableRecipe as exc:
            place = recorded_place(state.pending_recipe)
            started = f"; its files went to {place}" if place else ""
            raise StateConflictError(
                f"{self.call_type} {self.window.label()} is pending with a recipe this version cannot read "
                f"(STATE_TABLE {self.clients.state.table_name}, row {state.dest_key}/{self.call_type}, "
                f"pending_recipe: {exc}{started}): it was started by another version of the exporter: run that "
                "version until `status` shows no pending window, or clear the claim's recipe with the settings "
                "pointing where its files went (docs/operations.md, 'A pending window this version cannot read'); "
                "nothing was exported",
                window=self.window, call_type=self.call_type,
            ) from None

    def abandon(self) -> None:
        """Drop a started unit without finishing it (its claim is resumed by the next run)."""
        if self.files is not None:
            self.files.abandon()
        self._end_span()

    def _record(self, result: UnitResult) -> None:
        files = result.files
        record_unit_metrics(self.call_type, [f.bytes for f in files if f.created], result.rows, result.rejected)
        annotate(self.span, rows=result.rows, files=len(files), bytes=sum(f.bytes for f in files),
                 rejected=result.rejected)
        if files:
            annotate(self.span, first_position=files[0].position, last_position=files[-1].position,
                     blob=files[-1].name, blobs=[f.name for f in files])
        annotate(self.span, status=result.status.value)
        log.info(
            "%s %s: %d call(s) in %d file(s), %d rejected",
            self.call_type, self.window.label(), result.rows, len(files), result.rejected,
            extra={"integration_id": self.dest.integration_id, "action_id": self.dest.action_id},
        )

    def _guard(self) -> None:
        """Before each create-only commit: is the claim still ours? (docs/guarantees.md, "Two runs at once")"""
        assert self.claimed is not None
        if not self.clients.state.holds_claim(self.claimed):
            raise ClaimLost(f"{self.call_type} {self.window.label()}: another run took the window over",
                            window=self.window, call_type=self.call_type)

    def _lost(self) -> Step:
        log.info("%s %s: another run took the window over before our next commit; leaving it to that run",
                 self.call_type, self.window.label())
        return self._stop(UnitStatus.BUSY)

    def _failed(self, exc: ExportError) -> Step:
        annotate(self.span, error=str(exc)[:200])
        log.warning("%s %s failed, will retry on the next run: %s",
                    self.call_type, self.window.label(), exc)
        return self._stop(UnitStatus.FAILED, error=str(exc))

    def _stop(self, status: UnitStatus, error: str | None = None) -> Step:
        self.result.status = status
        if error is not None:
            self.result.error = error
        if self.files is not None and not self.result.files:
            # Files this attempt committed before it stopped (a lost claim, a failure after a
            # split): in place for whoever finishes the window, and counted as written here.
            committed = self.files.files.files
            self.result.files = [FileWritten(self.window, self.call_type, f.position, f.name, f.rows, f.bytes,
                                             f.created) for f in committed]
            record_unit_metrics(self.call_type, [f.bytes for f in committed if f.created], 0, 0)
        annotate(self.span, status=status.value)
        self._end_span()
        return Step(Next.STOP, self.result)

    def _end_span(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.end()
