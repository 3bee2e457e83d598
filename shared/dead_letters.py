"""The dead-letter file of a (window, type): ``_rejected/``, one line per bad call, lossless.

Opened on the first bad call, so a clean window writes none; committed create-only after the last
data file, abandoned with the unit on any error (docs/file-format.md, "Dead letters").
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence

import orjson

from shared.abandoning import AbandonedOnError
from shared.blob_store import BlobStore, FileIdentity, StagedUpload
from shared.limits import RejectedCall
from shared.page_reader import OversizedLine
from shared.windows import Window

log = logging.getLogger(__name__)


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


class DeadLetters(AbandonedOnError):
    """The dead-letter file of one (window, type); a context manager that abandons its upload
    when an error leaves the block."""

    def __init__(
        self,
        blobs: BlobStore,
        dest_key: str,
        window: Window,
        call_type: str,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.blobs = blobs
        self.dest_key = dest_key
        self.window = window
        self.call_type = call_type
        self.guard = guard
        self.count = 0
        self.blob: str | None = None  # its name, once a bad call opened it
        self.found_in_place = False  # committed, and our identical file was there already
        self._upload: StagedUpload | None = None

    def add(self, rejected: Sequence[RejectedCall | OversizedLine]) -> None:
        """Stage the lines of a batch's bad calls."""
        if self._upload is None:
            name = self.blobs.rejected_file_name(self.dest_key, self.window.start, self.call_type)
            identity = FileIdentity(self.window.start, self.window.end, self.call_type, 0, kind="rejected")
            self._upload = self.blobs.open(name, identity, "application/x-ndjson", guard=self.guard)
            self.blob = name
        out = bytearray()
        for bad in rejected:
            out += dead_letter_line(bad) + b"\n"
        self._upload.write(bytes(out))
        self.count += len(rejected)
        log.warning("%s %s: %d call(s) rejected, first: %s", self.call_type, self.window.label(),
                    len(rejected), rejected[0].reason)

    def commit(self) -> None:
        """Commit the file create-only (nothing when no call was bad)."""
        if self._upload is not None:
            self.found_in_place = not self._upload.commit(self.count).created

    def abandon(self) -> None:
        if self._upload is not None:
            self._upload.abandon()
