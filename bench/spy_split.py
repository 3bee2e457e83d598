"""Where the exporter's time goes, from a ``bench/run.py --py-spy OUT`` profile (py-spy raw output).

    python bench/spy_split.py OUT [OUT ...]

Prints, per file, the samples of each thread (py-spy counts a thread that waits for the GIL as
busy where it waits; ``PY_SPY_ARGS=--idle`` adds the time threads sleep) and the main thread's
split into decode, column building, encode, upload and waiting. A sample goes to the category of
the innermost frame that names one (the rules below), else to ``other``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

#: (category, pattern on a frame's function name), tried from the innermost frame out.
_NAMES = {
    "wait": "Condition.wait Queue.get Queue.put Future.result Event.wait",
    "upload": "StagedUpload. BlobStore. BlobClient. ContainerClient.",
    "encode": "CsvWriter. JsonWriter. ParquetWriter. FormatWriter. CountingSink. record_batch _row_sizes",
    "decode": "_whole _each LineBlock. CallParser._own_fields CallParser._fast_document CallParser._fast_row "
              "CallParser._extras_route validate_call parse_call",
    "columns": "ColumnarParser. CallParser. _string_cells _raw_column _text_column _slug_column _constant_column "
               "_merge window_rejections inside_by_column received_reason json_document cells_of _event_pair "
               "raw_cell slugify_event",
    "prefilter": "needs_reference_path _not_utf8",
}
RULES: list[tuple[str, re.Pattern[str]]] = [
    (category, re.compile("^(" + "|".join(map(re.escape, names.split())) + ")"))
    for category, names in _NAMES.items()
]
CATEGORIES = ["decode", "columns", "encode", "upload", "prefilter", "wait", "other"]


def _function(frame: str) -> str:
    return frame.split(" (", 1)[0]


def split(path: Path) -> tuple[Counter[str], Counter[str]]:
    """(samples per thread name, main thread samples per category)."""
    threads: Counter[str] = Counter()
    main: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1].strip() or "?"  # "thread (0x7f...): MainThread"
        name = re.sub(r"_\d+$", "", name)  # one entry for a pool's threads
        threads[name] += int(count)
        if name != "MainThread":
            continue
        category = "other"
        for frame in reversed(frames[1:]):
            function = _function(frame)
            hit = next((c for c, rule in RULES if rule.search(function)), None)
            if hit is not None:
                category = hit
                break
        main[category] += int(count)
    return threads, main


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    for arg in argv:
        threads, main_split = split(Path(arg))
        total = sum(threads.values()) or 1
        print(f"{arg}: {total} samples")
        print("  threads: " + ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common()))
        busy = sum(main_split.values()) or 1
        print("  main thread: " + ", ".join(f"{c} {main_split[c] / busy:.0%}" for c in CATEGORIES if main_split[c]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
