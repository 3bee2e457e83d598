"""``verify``: audit one sequence's folder (docs/guarantees.md, "Checking it: verify").

Checks, one :class:`Problem` per finding, naming the blob or the window:

* every blob under the folder is a data file, a dead-letter file or a manifest of this sequence
  (``foreign`` otherwise); the live sequence leaves ``_backfill/`` to each backfill's own audit, but
  a folder there of no backfill or replay recorded for the destination is ``foreign`` (one problem
  per folder);
* data file names and metadata agree (type, position, window, rows, SHA-256); positions 1..N per
  type (N: the type's committed position in STATE_TABLE) are each there exactly once (``gap``,
  ``duplicate``), none past N unless a pending claim is writing it;
* the manifests form one chain (windows back to back, each naming the SHA-256 of the one before,
  types' positions continuing, the newest the one the manifest cursor names, none missing up to the
  windows every type committed) and every file of a manifested window agrees with its manifest
  (name, bytes, rows, SHA-256) and is listed in it;
* ``deep``: every file's bytes re-read (streaming) against its SHA-256 and row count;
* ``etl``: every manifested window read again from the ETL API: each ``messageId`` in exactly one
  data file or in ``_rejected/``, and no other (``drift``, with the ids).

Memory stays flat whatever the range: listings are streamed page by page; what is held is a bitmap
of positions per type (one bit each), counters and order-free digests per type, and one window at
a time (its manifest, or, for ``etl``, its ids). The files are compared with their manifests through
those digests; only when a digest differs are that type's files looked at one by one, to name them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from shared.backfill import BACKFILLS_PARTITION, backfill_of_row
from shared.blob_store import BlobStore, ListedBlob
from shared.calltypes import CALL_TYPES
from shared.errors import ExportError
from shared.etl_client import Destination, EtlClient
from shared.file_audit import DATA_EXTENSIONS, read_back
from shared.manifest import (
    MANIFESTS_FOLDER,
    ListedFile,
    Manifest,
    ManifestError,
    manifest_name,
    parse,
    parse_name,
    sha256_hex,
)
from shared.page_reader import line_cap_for
from shared.recipe import UnreadableRecipe, recorded_folder
from shared.sequence import BACKFILL_FOLDER, Sequence
from shared.state_store import StateStore, TypeState
from shared.telemetry import record_verify_problems
from shared.windows import WINDOW, Window, format_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)

#: The kinds of problem (the ``kind`` of the exporter.verify.problems gauge).
KINDS = ("foreign", "metadata", "gap", "duplicate", "missing", "chain", "manifest", "content", "drift")
_SHA = re.compile(r"[0-9a-f]{64}\Z")
_MOD = 1 << 256
MAX_IDS_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    kind: str
    where: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class VerifyResult:
    manifests: int = 0
    data_files: int = 0
    rejected_files: int = 0
    windows_checked_with_etl: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    #: The live audit: the recorded backfills and replays with a folder in ``_backfill/`` (audited apart).
    backfills: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not sum(self.problems.values())

    def summary(self, label: str, folder: str) -> str:
        total = sum(self.problems.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.problems.items()))
        etl = f", {self.windows_checked_with_etl} window(s) read again from the ETL API" \
            if self.windows_checked_with_etl else ""
        return (f"verify {label} in {folder or '(container root)'}: {self.manifests} manifest(s), "
                f"{self.data_files} data file(s), {self.rejected_files} dead-letter file(s){etl}: "
                + (f"{total} problem(s) ({kinds})" if total else "no problem"))


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(str(p) for p in parts).encode()).digest(), "big")


class _Bits:
    """A growable bitmap of positions (one bit each)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, n: int) -> bool:
        """Set bit n; False when it was set already."""
        byte, bit = divmod(n, 8)
        if byte >= len(self.data):
            self.data.extend(b"\0" * (byte + 1 - len(self.data)))
        if self.data[byte] >> bit & 1:
            return False
        self.data[byte] |= 1 << bit
        return True

    def missing(self, upto: int) -> Iterator[int]:
        for n in range(1, upto + 1):
            byte, bit = divmod(n, 8)
            if byte >= len(self.data) or not self.data[byte] >> bit & 1:
                yield n


class Verifier:
    """One audit of one sequence in one folder."""

    def __init__(self, blobs: BlobStore, state: StateStore, dest: Destination, sequence: Sequence, folder: str, *,
                 report: Callable[[Problem], None], deep: bool = False, etl: EtlClient | None = None,
                 since: datetime | None = None, until: datetime | None = None, max_call_bytes: int = 65536) -> None:
        self.blobs = blobs.at_path(folder)
        self.folder = folder.strip("/")
        self.prefix = f"{self.folder}/" if self.folder else ""
        self.state = state
        self.dest = dest
        self.sequence = sequence
        self.state_key = sequence.state_key(dest.integration_id, dest.action_id)
        self._report = report
        self.deep = deep
        self.etl = etl
        self.since = since
        self.until = until
        self.max_call_bytes = max_call_bytes
        self.result = VerifyResult()
        key = re.escape(dest.key)
        self._data_re = re.compile(key + r"\.([1-9][0-9]*)\.([a-z]+)\.(" + "|".join(
            re.escape(e) for e in DATA_EXTENSIONS) + r")\Z")
        self._rejected_re = re.compile(r"_rejected/" + key + r"\.(\d{8}T\d{4}Z)\.([a-z]+)\.ndjson\Z")
        # Filled by the manifest pass: the chain's windows and, per type, its positions and digests.
        self.chain: Window | None = None  # [first manifest's start, last manifest's end)
        self.covered: dict[str, tuple[int, int]] = {}  # type -> (first, last) position the chain lists
        self.listed: dict[str, int] = Counter()  # type or "rejected:type" -> digest sum from manifests
        self.found: dict[str, int] = Counter()  # the same from the blobs
        self.floor: dict[str, int] = {}  # type -> last position in another place (the export moved here)
        self.backfill_blobs: Counter[str] = Counter()  # the live audit: blobs per folder of _backfill/

    def problem(self, kind: str, where: str, detail: str) -> None:
        self.result.problems[kind] += 1
        self._report(Problem(kind, where, detail))

    def in_range(self, start: datetime) -> bool:
        return (self.since is None or start >= self.since) and (self.until is None or start < self.until)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> VerifyResult:
        rows = self.state.type_rows(self.state_key)
        if not rows:
            self.problem("missing", self.sequence.label(),
                         f"no state rows {self.state_key} in STATE_TABLE {self.state.table_name}: nothing was "
                         "exported in this sequence (check the backfill id, STATE_TABLE and BLOB_PATH)")
            return self.result
        self._manifests(rows)
        self._files(rows)
        self._compare()
        if self.sequence.live:
            self._backfill_folders()
        if self.etl is not None:
            self._against_etl()
        if self.sequence.live:  # the gauge is the live export's (a backfill's audit is asked for by hand)
            record_verify_problems(self.sequence.destination, {k: self.result.problems.get(k, 0) for k in KINDS})
        return self.result

    # -- manifests --------------------------------------------------------------------------------
    def _list(self, prefix: str) -> Iterator[ListedBlob]:
        return self.blobs.listing(prefix)

    def _download(self, name: str) -> bytes | None:
        return self.blobs.download(name)

    def _manifests(self, rows: dict[str, TypeState]) -> None:
        previous: tuple[str, bytes, Manifest] | None = None
        least = min(r.window_end for r in rows.values())
        cursor = self.state.get_cursor(self.state_key)
        newest = cursor.name if cursor is not None and cursor.name.startswith(self.prefix) else ""
        anchor = cursor.sha256 if cursor is not None and newest else ""
        for blob in self._list(f"{self.prefix}{MANIFESTS_FOLDER}/"):
            name = blob.name
            is_newest = name == newest
            if is_newest:
                newest = ""  # there
            parsed = parse_name(name[len(self.prefix) + len(MANIFESTS_FOLDER) + 1:])
            if parsed is None or parsed[0] != self.dest.key:
                self.problem("foreign", name, "not a manifest of this sequence: move it away")
                continue
            if not self.in_range(parsed[1]):
                if self.until is not None and parsed[1] >= self.until:
                    break
                continue
            data = self._download(name)
            if data is None:
                continue
            if is_newest and anchor and sha256_hex(data) != anchor:
                # No later manifest names its SHA-256: the cursor is what proves it unchanged.
                self.problem("chain", name, f"the manifest cursor (STATE_TABLE {self.state.table_name}) records its "
                             f"SHA-256 as {anchor}, its bytes hash to {sha256_hex(data)}: it was changed after it was "
                             "written; restore it")
            try:
                manifest = parse(data)
            except ManifestError as exc:
                self.problem("manifest", name, f"unreadable: {exc}")
                previous = None
                continue
            self.result.manifests += 1
            if manifest.window.end > least:
                self.problem("manifest", name, f"its window {manifest.window.label()} is not committed by every type "
                             f"yet (they stand at {format_rfc3339(least)}): the exporter did not write it, a loader "
                             "would take a window for complete that is not; move it away")
            if manifest.window.start != parsed[1] or manifest.key != self.dest.key or (
                    manifest.destination, manifest.backfill) != (self.sequence.destination, self.sequence.backfill):
                self.problem("manifest", name, f"its content is of {manifest.key} {manifest.window.label()} "
                             f"({manifest.destination}/{manifest.backfill}), not what its name says")
            self._link(name, manifest, previous)
            self._take(name, manifest, previous[2] if previous else None)
            previous = (name, data, manifest)
        if newest and (parsed := parse_name(newest[len(self.prefix) + len(MANIFESTS_FOLDER) + 1:])) \
                and self.in_range(parsed[1]):
            self.problem("chain", newest, f"the manifest cursor (STATE_TABLE {self.state.table_name}) names it as "
                         "the newest manifest, but it is not there: it was removed (the exporter does not write "
                         "it again; restore it)")
        if previous is None:
            return
        end = previous[2].window.end
        if end < least and self.until is None:
            self.problem("chain", f"{format_rfc3339(end)}..{format_rfc3339(least)}",
                         "windows every type committed have no manifest yet (the next completed window writes "
                         "them; if this persists, look for manifest errors in the run logs)")

    def _link(self, name: str, manifest: Manifest, previous: tuple[str, bytes, Manifest] | None) -> None:
        if previous is None:
            if manifest.previous_name is not None and not manifest.previous_name.startswith(self.prefix):
                # The export moved here (BLOB_PATH or container): the positions before are elsewhere.
                self.floor = {t: o.last_position - len(o.files) for t, o in manifest.types.items()}
                return
            if manifest.previous_name is None:
                return
            data = self._download(manifest.previous_name)
            if data is None:
                self.problem("chain", name, f"names the previous manifest {manifest.previous_name}, which is "
                             "not there (removed)")
            elif sha256_hex(data) != manifest.previous_sha256:
                self.problem("chain", name, f"the previous manifest {manifest.previous_name} was changed (its "
                             f"SHA-256 is not {manifest.previous_sha256})")
            return
        prev_name, prev_data, prev = previous
        if manifest.window.start != prev.window.end:
            self.problem("chain", f"{format_rfc3339(prev.window.end)}..{format_rfc3339(manifest.window.start)}",
                         f"no manifest between {prev_name} and {name} (removed, or never written)")
        if manifest.previous_name != prev_name:
            self.problem("chain", name, f"names the previous manifest {manifest.previous_name}, not {prev_name}")
        elif manifest.previous_sha256 != sha256_hex(prev_data):
            self.problem("chain", name, f"the previous manifest {prev_name} was changed (its SHA-256 is not "
                         f"{manifest.previous_sha256})")

    def _take(self, name: str, manifest: Manifest, prev: Manifest | None) -> None:
        window = manifest.window
        self.chain = Window(self.chain.start if self.chain else window.start, window.end)
        for t, outcome in manifest.types.items():
            first = prev.types[t].last_position + 1 if prev and t in prev.types else (
                outcome.files[0].position if outcome.files else outcome.last_position + 1)
            for i, f in enumerate(outcome.files):
                if f.position != first + i:
                    self.problem("manifest", name, f"{t} lists position {f.position} where {first + i} follows")
                    break
            if outcome.last_position != (outcome.files[-1].position if outcome.files else first - 1):
                self.problem("manifest", name, f"{t} last_position {outcome.last_position} does not follow its "
                             "files")
            lo, _ = self.covered.get(t, (first, first - 1))
            self.covered[t] = (lo, outcome.last_position)
            for f in outcome.files:
                self.listed[t] = (self.listed[t] + _digest(f.name, f.bytes, f.rows, f.sha256,
                                                           format_rfc3339(window.start))) % _MOD
            if outcome.rejected is not None:
                r = outcome.rejected
                self.listed["rejected:" + t] = (self.listed["rejected:" + t] + _digest(
                    r.name, r.bytes, r.rows, r.sha256, format_rfc3339(window.start))) % _MOD

    def _backfill_folders(self) -> None:
        """Each folder of ``_backfill/`` is where a recorded backfill or replay of this destination
        was written (audited with ``--backfill ID``), or foreign: one problem per folder, not per
        blob. A recorded id whose recipe puts its files elsewhere (the export moved since) does not
        make a folder of that name here its own: ``--backfill ID`` audits the recorded folder."""
        recorded = recorded_backfills(self.state, self.sequence.destination)
        for folder, count in sorted(self.backfill_blobs.items()):
            here = f"{self.prefix}{BACKFILL_FOLDER}/{folder}"
            written = _written_folder(recorded[folder], Sequence(self.sequence.destination, folder).folder(
                self.folder)) if folder in recorded else None
            if written == here:
                self.result.backfills.append(folder)
                continue
            whose = (f"backfill or replay {folder} of destination {self.sequence.destination} was recorded with "
                     f"the folder {written or '(unreadable)'}, not this one" if folder in recorded else
                     f"no backfill or replay of destination {self.sequence.destination} recorded")
            self.problem("foreign", f"{here}/", f"{count} blob(s) of {whose} in STATE_TABLE "
                         f"{self.state.table_name}: move them away")

    # -- files ------------------------------------------------------------------------------------
    def _files(self, rows: dict[str, TypeState]) -> None:
        bits = {t: _Bits() for t in CALL_TYPES}
        last_key: tuple[str, int] | None = None
        skip = f"{self.prefix}{BACKFILL_FOLDER}/" if self.sequence.live else None
        for blob in self._list(self.prefix):
            name = blob.name
            if skip and name.startswith(skip):
                folder, slash, _ = name[len(skip):].partition("/")
                if slash:
                    self.backfill_blobs[folder] += 1
                else:  # in no backfill's folder (``_backfill/b1`` is not ``_backfill/b1/``): no audit sees it
                    self.problem("foreign", name, f"a blob directly in {BACKFILL_FOLDER}/, in no backfill's "
                                 "folder: move it away")
                continue
            leaf = name[len(self.prefix):]
            if leaf.startswith(f"{MANIFESTS_FOLDER}/"):
                continue
            md, size = blob.metadata, blob.size
            if m := self._rejected_re.match(leaf):
                self._rejected_file(name, m.group(1), m.group(2), md, size)
                continue
            m = self._data_re.match(leaf)
            if not m or m.group(2) not in CALL_TYPES:
                self.problem("foreign", name, "not a file of this export: move it away")
                continue
            position, t = int(m.group(1)), m.group(2)
            self.result.data_files += 1
            if t not in rows:
                self.problem("foreign", name, f"a {t} file, but this sequence exports no {t}: move it away")
                continue
            if (t, position) == last_key or not bits[t].add(position):
                self.problem("duplicate", name, f"a second file at {t} position {position}")
                continue
            last_key = (t, position)
            window = self._own_metadata(name, md, "data", t, position)
            row = rows.get(t)
            if row is not None and position > row.position:
                if not (row.pending_start is not None and window is not None and window.start == row.pending_start):
                    self.problem("foreign", name, f"past {t}'s committed position {row.position} and no pending "
                                 "window is writing it: move it away")
                continue
            if window is None:
                continue
            lo, hi = self.covered.get(t, (1, 0))
            if self.chain and lo <= position <= hi:
                self.found[t] = (self.found[t] + _digest(name, size, md.get("rows"), md.get("sha256"),
                                                         md.get("window_start"))) % _MOD
            if self.deep and self.in_range(window.start):
                self._deep(name, md)
        for t in CALL_TYPES:
            row = rows.get(t)
            for position in bits[t].missing(row.position if row else 0):
                if position <= self.floor.get(t, 0):
                    continue
                self.problem("gap", f"{self.prefix}{self.dest.key}.{position}.{t}.*",
                             f"{t} position {position} is committed but no file holds it (deleted?)"
                             + (" - gaps are checked over the whole sequence, whatever --since/--until: a "
                                "deleted file's window is not known" if self.since or self.until else ""))

    def _own_metadata(self, name: str, md: dict[str, str], kind: str, t: str, position: int) -> Window | None:
        """The window a file's metadata records, checked against its name; None (and a problem) if not."""
        try:
            start, end = parse_rfc3339(md["window_start"]), parse_rfc3339(md["window_end"])
            ok = end - start == WINDOW and start.timestamp() % 600 == 0
        except (KeyError, ValueError):
            ok = False
        if not ok or md.get("kind", "data") != kind or md.get("call_type") != t or md.get("position") != str(position) \
                or not _SHA.match(md.get("sha256", "")) or not md.get("rows", "").isdigit():
            shown = {k: md.get(k) for k in ("kind", "call_type", "position", "window_start", "window_end", "rows",
                                            "sha256")}
            self.problem("metadata", name, f"its metadata does not match its name ({shown}): it was edited or "
                         "replaced; restore it or move it away")
            return None
        return Window(start, end)

    def _rejected_file(self, name: str, stamp: str, t: str, md: dict[str, str], size: int) -> None:
        self.result.rejected_files += 1
        start = datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        window = self._own_metadata(name, md, "rejected", t, 0)
        if window is None:
            return
        if window.start != start:
            self.problem("metadata", name, f"its metadata says window {window.label()}, its name {stamp}")
            return
        if self.chain and self.chain.start <= start < self.chain.end and self.in_range(start):
            self.found["rejected:" + t] = (self.found["rejected:" + t] + _digest(
                name, size, md.get("rows"), md.get("sha256"), md.get("window_start"))) % _MOD
        if self.deep and self.in_range(start):
            self._deep(name, md)

    def _deep(self, name: str, md: dict[str, str]) -> None:
        chunks = self.blobs.chunks(name)
        if chunks is None:
            return  # gone since the listing
        try:
            got = read_back(name, chunks)
        except (OSError, EOFError, UnicodeDecodeError, ValueError) as exc:
            self.problem("content", name, f"cannot be read back ({type(exc).__name__}): it was replaced or damaged")
            return
        if got.sha256 != md.get("sha256"):
            self.problem("content", name, f"its bytes hash to {got.sha256}, not the recorded {md.get('sha256')}: it "
                         "was overwritten")
        elif str(got.rows) != md.get("rows"):
            self.problem("content", name, f"holds {got.rows} row(s), its metadata says {md.get('rows')}")

    # -- files against manifests ------------------------------------------------------------------
    def _compare(self) -> None:
        """Digests differ: look at the mismatched kinds' files one by one to name them."""
        bad = {k for k in set(self.listed) | set(self.found) if self.listed[k] != self.found[k]}
        if not bad:
            return
        named = 0
        for listed_in, manifest in self._walk():
            for t, outcome in manifest.types.items():
                files = [f for f in outcome.files if t in bad]
                if outcome.rejected is not None and "rejected:" + t in bad:
                    files.append(outcome.rejected)
                for f in files:
                    named += self._agrees(listed_in, manifest.window, f)
        if not named:  # every listed file agrees: a file of a manifested window is in none
            self._unlisted(bad)

    def _walk(self) -> Iterator[tuple[str, Manifest]]:
        for blob in self._list(f"{self.prefix}{MANIFESTS_FOLDER}/"):
            parsed = parse_name(blob.name[len(self.prefix) + len(MANIFESTS_FOLDER) + 1:])
            if parsed is None or parsed[0] != self.dest.key or not self.in_range(parsed[1]):
                continue
            data = self._download(blob.name)
            try:
                yield blob.name, parse(data or b"")
            except ManifestError:
                continue

    def _agrees(self, listed_in: str, window: Window, f: ListedFile) -> int:
        name = f.name
        blob = self.blobs.properties(name)
        if blob is None:
            self.problem("missing", name, f"listed in {listed_in} but not there (deleted)")
            return 1
        md = blob.metadata
        want = (f.bytes, str(f.rows), f.sha256, format_rfc3339(window.start))
        got = (blob.size, md.get("rows"), md.get("sha256"), md.get("window_start"))
        if want != got:
            self.problem("metadata", name, f"{listed_in} lists it with bytes, rows, sha256, window {want}, "
                         f"the blob has {got}: it was replaced or its metadata edited")
            return 1
        return 0

    def _unlisted(self, bad: set[str]) -> None:
        manifests: dict[datetime, Manifest | None] = {}
        for blob in self._list(self.prefix):
            name, md = blob.name, blob.metadata
            t = md.get("call_type", "")
            if (("rejected:" + t) if md.get("kind") == "rejected" else t) not in bad:
                continue
            try:
                start = parse_rfc3339(md["window_start"])
            except (KeyError, ValueError):
                continue
            if not (self.chain and self.chain.start <= start < self.chain.end):
                continue
            if start not in manifests:
                manifests.clear()
                data = self._download(manifest_name(self.folder, self.dest.key, start))
                try:
                    manifests[start] = parse(data or b"")
                except ManifestError:
                    manifests[start] = None
            manifest = manifests[start]
            if manifest is None:
                continue  # its manifest is missing or unreadable: reported as such
            names = {
                f.name for o in manifest.types.values() for f in [*o.files, *([o.rejected] if o.rejected else [])]}
            if name not in names:
                self.problem("foreign", name, f"a file of the manifested window {format_rfc3339(start)} that its "
                             "manifest does not list: move it away")

    # -- against the ETL API ----------------------------------------------------------------------
    def _against_etl(self) -> None:
        assert self.etl is not None
        for _, manifest in self._walk():
            window = manifest.window
            self.result.windows_checked_with_etl += 1
            for t, outcome in manifest.types.items():
                try:
                    remote = self._remote_ids(t, window)
                except ExportError as exc:
                    self.problem("drift", f"{t} {window.label()}", f"the ETL API could not be read again: {exc}")
                    continue
                held: Counter[str] = Counter()
                for f in [*outcome.files, *([outcome.rejected] if outcome.rejected else [])]:
                    chunks = self.blobs.chunks(f.name)
                    if chunks is None:
                        break  # a file is missing (reported as such): its calls are not drift
                    held.update(read_back(f.name, chunks, ids=True).ids)
                else:
                    self._drift(t, window, remote, held)

    def _remote_ids(self, t: str, window: Window) -> set[str]:
        assert self.etl is not None
        ids: set[str] = set()
        for page in self.etl.pages(t, window.start, window.end, line_cap=line_cap_for(self.max_call_bytes)):
            for line in page.lines:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("messageId"), str):
                    ids.add(doc["messageId"])
        return ids

    def _drift(self, t: str, window: Window, remote: set[str], held: Counter[str]) -> None:
        where = f"{t} {window.label()}"
        twice = sorted(i for i, n in held.items() if n > 1)
        if twice:
            self.problem("duplicate", where, f"{len(twice)} call(s) in more than one file: {_ids(twice)}")
        added = sorted(remote - held.keys())
        if added:
            self.problem("drift", where, f"{len(added)} call(s) the ETL API now returns for the exported window are "
                         f"in no file (added after the export): {_ids(added)}")
        dropped = sorted(held.keys() - remote)
        if dropped:
            self.problem("drift", where, f"{len(dropped)} call(s) in the files the ETL API no longer returns "
                         f"(dropped after the export): {_ids(dropped)}")


def recorded_backfills(state: StateStore, destination: str) -> dict[str, str]:
    """The backfills and replays recorded for ``destination``: id -> its recorded recipe (text).
    Read by the row's key (``NAME~ID``), as the backfill commands read them, not by fields a hand
    edit may change; not parsed strictly (``verify --backfill ID`` reads the recipe it audits)."""
    out = {}
    for e in state.rows(BACKFILLS_PARTITION):
        if backfill := backfill_of_row(destination, str(e.get("RowKey", ""))):
            out[backfill] = str(e.get("recipe") or "")
    return out


def _written_folder(recipe: str, current: str) -> str | None:
    """The folder a recorded recipe wrote to (``current``, the folder the settings give it now,
    for a recipe of a version that recorded no place); None when it cannot be read."""
    try:
        return recorded_folder(recipe, "", current)[1].strip("/")
    except UnreadableRecipe:
        return None


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (f" and {len(ids) - MAX_IDS_SHOWN} more" if len(ids) > MAX_IDS_SHOWN else "")


def verify(blobs: BlobStore, state: StateStore, dest: Destination, sequence: Sequence, folder: str,
           report: Callable[[Problem], None], **options: object) -> VerifyResult:
    """Audit ``sequence`` in ``folder`` (``sequence.folder(BLOB_PATH)``); ``report`` gets each problem."""
    return Verifier(blobs, state, dest, sequence, folder, report=report, **options).run()  # type: ignore[arg-type]
