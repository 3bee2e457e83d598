"""Writing a sequence's window manifests, from what is in storage (docs/design.md, "Manifests").

After a unit's state commit, :meth:`ManifestChain.complete` reads the sequence's type rows (six
for a live export, a backfill's types for a backfill):
every window that ends at or before the least committed ``window_end`` and has no manifest yet gets
one, oldest first. Where the chain stands is a cursor row in STATE_TABLE (PartitionKey
``manifests``, RowKey the sequence's state key: shared/state_store.py ``ManifestCursor``): the
end of the last manifest's window, its name and SHA-256 and each type's last position then.

A window's files of a type are the positions after the previous manifest's last one whose
metadata names this window (positions are gapless and windows commit in order per type), its
dead-letter file has a fixed name: the manifest is a pure function of the previous manifest and
the blobs, built by whoever completes the window (any run, any instance), never from memory. It
is committed create-only; a 409 whose blob says the same (the recipe aside) is a manifest already
written (a racing writer, a crash before the cursor moved); anything else is a permanent
:class:`BlobConflictError`. A crash anywhere leaves the cursor behind: the next completion writes
the missing manifests first, in order. Costs per unit: one Table query (the type rows), and the
cursor's read when the unit raised the least committed window end; per window: one listing per
position its files hold plus one (``{key}.{position}.`` lists every type's file there), one
listing of its dead-letter files, one upload and one Table write.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.blob_store import BlobStore, FileIdentity
from shared.calltypes import CALL_TYPES
from shared.crashpoints import crashpoint
from shared.errors import BlobConflictError, ExportError, StateConflictError, StorageError
from shared.etl_client import Destination
from shared.file_audit import DATA_EXTENSIONS
from shared.manifest import (
    CONTENT_TYPE,
    ListedFile,
    Manifest,
    ManifestError,
    TypeOutcome,
    manifest_name,
    parse,
    recipe_json,
    sha256_hex,
)
from shared.sequence import Sequence, parse_state_key
from shared.state_store import CURSORS_PARTITION, ManifestCursor, StateStore, TypeState
from shared.telemetry import manifests_written
from shared.windows import WINDOW, Window, format_rfc3339

log = logging.getLogger(__name__)

#: Most manifests one completion writes (a repair after a long outage goes on at the next one).
MAX_PER_CALL = 200


class ManifestChain:
    """The manifests of one sequence (its state key) in one folder (where its files go)."""

    def __init__(self, blobs: BlobStore, state: StateStore, dest: Destination, state_key: str) -> None:
        self.blobs = blobs  # at the sequence's folder
        self.state = state
        self.dest = dest
        self.state_key = state_key
        parsed = parse_state_key(state_key)
        self.sequence = parsed[1] if parsed else Sequence()
        self._fresh()

    # -- the cursor -------------------------------------------------------------------------------
    def start(self, rows: dict[str, TypeState] | None = None) -> ManifestCursor | None:
        """The cursor, created where the chain starts if there is none: the least committed window
        end of the sequence's types (a new sequence: its start; an existing one: the first window
        completed from now on). None while the sequence has no row."""
        cursor = self.state.get_cursor(self.state_key)
        if cursor is not None:
            return cursor
        self._fresh()  # the rows (read by the caller or here) are newer than any listing
        rows = rows if rows is not None else self.state.type_rows(self.state_key)
        if not rows:
            return None
        least = min(r.window_end for r in rows.values())
        positions = {t: self._position_at(rows[t], least) for t in _types(rows)}
        log.info("manifests of %s start at %s", self.sequence.label(), format_rfc3339(least))
        return self.state.create_cursor(ManifestCursor(self.state_key, least, positions=positions))

    def _position_at(self, row: TypeState, instant: datetime) -> int:
        """A type's last position at ``instant`` (its files of later windows walked back, once)."""
        position = row.position
        while position > 0 and row.window_end > instant:
            found = self._file(row.call_type, position)
            if found is None:
                break  # not in this folder (a moved BLOB_PATH): the chain starts after it
            _, metadata = found
            if metadata.get("window_end", "") <= format_rfc3339(instant):
                break
            position -= 1
        return position

    # -- completing windows -----------------------------------------------------------------------
    def complete(self, recipe: object, rose_to: datetime | None = None) -> list[str]:
        """Write the manifest of every window all six types have committed, oldest first; the names
        written (or found already written).

        ``rose_to``: the window end a unit has just committed. Unless it is now the least of the
        rows (that unit raised the least: a window may be complete), nothing was completed and the
        cursor is not read. A cursor left behind by a crash is caught up at the next rise, or at the
        start of the next run or plan (:meth:`resume`)."""
        rows = self.state.type_rows(self.state_key)
        self._fresh()
        if not rows:
            return []
        least = min(r.window_end for r in rows.values())
        if rose_to is not None and rose_to != least:
            return []
        cursor = self.start(rows)
        if cursor is None:
            return []
        done: list[str] = []
        while cursor.window_end < least and len(done) < MAX_PER_CALL:
            window = Window(cursor.window_end, cursor.window_end + WINDOW)
            manifest = self._build(window, cursor, rows, recipe)
            data = manifest.encode()
            name = manifest_name(self.blobs.blob_path, self.dest.key, window.start)
            crashpoint("before_manifest_commit")
            digest = self._commit(name, manifest, data)
            crashpoint("after_manifest_commit")
            after = ManifestCursor(self.state_key, window.end, name, digest,
                                   {t: o.last_position for t, o in manifest.types.items()})
            moved = self.state.advance_cursor(cursor, after)
            if moved is None:  # another writer moved it: go on from where it is
                current = self.state.get_cursor(self.state_key)
                if current is None:
                    raise StorageError(f"the manifest cursor {self.state_key} vanished")
                moved = current
            cursor = moved
            done.append(name)
        return done

    def resume(self, rows: dict[str, TypeState], recipe: object) -> ManifestCursor | None:
        """A run's or a plan's start: :meth:`start`, and the manifests a crash left unwritten (the
        cursor behind the least committed window end). A transient failure waits for the next
        completion, as after a unit."""
        cursor = self.start(rows)
        if cursor is not None and rows and cursor.window_end < min(r.window_end for r in rows.values()):
            try:
                self.complete(recipe)
            except ExportError as exc:
                if not exc.transient:
                    raise
                log.warning("the manifests of %s wait for the next window: %s", self.sequence.label(), exc)
        return cursor

    def _build(self, window: Window, cursor: ManifestCursor, rows: dict[str, TypeState], recipe: object) -> Manifest:
        outcomes: dict[str, TypeOutcome] = {}
        for t in _types(rows):
            last = cursor.positions.get(t, 0)
            if rows[t].position < last:
                raise self._unchained(t, window, f"its row is at position {rows[t].position}, the chain at {last}")
            files: list[ListedFile] = []
            position = last + 1
            while position <= rows[t].position:
                found = self._file(t, position)
                if found is None:
                    raise StorageError(
                        f"{t} position {position} is committed in STATE_TABLE {self.state.table_name} but no "
                        f"file of it is in {self.blobs.blob_path or 'the container root'}: the manifest of "
                        f"{window.label()} waits; if it was deleted, restore it (run `verify`)",
                        window=window, call_type=t)
                (name, size), metadata = found
                identity = FileIdentity(window.start, window.end, t, position)
                if not identity.matches(metadata):
                    if metadata.get("window_start", "~") < format_rfc3339(window.start):
                        raise self._unchained(t, window, f"{name}, after its position {last} in the chain, "
                                                         f"is of the earlier window {metadata['window_start']}")
                    break  # a file of a later window: this window's files end here
                files.append(ListedFile(name, _int(metadata.get("rows")), size, metadata.get("sha256", ""), position))
                position += 1
            rejected = self._rejected(window, t)
            outcomes[t] = TypeOutcome(tuple(files), rejected, files[-1].position if files else last)
        return Manifest(
            integration_id=self.dest.integration_id, action_id=self.dest.action_id,
            destination=self.sequence.destination, backfill=self.sequence.backfill, window=window,
            types=outcomes, previous_name=cursor.name or None, previous_sha256=cursor.sha256 or None,
            recipe=recipe_json(recipe),
        )

    def _file(self, call_type: str, position: int) -> tuple[tuple[str, int], dict[str, str]] | None:
        """The data file at a position (any extension): ((name, bytes), metadata), or None.

        One listing per position serves every type (``{key}.{position}.`` names them all: each
        type counts its own positions), kept until the rows are read again (:meth:`_fresh`): a
        lookup is only made at a position its type's row has committed, so the file was in place
        before the rows were read, and so before the listing."""
        found = self._at_position.get(position)
        if found is None:
            prefix = self.blobs.data_file_name(self.dest.key, position, "", "")[:-1]  # "{key}.{position}."
            found = {}
            for blob in self.blobs.listing(prefix):
                kind = data_file_type(blob.name[len(prefix):])
                if kind is not None and kind not in found:
                    found[kind] = ((blob.name, blob.size), blob.metadata)
            self._at_position[position] = found
        return found.get(call_type)

    def _rejected(self, window: Window, call_type: str) -> ListedFile | None:
        """The window's dead-letter file of a type: one listing per window serves every type."""
        found = self._rejected_in.get(window.start)
        if found is None:
            prefix = self.blobs.rejected_file_name(self.dest.key, window.start, "")[: -len(".ndjson")]
            found = {}
            for blob in self.blobs.listing(prefix):
                kind = rejected_file_type(blob.name[len(prefix):])
                if kind is not None:
                    found[kind] = ListedFile(
                        blob.name, _int(blob.metadata.get("rows")), blob.size, blob.metadata.get("sha256", ""))
            self._rejected_in[window.start] = found
        return found.get(call_type)

    def _unchained(self, call_type: str, window: Window, what: str) -> StateConflictError:
        """The type's row and files do not go on from where the chain says it stood (the rows were
        started over by hand under it): no manifest is written from them."""
        return StateConflictError(
            f"the manifest of {window.label()} is not written: {call_type}'s {what} (STATE_TABLE "
            f"{self.state.table_name}, row {CURSORS_PARTITION}/{self.state_key}): the type was started over "
            "under the manifest chain: delete that row too (docs/operations.md, 'Start a destination over')",
            window=window, call_type=call_type)

    def _fresh(self) -> None:
        """Forget what the listings found: the rows are read again."""
        self._at_position: dict[int, dict[str, tuple[tuple[str, int], dict[str, str]]]] = {}
        self._rejected_in: dict[datetime, dict[str, ListedFile]] = {}

    def _commit(self, name: str, manifest: Manifest, data: bytes) -> str:
        """Create-only; the SHA-256 of the manifest now in place (ours, or an equal one)."""
        digest = sha256_hex(data)
        window = manifest.window
        metadata = {"exporter": "cdp-blob-exporter", "kind": "manifest", "window_start": format_rfc3339(window.start),
                    "window_end": format_rfc3339(window.end), "sha256": digest}
        if self.blobs.create_small(name, data, CONTENT_TYPE, metadata):
            manifests_written.add(1)
            log.info("manifest %s written", name)
            return digest
        existing = self.blobs.download(name)
        if existing is None:
            raise StorageError(f"{name}: the create-only write was refused but no blob is there", blob=name,
                               window=window)
        if existing == data:
            return digest
        try:
            same = parse(existing).outcome() == manifest.outcome()
        except ManifestError:
            same = False
        if not same:
            raise BlobConflictError(
                f"{name} already exists with another content than this window's outcome: the exporter never "
                "overwrites a manifest; run `python -m shared.cli verify` and move the wrong one away "
                "(docs/guarantees.md, 'Manifests')", blob=name, window=window)
        return sha256_hex(existing)


def data_file_type(rest: str) -> str | None:
    """The type of a data file named ``{key}.{position}.`` + ``rest`` (``track.csv``, ``page.json.gz``),
    or None for any other blob under that prefix (``1.track.csv`` of position 51, ``track.a.csv``,
    ``notes.txt``, ``track.csv.bak``)."""
    kind, _, extension = rest.partition(".")
    return kind if kind in CALL_TYPES and extension in DATA_EXTENSIONS else None


def rejected_file_type(rest: str) -> str | None:
    """The type of a dead-letter file named ``_rejected/{key}.{stamp}.`` + ``rest`` (``track.ndjson``),
    or None for any other blob under that prefix."""
    kind, dot, extension = rest.partition(".")
    return kind if kind in CALL_TYPES and dot and extension == "ndjson" else None


def _types(rows: dict[str, TypeState]) -> list[str]:
    """The sequence's types (all six for a live export, a backfill's own), in the usual order."""
    return [t for t in CALL_TYPES if t in rows]


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
