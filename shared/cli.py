"""Command line for operators and local runs.

    python -m shared.cli run [--now RFC3339]   one timer tick at that instant; prints what it wrote
    python -m shared.cli plan [--now RFC3339]  what the timer does in queue mode: enqueue due work items
    python -m shared.cli work [--processes K] [--idle-exit S]  K local workers drain the work queue
    python -m shared.cli status                per type: last position, last window, lag, SAS expiry, queue
    python -m shared.cli check                 one line per check with pass/fail and the fix

Settings come from the environment, over the ``Values`` of ./local.settings.json when present (as
``func`` does); ``--settings PATH`` reads another file (which must exist), ``--no-settings`` none.
Exit status: 0 success, 1 the run or a check failed, 2 bad settings or usage.

Everything the commands print goes through a redacting writer (:class:`shared.redact.RedactingWriter`
on stdout and stderr, log lines included), so no token or SAS signature is ever shown.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from shared.blob_store import sas_expiry
from shared.calltypes import CALL_TYPES
from shared.checks import run_checks, sas_expiry_warning, settings_failure
from shared.clients import build_clients, close_clients
from shared.errors import ExportError, SettingsError
from shared.etl_client import Destination
from shared.export import run_export
from shared.redact import RedactingWriter, install_log_redaction
from shared.sequence import DEFAULT_DESTINATION
from shared.settings import Settings, load_local_settings
from shared.summary import RunSummary
from shared.telemetry import configure_azure_monitor, quiet_sdk_loggers
from shared.windows import format_rfc3339, parse_rfc3339
from shared.work_cli import cmd_plan, cmd_work, print_queue

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shared.cli", description=__doc__.split("\n\n")[0])
    files = p.add_mutually_exclusive_group()
    files.add_argument("--settings", type=Path, default=None,
                       help=f"a local.settings.json whose Values are read under the environment "
                            f"(default: ./{DEFAULT_SETTINGS}, when present)")
    files.add_argument("--no-settings", action="store_true",
                       help="read no settings file: the environment only")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="do what one timer tick does")
    run.add_argument("--now", help="the tick's instant, RFC 3339 (default: now)")
    plan = sub.add_parser("plan", help="enqueue one work item per due (destination, type) without one")
    plan.add_argument("--now", help="the plan's instant, RFC 3339 (default: now)")
    work = sub.add_parser("work", help="run local worker processes on the work queue until it is empty")
    work.add_argument("--processes", type=_positive, default=1, help="worker processes (default: 1)")
    work.add_argument("--idle-exit", type=float, default=10.0, metavar="SECONDS",
                      help="exit once the queue was empty this long (default: 10)")
    sub.add_parser("status", help="where each type's export stands")
    sub.add_parser("check", help="check settings, ETL API, SAS and state table")
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 64")
    return int(text)


DEFAULT_SETTINGS = Path("local.settings.json")
NO_DEFAULT_HINT = "(no local.settings.json here: copy local.settings.sample.json and fill it in)"


def missing_settings_file(path: Path) -> str:
    return (f"--settings {path}: no such file (leave --settings out to read ./{DEFAULT_SETTINGS}, "
            "or --no-settings for the environment only)")


def load_settings(path: Path | None, *, read_file: bool = True) -> Settings:
    """The settings: the environment over ``path`` (which must exist), or over ./local.settings.json
    when it exists (``path`` None), or the environment alone (``read_file`` False)."""
    if not read_file:
        return Settings.from_env(dict(os.environ))
    if path is not None:
        if not path.is_file():
            raise SettingsError(missing_settings_file(path))
        return Settings.from_env(load_local_settings(path, os.environ))
    try:
        return Settings.from_env(load_local_settings(DEFAULT_SETTINGS, os.environ))
    except SettingsError as exc:
        if DEFAULT_SETTINGS.is_file():
            raise
        raise SettingsError(f"{exc} {NO_DEFAULT_HINT}") from None


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = RedactingWriter(out or sys.stdout)
    err = RedactingWriter(sys.stderr)
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=err,
    )
    install_log_redaction()
    quiet_sdk_loggers(logging.DEBUG if args.verbose else logging.WARNING)
    if args.settings is not None and not args.settings.is_file():  # a wrong command line, even for check
        print(f"error: {missing_settings_file(args.settings)}", file=err)
        return EXIT_USAGE
    try:
        settings = load_settings(args.settings, read_file=not args.no_settings)
    except SettingsError as exc:
        if args.command == "check":  # check reports it as its first (failed) check
            settings_failure(str(exc), out)
            return EXIT_FAILED
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    if args.command == "check":
        return EXIT_OK if run_checks(settings, out) else EXIT_FAILED
    configure_azure_monitor(settings.appinsights_connection_string)
    try:
        now = parse_rfc3339(args.now) if getattr(args, "now", None) else datetime.now(UTC)
    except ValueError:
        print(f"error: --now {args.now!r} is not an RFC 3339 time", file=err)
        return EXIT_USAGE
    if args.command in ("plan", "work"):
        try:
            if args.command == "plan":
                return cmd_plan(settings, now, out, err)
            return cmd_work(settings, args.processes, args.idle_exit, out, err, args.verbose)
        except ExportError as exc:
            print(f"error: {exc}", file=err)
            return EXIT_FAILED
    try:
        clients = build_clients(settings)
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    try:
        if args.command == "run":
            summary = run_export(settings, clients, now)
            print_summary(summary, out)
            if not summary.ok:
                print(f"error: {summary.error or _failures(summary)}", file=err)
                return EXIT_FAILED
            return EXIT_OK
        return print_status(settings, clients, now, out)
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    finally:
        close_clients(clients)


def _failures(summary: RunSummary) -> str:
    return "; ".join(f"{u.call_type} {format_rfc3339(u.window.start)}: {u.error}" for u in summary.failures)


def _table(rows: list[list[str]], out: TextIO) -> None:
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
        _table(rows, out)
    windows = len({u.window for u in summary.units})
    print(f"{len(summary.files)} file(s), {summary.rows} call(s), {summary.rejected} rejected, "
          f"{windows} window(s)" + (" - stopped by the run budget" if summary.stopped_by_budget else ""),
          file=out)


def print_status(settings: Settings, clients, now: datetime, out: TextIO) -> int:  # type: ignore[no-untyped-def]
    dest = pinned_destination(clients.state, clients.etl.destination(), out)
    rows = [["type", "last position", "last window exported", "lag", "pending"]]
    ahead: list[str] = []
    for call_type in CALL_TYPES:
        state = clients.state.get(dest.key, call_type)
        if state is None:
            rows.append([call_type, "-", "- (not started)", "-", ""])
            continue
        lag = now - state.window_end
        if lag < timedelta(0):
            ahead.append(call_type)
        last_window = f"{format_rfc3339(state.window_end - timedelta(minutes=10))}/{format_rfc3339(state.window_end)}" \
            if state.position or state.last_run else f"- (starts {format_rfc3339(state.window_end)})"
        pending = (f"window {format_rfc3339(state.pending_start)} from position {state.pending_position}"
                   if state.pending_start else "")
        rows.append([call_type, str(state.position), last_window, _duration(lag), pending])
    print(f"destination {dest.key} -> {settings.destination_label}", file=out)
    _table(rows, out)
    if ahead:
        print(f"WARNING: {', '.join(ahead)} stand(s) past this clock ({format_rfc3339(now)}, negative lag): "
              "no window of theirs is due until then; if the clock is right, a run with a clock ahead "
              "moved them, and the windows in between are not exported (docs/operations.md, "
              "'A negative lag')", file=out)
    expiry = sas_expiry(settings.blob_sas_url) if settings.blob_sas_url else None
    if expiry:
        warning = sas_expiry_warning(settings.blob_sas_url, now)
        print(f"SAS expires {format_rfc3339(expiry)}, in {_duration(expiry - now)}"
              + (f" - WARNING: {warning}" if warning else ""), file=out)
    elif settings.blob_sas_url:
        print("SAS has no expiry in the URL (a stored access policy sets it)", file=out)
    if settings.export_mode == "queue":  # inline: no queue, status as before
        print_queue(settings, out)
    return EXIT_OK


def pinned_destination(store, remote: Destination, out: TextIO) -> Destination:  # type: ignore[no-untyped-def]
    """The destination whose rows ``status`` shows: the pinned one, with a line when the ETL API differs."""
    pin = store.get_pin(DEFAULT_DESTINATION)
    if pin is None:
        return remote
    if pin.key != remote.key:
        print(f"WARNING: GET /v1/destination returns {remote.key} but the state is pinned to {pin.key}: "
              "runs stop until this is resolved (docs/operations.md)", file=out)
    return Destination(pin.integration_id, pin.action_id)


def _duration(delta: timedelta) -> str:
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


if __name__ == "__main__":
    # Everything this process prints goes through the redaction, a traceback included.
    sys.stdout = RedactingWriter(sys.stdout)
    sys.stderr = RedactingWriter(sys.stderr)
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.exit(code)
