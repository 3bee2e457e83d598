"""Named points where a test can make the process die, to prove crash recovery for real.

Set ``EXPORTER_CRASH_AT=<point>`` (optionally ``<point>:<n>`` to die at its n-th pass) and the
process exits at once with status 137, as if killed: no cleanup, no finally blocks, no flush.
Unset (always, in production) it costs one dict lookup per point.
"""

from __future__ import annotations

import os
import sys

POINTS = (
    "after_claim",  # the pending claim is in the table, nothing uploaded
    "after_stage",  # some blocks of a file are staged, not committed
    "after_file_commit",  # a data file is committed, the window's state not yet
    "before_state_commit",  # all files of the window committed
    "after_state_commit",  # the window is recorded as done
    "before_manifest_commit",  # every type committed the window, its manifest not yet written
    "after_manifest_commit",  # the manifest is written, the manifest cursor not yet moved
)

_counts: dict[str, int] = {}


def crashpoint(name: str) -> None:
    spec = os.environ.get("EXPORTER_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(137)
