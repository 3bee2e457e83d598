"""The files of one (window, type): ETL API pages -> screened batches -> records -> files.

:class:`WindowFiles` writes the window with the recipe its claim recorded (read by the unit), and
streams the window's calls into a :class:`~shared.writers.rotating.RotatingWriter`
(every file but the last committed as it fills) and its bad calls into the
:class:`~shared.dead_letters.DeadLetters` file; :meth:`WindowFiles.finish` commits the last file
and the dead letters. The unit's state machine (:mod:`shared.unit`) drives it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.batching import prefetch, rebatch_pages
from shared.blob_store import FileIdentity, StagedUpload
from shared.clients import Clients
from shared.columnar import parser_for
from shared.dead_letters import DeadLetters
from shared.errors import EtlApiError, StateConflictError, UnitBudgetExceeded
from shared.etl_client import Destination, EtlClient
from shared.limits import Limits
from shared.page_reader import line_cap_for
from shared.prefilter import needs_reference_path
from shared.recipe import Recipe
from shared.state_store import TypeState
from shared.windows import Window
from shared.writers import WriterOptions, writer_class
from shared.writers.rotating import ClosedFile, RotatingWriter

log = logging.getLogger(__name__)


class WindowFiles:
    """Streams one (window, type) into files of at most the caps, then commits them."""

    def __init__(
        self,
        clients: Clients,
        dest: Destination,
        claimed: TypeState,
        window: Window,
        recipe: Recipe,
        current: Recipe,
        guard: Callable[[], None] | None = None,
        resumed: bool = True,
    ) -> None:
        """``recipe``: the one the window is written with (a resumed claim's own, read by the unit);
        ``current``: the recipe of the settings now.
        ``guard``: runs before each file's commit and raises :class:`ClaimLost` once the claim is gone.
        ``resumed``: the claim took over a pending claim of this window (a crash, another run), so
        files of the window may be in place already: each file's name is looked up before its
        upload (ours: only hashed, not sent again). A fresh claim (the row had no claim of this
        window) skips that read: no writer held the window before, and the create-only commit still
        finds whatever holds the name (docs/design.md, "The unit of work"). Once a fresh claim
        finds one of its files in place all the same (a type started over without moving its
        files), it is treated as resumed from there on (:attr:`written_before`)."""
        self.call_type = claimed.call_type
        self.resumed = resumed
        self.window = window
        if recipe != current:
            log.info("%s %s: finishing the window with the settings it was started with (%s)",
                     self.call_type, window.label(), recipe.to_json())
        if recipe.container != current.container:
            raise StateConflictError(
                f"{self.call_type} {window.label()} was started in the container {recipe.container} "
                f"but the settings now point at {current.container}: point BLOB_SAS_URL (or "
                "BLOB_ACCOUNT_URL/BLOB_CONTAINER) back at the first one until `status` shows no "
                "pending window, then switch (docs/operations.md, 'Moving the export')",
                window=window, call_type=self.call_type,
            )
        self.recipe = recipe
        blobs = clients.blobs.at_path(recipe.blob_path)  # a pending window is finished where it started
        writer_cls = writer_class(recipe.export_format)
        options = WriterOptions(
            gzip=recipe.gzip,
            parquet_compression=recipe.parquet_compression,
            csv_escape_formulas=recipe.csv_escape_formulas,
        )
        self.parser = parser_for(
            self.call_type, writer_cls.spec.mode, Limits(max_call_bytes=recipe.max_call_bytes), window
        )

        def name_of(position: int) -> str:
            return blobs.data_file_name(dest.key, position, self.call_type, writer_cls.extension_for(options))

        def open_sink(position: int) -> StagedUpload:
            identity = FileIdentity(window.start, window.end, self.call_type, position)
            return blobs.open(name_of(position), identity, writer_cls.content_type_for(options), guard=guard,
                              look_first=self.written_before)

        self.blobs = blobs  # where the window's files go (its manifest too)
        self._blobs, self._name_of = blobs, name_of

        self.files = RotatingWriter(
            writer_cls, self.call_type, options,
            first_position=claimed.pending_position or claimed.next_position,
            max_rows=recipe.max_file_rows, max_bytes=recipe.max_file_bytes, open_sink=open_sink,
        )
        self.dead_letters = DeadLetters(blobs, dest.key, window, self.call_type, guard=guard)

    @property
    def written_before(self) -> bool:
        """Whether files of the window may have been in place before this claim: it resumed one,
        or a file it committed (data or dead letters) was found there already, ours (a fresh claim
        of a type started over, docs/operations.md). Such a window gets the checks of a resumed
        one: its names are looked up before an upload, and :meth:`check_nothing_past` runs."""
        return (self.resumed or any(not f.created for f in self.files.files)
                or self.dead_letters.found_in_place)

    def read(self, etl: EtlClient, deadline: float | None = None) -> None:
        """Stream the window's calls into files; every file but the last one is committed.

        ``deadline`` (monotonic): past it the unit stops with UnitBudgetExceeded (transient),
        its state untouched, before its last file, dead letters or state are committed.
        """
        with self.files, self.dead_letters:
            # Two read-ahead threads: one fetches the next ETL page while the other splits the
            # current one into batches and runs the prefilter (one C++ regex pass that releases
            # the GIL), so neither the network nor the screen stalls the decoding here. At most
            # one page and one batch wait (about 6 MB at 1.4 KB per call).
            pages = prefetch(
                etl.pages(self.call_type, self.window.start, self.window.end,
                          line_cap=line_cap_for(self.recipe.max_call_bytes), deadline=deadline),
                depth=1, name="fetch",
            )
            limits = self.parser.limits
            screened = (
                (lines, set_aside, needs_reference_path(lines, limits) if len(lines) else None)
                for lines, set_aside in rebatch_pages(pages)
            )
            for lines, set_aside, flags in prefetch(screened, depth=1, name="screen"):
                if set_aside:
                    self.dead_letters.add(set_aside)
                if len(lines):
                    batch = self.parser.parse(lines, flags)
                    if batch.rejected:
                        self.dead_letters.add(batch.rejected)
                    self.files.write(batch)
                if deadline is not None and time.monotonic() > deadline:
                    raise UnitBudgetExceeded(
                        "not done within UNIT_BUDGET_SECONDS; nothing of the window is committed "
                        "and the next run resumes it (if this repeats, raise UNIT_BUDGET_SECONDS)",
                        window=self.window, call_type=self.call_type,
                    )

    def finish(self) -> list[ClosedFile]:
        """Commit the last file, then the dead-letter file; every data file of the window."""
        with self.files, self.dead_letters:
            files = self.files.close()
            self.dead_letters.commit()
            return files

    def check_nothing_past(self, last_position: int) -> None:
        """Before the state commit: the file after the window's last one must not be one of this
        window (one metadata read). It is when the ETL API now returns fewer calls for the window
        than a run before a crash wrote: committing the state at ``last_position`` would leave that
        file past it, in the way of the next window."""
        position = last_position + 1
        name = self._name_of(position)
        metadata = self._blobs.metadata_of(name)
        identity = FileIdentity(self.window.start, self.window.end, self.call_type, position)
        if metadata is not None and identity.matches(metadata):
            raise EtlApiError(
                f"the ETL API returned fewer calls for the closed window {self.window.label()} of "
                f"{self.call_type} than its files already hold: {name} is a file of this window past the "
                f"{'last one written now' if last_position else 'window, which now has no calls'}; "
                "nothing moved: a closed window must not change, ask the ETL API owners; to accept "
                "the new data, move that window's files away and run again (docs/guarantees.md)",
                window=self.window, call_type=self.call_type, blob=name,
            )

    def abandon(self) -> None:
        """Drop the open uploads (a started unit that will not be finished)."""
        self.files.abandon()
        self.dead_letters.abandon()
