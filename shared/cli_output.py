"""What the commands of :mod:`shared.cli` print in common: tables, a run's summary, durations."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from shared.summary import RunSummary
from shared.windows import format_rfc3339


def table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)


def print_summary(summary: RunSummary, out: TextIO) -> None:
    rows = [["window", "type", "rows", "blob", "bytes"]]
    for unit in summary.units:
        window = format_rfc3339(unit.window.start)
        for f in unit.files:
            note = "" if f.created else " (already there)"
            rows.append([window, unit.call_type, str(f.rows), f.name + note, str(f.bytes)])
        if unit.rejected_blob:
            rows.append([window, unit.call_type, f"{unit.rejected} rejected", unit.rejected_blob, ""])
        if unit.status not in ("exported",) and not unit.files:
            detail = {"empty": "no calls", "busy": "another run has it", "not_closed": "not closed yet",
                      "failed": f"failed: {unit.error}"}.get(unit.status, unit.status)
            rows.append([window, unit.call_type, "0", f"- ({detail})", ""])
    if len(rows) > 1:
        table(rows, out)
    windows = len({u.window for u in summary.units})
    print(f"{len(summary.files)} file(s), {summary.rows} call(s), {summary.rejected} rejected, "
          f"{windows} window(s)" + (" - stopped by the run budget" if summary.stopped_by_budget else ""),
          file=out)


def failures(summary: RunSummary) -> str:
    return "; ".join(f"{u.call_type} {format_rfc3339(u.window.start)}: {u.error}" for u in summary.failures)


def duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days:
        return f"{sign}{days}d{hours}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m"
