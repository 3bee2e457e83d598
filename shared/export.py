"""One export run: every due window, oldest first, for every call type.

Plain Python: it takes settings, a clock and clients, and imports nothing from azure.functions,
so the timer, the CLI and the tests run the same code.

The unit of work is (window, type):

    claim (Table, If-Match)  ->  ETL API pages  ->  records  ->  writer  ->  staged blocks
    ->  create-only commit per file (with metadata)  ->  dead-letter file  ->  state commit

Nothing advances past data that did not land: the state row moves (position, window end) only
after every file of the window is committed, and a crash anywhere leaves a pending claim that the
next run resumes at once, finding its own committed blobs instead of writing new ones.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from opentelemetry import trace

from shared.batching import prefetch, rebatch_pages
from shared.blob_store import BlobStore, FileIdentity, StagedUpload, container_location
from shared.calltypes import CALL_TYPES
from shared.columnar import parser_for
from shared.crashpoints import crashpoint
from shared.errors import ClaimLost, ExportError, StateConflictError, UnitBudgetExceeded, WindowNotClosed
from shared.etl_client import Destination, EtlClient
from shared.memory import frozen_gc, release_free_memory, tune_allocator
from shared.page_reader import OversizedLine, line_cap_for
from shared.pinning import pin_destination
from shared.prefilter import needs_reference_path
from shared.records import Limits, ParsedBatch, RejectedCall
from shared.redact import redact_text
from shared.settings import Settings
from shared.state_store import StateStore, TypeState
from shared.telemetry import (
    annotate_destination,
    bind_log_context,
    bytes_written,
    calls_exported,
    failed_runs,
    files_written,
    record_export_lag,
    rejected_calls,
    reset_log_context,
    run_duration,
    tracer,
)
from shared.windows import WINDOW, Window, due_windows, format_rfc3339, latest_due_end
from shared.writers import FormatWriter, WriterOptions, writer_class

log = logging.getLogger(__name__)


@dataclass
class Clients:
    """What a run talks to. Built from settings by :func:`shared.wiring.build_clients`."""

    etl: EtlClient
    blobs: BlobStore
    state: StateStore


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
    status: str  # exported | empty | busy | not_closed | failed
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
        return [u for u in self.units if u.status == "failed"]

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


def run_export(
    settings: Settings,
    clients: Clients,
    now: datetime,
    *,
    run_id: str | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Export every due window (oldest first, at most ``max_windows_per_run``) for every type.

    Never raises for a failed window: the summary says what failed and the state did not move
    past it. Permanent errors (token, permissions, a foreign blob in the way) stop the run and
    are reported in ``summary.error``.
    """
    run_id = run_id or uuid.uuid4().hex
    tune_allocator()
    started = monotonic()
    deadline = started + settings.run_budget_seconds
    summary = RunSummary(run_id=run_id, destination=None, now=now)
    log_context = bind_log_context(run_id=run_id)
    with tracer.start_as_current_span("export.run") as span, frozen_gc():
        span.set_attribute("exporter.run_id", run_id)
        span.set_attribute("exporter.format", settings.export_format)
        try:
            _run(settings, clients, now, summary, deadline, monotonic)
        except ExportError as exc:
            summary.error = str(exc)
            log.error("export run stopped: %s", exc)
        span.set_attribute("exporter.rows", summary.rows)
        span.set_attribute("exporter.files", len(summary.files))
        span.set_attribute("exporter.rejected", summary.rejected)
        span.set_attribute("exporter.bytes", sum(f.bytes for f in summary.files))
        span.set_attribute("exporter.windows", len({u.window for u in summary.units}))
        if not summary.ok:
            span.set_status(trace_error(summary))
            failed_runs.add(1)
    run_duration.record(monotonic() - started, {"outcome": "ok" if summary.ok else "failed"})
    reset_log_context(log_context)
    return summary


def trace_error(summary: RunSummary):  # type: ignore[no-untyped-def]
    from opentelemetry.trace import Status, StatusCode

    # Redacted before the cut, so a cut cannot leave a piece of a secret to match against.
    return Status(StatusCode.ERROR, redact_text(summary.error or "a window failed")[:200])


def _run(
    settings: Settings,
    clients: Clients,
    now: datetime,
    summary: RunSummary,
    deadline: float,
    monotonic: Callable[[], float],
) -> None:
    remote = clients.etl.destination()
    store = clients.state
    store.ensure_table()
    # The rows are keyed by the ids pinned on first use, never by the answer of the day.
    here = Recipe.of(settings)
    dest = pin_destination(store, remote, container=here.container, blob_path=here.blob_path)
    summary.destination = dest
    annotate_destination(dest.integration_id, dest.action_id)
    first_start = settings.export_start or (latest_due_end(now, settings.settle_seconds) - WINDOW)
    states: dict[str, TypeState] = {}
    for call_type in CALL_TYPES:
        state = store.get(dest.key, call_type) or store.create(dest.key, call_type, first_start)
        states[call_type] = state
    plan = _plan(states, now, settings)
    record_export_lag(now, {t: s.window_end for t, s in states.items()})
    log.info(
        "export run %s for %s: %d window(s) due",
        summary.run_id, dest.key, len(plan),
        extra={"integration_id": dest.integration_id, "action_id": dest.action_id},
    )
    stopped: set[str] = set()
    # A unit's tail (its last row group, the last commit, the state commit) runs on the finisher
    # thread while the next unit claims and streams: one unit finishing at a time, in order. A
    # unit's state commit still comes after its own files; types are independent rows.
    finishing: tuple[_Unit, Future[UnitOutcome]] | None = None

    def collect() -> None:
        nonlocal finishing
        if finishing is None:
            return
        unit, future = finishing
        finishing = None
        result, new_state = future.result()
        summary.units.append(result)
        if new_state is None:
            stopped.add(unit.call_type)
        else:
            states[unit.call_type] = new_state

    finisher = ThreadPoolExecutor(1, thread_name_prefix="finish")
    try:
        for window in plan:
            for call_type in CALL_TYPES:
                if finishing is not None and finishing[0].call_type == call_type:
                    collect()  # its next window needs the state it commits
                if call_type in stopped or states[call_type].window_end != window.start:
                    continue
                if monotonic() > deadline:
                    collect()
                    summary.stopped_by_budget = True
                    log.warning("run budget of %ss spent; the rest is left for the next run",
                                settings.run_budget_seconds)
                    return
                unit = _Unit(settings, clients, dest, states[call_type], window, summary.run_id)
                done = unit.start()
                try:
                    collect()
                except BaseException:
                    unit.abandon()
                    raise
                if done is not None:
                    summary.units.append(done[0])
                    stopped.add(call_type)
                else:
                    finishing = (unit, finisher.submit(contextvars.copy_context().run, unit.finish))
        collect()
    except BaseException:
        if finishing is not None:  # let it land (or fail) before the error goes up
            with contextlib.suppress(BaseException):  # the first error is the one reported
                collect()
        raise
    finally:
        finisher.shutdown(wait=True)
    record_export_lag(now, {t: s.window_end for t, s in states.items()})


def _plan(states: dict[str, TypeState], now: datetime, settings: Settings) -> list[Window]:
    """The run's windows: the union of each type's due windows, oldest first, capped."""
    windows: set[Window] = set()
    for state in states.values():
        windows.update(due_windows(state.window_end, now, settings.settle_seconds,
                                   settings.max_windows_per_run))
    return sorted(windows)[: settings.max_windows_per_run]


#: A unit's result and its new state (None: do not go on with this type in this run).
UnitOutcome = tuple["UnitResult", TypeState | None]


class _Unit:
    """One (window, type) in two steps, under one ``export.window`` span.

    :meth:`start` (the run's thread) claims the window and streams its calls into files, all but
    the last one committed; :meth:`finish` (the finisher thread) commits the last file and the
    dead letters, then the state.
    """

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
        self.result = UnitResult(window, state.call_type, "exported")
        self.claimed: TypeState | None = None
        self.writer: _UnitWriter | None = None
        self._ended = False
        self.span = tracer.start_span("export.window")
        self.span.set_attribute("exporter.type", state.call_type)
        self.span.set_attribute("exporter.window_start", format_rfc3339(window.start))
        self.span.set_attribute("exporter.window_end", format_rfc3339(window.end))
        self.span.set_attribute("exporter.integration_id", dest.integration_id)
        self.span.set_attribute("exporter.action_id", dest.action_id)

    def start(self) -> UnitOutcome | None:
        """Claim and stream. Returns the outcome when there is nothing to finish, else None."""
        ok = False
        deadline = time.monotonic() + self.settings.unit_budget_seconds
        with trace.use_span(self.span, end_on_exit=False):
            try:
                current = Recipe.of(self.settings)
                claimed = self.clients.state.claim(self.state, self.window.start, self.run_id, current.to_json())
                if claimed is None:
                    self.result.status = "busy"
                    log.info("%s %s: another run is exporting it; leaving it to that run",
                             self.call_type, self.window.label())
                    return self._end()
                crashpoint("after_claim")
                self.claimed = claimed
                self.writer = _UnitWriter(self.clients.blobs, self.dest, claimed, self.window, current,
                                          guard=self._guard)
                self.writer.read(self.clients.etl, deadline)
                ok = True
            except ClaimLost:
                return self._lost()
            except WindowNotClosed as exc:
                self.result.status = "not_closed"
                self.result.error = str(exc)
                log.info("%s %s: %s", self.call_type, self.window.label(), exc)
                return self._end()
            except ExportError as exc:
                if not exc.transient:
                    raise
                return self._failed(exc)
            finally:
                if not ok:  # an error on its way up: the span still ends
                    self._end_span()
        return None

    def abandon(self) -> None:
        """Drop a started unit without finishing it (its claim is resumed by the next run)."""
        if self.writer is not None:
            self.writer.abandon()
        self._end_span()

    def finish(self) -> UnitOutcome:
        """Commit the last file, the dead letters, then the state."""
        assert self.writer is not None and self.claimed is not None
        writer, claimed, window = self.writer, self.claimed, self.window
        with trace.use_span(self.span, end_on_exit=True):
            try:
                writer.finish()
            except ClaimLost:
                return self._lost()
            except ExportError as exc:
                if not exc.transient:
                    raise
                return self._failed(exc)
            result = self.result
            result.files = writer.files
            result.rows = writer.rows
            result.rejected = writer.rejected
            result.rejected_blob = writer.rejected_blob
            if not writer.files:
                result.status = "empty"
            last_position = claimed.pending_position - 1 + len(writer.files)  # type: ignore[operator]
            crashpoint("before_state_commit")
            committed = self.clients.state.commit(claimed, window.end, last_position, self.run_id)
            crashpoint("after_state_commit")
            if committed is None:
                current = self.clients.state.get(claimed.dest_key, claimed.call_type)
                if current is None or current.window_end < window.end:
                    result.status = "busy"
                    log.info("%s %s: another run took the window over; its files are in place",
                             self.call_type, window.label())
                    return result, None
                committed = current
            self._record(writer, result)
            return result, committed

    def _record(self, writer: _UnitWriter, result: UnitResult) -> None:
        attrs = {"type": self.call_type}
        for f in writer.files:
            if f.created:
                files_written.add(1, attrs)
                bytes_written.add(f.bytes, attrs)
        calls_exported.add(writer.rows, attrs)
        if writer.rejected:
            rejected_calls.add(writer.rejected, attrs)
        span = self.span
        span.set_attribute("exporter.rows", writer.rows)
        span.set_attribute("exporter.files", len(writer.files))
        span.set_attribute("exporter.bytes", sum(f.bytes for f in writer.files))
        span.set_attribute("exporter.rejected", writer.rejected)
        if writer.files:
            span.set_attribute("exporter.first_position", writer.files[0].position)
            span.set_attribute("exporter.last_position", writer.files[-1].position)
            span.set_attribute("exporter.blob", writer.files[-1].name)
            span.set_attribute("exporter.blobs", [f.name for f in writer.files])
        span.set_attribute("exporter.status", result.status)
        log.info(
            "%s %s: %d call(s) in %d file(s), %d rejected",
            self.call_type, self.window.label(), writer.rows, len(writer.files), writer.rejected,
            extra={"integration_id": self.dest.integration_id, "action_id": self.dest.action_id},
        )

    def _guard(self) -> None:
        """Before each create-only commit: is the claim still ours? (docs/guarantees.md, "Two runs at once")"""
        assert self.claimed is not None
        if not self.clients.state.holds_claim(self.claimed):
            raise ClaimLost(f"{self.call_type} {self.window.label()}: another run took the window over")

    def _lost(self) -> UnitOutcome:
        self.result.status = "busy"
        log.info("%s %s: another run took the window over before our next commit; leaving it to that run",
                 self.call_type, self.window.label())
        return self._end()

    def _failed(self, exc: ExportError) -> UnitOutcome:
        self.result.status = "failed"
        self.result.error = str(exc)
        self.span.set_attribute("exporter.error", str(exc)[:200])
        log.warning("%s %s failed, will retry on the next run: %s",
                    self.call_type, self.window.label(), exc)
        return self._end()

    def _end(self) -> UnitOutcome:
        self.span.set_attribute("exporter.status", self.result.status)
        self._end_span()
        return self.result, None

    def _end_span(self) -> None:
        if not self._ended:
            self._ended = True
            self.span.end()


@dataclass(frozen=True)
class Recipe:
    """Every setting that shapes a window's files (where they go, names, split points, bytes).

    Recorded with the claim, so a window resumed after a crash is finished with the recipe it was
    started with: its files stay in one container and folder, keep one extension and the same
    split, whatever changed meanwhile.
    """

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
        return cls(
            settings.export_format, settings.gzip, settings.parquet_compression,
            settings.csv_escape_formulas, settings.max_file_rows, settings.max_file_bytes,
            settings.max_call_bytes,
            container=container_location(sas_url=settings.blob_sas_url, account_url=settings.blob_account_url,
                                         container=settings.blob_container),
            blob_path=settings.blob_path,
        )

    def to_json(self) -> str:
        return orjson.dumps(self.__dict__, option=orjson.OPT_SORT_KEYS).decode()

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


class _UnitWriter:
    """Streams one (window, type) into files of at most the size cap, then commits them."""

    def __init__(
        self,
        blobs: BlobStore,
        dest: Destination,
        claimed: TypeState,
        window: Window,
        current: Recipe,
        guard: Callable[[], None] | None = None,
    ) -> None:
        """``current``: the recipe of the settings now; a resumed claim brings its own.
        ``guard``: runs before each file's commit and raises :class:`ClaimLost` once the claim is gone."""
        self.dest = dest
        self.call_type = claimed.call_type
        self.window = window
        self.position = claimed.pending_position or claimed.next_position
        recipe = Recipe.from_json(claimed.pending_recipe, current) if claimed.pending_recipe else current
        if recipe != current:
            log.info("%s %s: finishing the window with the settings it was started with (%s)",
                     self.call_type, window.label(), recipe.to_json())
        if recipe.container != current.container:
            raise StateConflictError(
                f"{self.call_type} {window.label()} was started in the container {recipe.container} "
                f"but the settings now point at {current.container}: point BLOB_SAS_URL (or "
                "BLOB_ACCOUNT_URL/BLOB_CONTAINER) back at the first one until `status` shows no "
                "pending window, then switch (docs/operations.md, 'Moving the export')"
            )
        self.blobs = blobs.at_path(recipe.blob_path)  # a pending window is finished where it started
        self.guard = guard
        self.recipe = recipe
        self.writer_cls = writer_class(recipe.export_format)
        self.options = WriterOptions(
            gzip=recipe.gzip,
            parquet_compression=recipe.parquet_compression,
            csv_escape_formulas=recipe.csv_escape_formulas,
        )
        self.parser = parser_for(
            self.call_type, self.writer_cls.spec.mode, Limits(max_call_bytes=recipe.max_call_bytes), window
        )
        self.files: list[FileWritten] = []
        self.rows = 0
        self.rejected = 0
        self.rejected_blob: str | None = None
        self._upload: StagedUpload | None = None
        self._writer: FormatWriter | None = None
        self._rejects: StagedUpload | None = None

    def read(self, etl: EtlClient, deadline: float | None = None) -> None:
        """Stream the window's calls into files; every file but the last one is committed.

        ``deadline`` (monotonic): past it the unit stops with UnitBudgetExceeded (transient),
        its state untouched, before its last file, dead letters or state are committed.
        """
        try:
            # Two read-ahead threads: one fetches the next ETL page while the other splits the
            # current one into batches and runs the prefilter (one C++ regex pass that releases
            # the GIL), so neither the network nor the screen stalls the decoding here. At most
            # one page and one batch wait (about 6 MB at 1.4 KB per call).
            pages = prefetch(
                etl.pages(self.call_type, self.window.start, self.window.end,
                          line_cap=line_cap_for(self.recipe.max_call_bytes), deadline=deadline),
                depth=1,
            )
            limits = self.parser.limits
            screened = (
                (lines, oversized, needs_reference_path(lines, limits) if len(lines) else None)
                for lines, oversized in rebatch_pages(pages)
            )
            for lines, oversized, flags in prefetch(screened, depth=1):
                if oversized:
                    self._reject(oversized)
                if len(lines):
                    self._take(self.parser.parse(lines, flags))
                if deadline is not None and time.monotonic() > deadline:
                    raise UnitBudgetExceeded(
                        "not done within UNIT_BUDGET_SECONDS; nothing of the window is committed "
                        "and the next run resumes it (if this repeats, raise UNIT_BUDGET_SECONDS)"
                    )
        except BaseException:
            self.abandon()
            raise

    def finish(self) -> None:
        """Commit the last file and the dead-letter file."""
        try:
            self._finish_file()
            self._finish_rejects()
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        for upload in (self._upload, self._rejects):
            if upload is not None:
                upload.abandon()

    def _take(self, batch: ParsedBatch) -> None:
        if batch.rejected:
            self._reject(batch.rejected)
        offset = 0
        max_rows = self.recipe.max_file_rows
        while offset < batch.count:
            writer = self._writer or self._open_file()
            take = min(max_rows - writer.rows, batch.count - offset)
            writer.write(batch if (offset == 0 and take == batch.count) else _slice(batch, offset, take))
            offset += take
            crashpoint("after_stage")
            if writer.rows >= max_rows or writer.size_before_compression >= self.recipe.max_file_bytes:
                self._finish_file()

    def _open_file(self) -> FormatWriter:
        identity = FileIdentity(self.window.start, self.window.end, self.call_type, self.position)
        cls, options = self.writer_cls, self.options
        name = self.blobs.data_file_name(
            self.dest.key, self.position, self.call_type, cls.extension_for(options)
        )
        self._upload = self.blobs.open(name, identity, cls.content_type_for(options), guard=self.guard)
        self._writer = self.writer_cls(self._upload, self.call_type, self.options)
        return self._writer

    def _finish_file(self) -> None:
        if self._writer is None or self._upload is None:
            return
        self._writer.close()
        committed = self._upload.commit(self._writer.rows)
        crashpoint("after_file_commit")
        self.files.append(FileWritten(
            self.window, self.call_type, self.position, committed.name, self._writer.rows,
            committed.size, committed.created,
        ))
        self.rows += self._writer.rows
        self.position += 1
        release_free_memory()
        self._writer = None
        self._upload = None

    def _reject(self, rejected: list[RejectedCall] | list[OversizedLine]) -> None:
        if self._rejects is None:
            name = self.blobs.rejected_file_name(self.dest.key, self.window.start, self.call_type)
            identity = FileIdentity(self.window.start, self.window.end, self.call_type, 0, kind="rejected")
            self._rejects = self.blobs.open(name, identity, "application/x-ndjson", guard=self.guard)
            self.rejected_blob = name
        out = bytearray()
        for bad in rejected:
            out += dead_letter_line(bad) + b"\n"
        self._rejects.write(bytes(out))
        self.rejected += len(rejected)
        log.warning("%s %s: %d call(s) rejected, first: %s", self.call_type, self.window.label(),
                    len(rejected), rejected[0].reason)

    def _finish_rejects(self) -> None:
        if self._rejects is not None:
            self._rejects.commit(self.rejected)


def dead_letter_line(bad: RejectedCall | OversizedLine) -> bytes:
    """One line of a ``_rejected/`` file: the reason and the original line, losslessly; for a
    line over the line cap, its length, SHA-256 and first bytes (docs/file-format.md)."""
    if isinstance(bad, OversizedLine):
        entry: dict[str, object] = {"reason": bad.reason, "line_bytes": bad.length, "line_sha256": bad.sha256}
        for cut in range(4):  # the prefix may end inside a UTF-8 character
            try:
                entry["line_prefix"] = bad.prefix[: len(bad.prefix) - cut].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        else:
            entry["line_prefix_base64"] = base64.b64encode(bad.prefix).decode()
        return orjson.dumps(entry)
    try:
        text = bad.line.decode("utf-8")
        return orjson.dumps({"reason": bad.reason, "line": text})
    except (UnicodeDecodeError, orjson.JSONEncodeError):
        # Not UTF-8, or lone surrogates orjson refuses: keep the exact bytes.
        return orjson.dumps({"reason": bad.reason, "line_base64": base64.b64encode(bad.line).decode()})


def _slice(batch: ParsedBatch, offset: int, count: int) -> ParsedBatch:
    end = offset + count
    return ParsedBatch(
        call_type=batch.call_type,
        mode=batch.mode,
        columns=[col[offset:end] for col in batch.columns],
        lines=batch.lines[offset:end],
        count=count,
        arrow=batch.arrow.slice(offset, count) if batch.arrow is not None else None,
    )

