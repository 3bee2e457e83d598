"""Command line for operators and local runs.

    python -m shared.cli run [--now RFC3339]   one timer tick at that instant, every enabled destination
                                               (default first); prints what it wrote
    python -m shared.cli status [NAME]         per destination and type: last position, last window, lag,
                                               pending claim, SAS expiry
    python -m shared.cli check [NAME]          per destination, one line per check with pass/fail and the fix
    python -m shared.cli destinations add NAME SETTING=VALUE ...   add or replace a named destination
    python -m shared.cli destinations list|enable NAME|disable NAME|remove NAME
    python -m shared.cli verify [--deep] [--against-etl] [--since T] [--until T] [--backfill ID] [--destination NAME]
                                               audit the files, manifests and positions of one sequence
    python -m shared.cli backfill --start T1 --end T2 [--types t,...] [--id ID] [--queue] [--destination NAME]
                                               export a closed range again as its own sequence
                                               (--queue: record it and enqueue its chains for the workers)
    python -m shared.cli rejected list [--since T] [--destination NAME]   the quarantined calls by reason, type, window
    python -m shared.cli rejected replay [--since T] [--queue] [--destination NAME] [--of ID]   export the ones
                                               that pass today, as a replay (--of: what failed again in ID)
    python -m shared.cli plan [--now RFC3339]  what the timer does in queue mode: enqueue due work items
    python -m shared.cli work [--processes K] [--idle-exit S]  K local workers drain the work queue

Settings come from the environment, over the ``Values`` of ./local.settings.json when present (as
``func`` does); ``--settings PATH`` reads another file (which must exist), ``--no-settings`` none.
Exit status: 0 success, 1 the run (of any destination) or a check failed (or verify found a problem),
2 bad settings or usage.
Destinations: shared/destinations.py; secret references in them: shared/secret_refs.py.

Everything the commands print goes through a redacting writer (:class:`shared.redact.RedactingWriter`
on stdout and stderr, log lines included), so no token or SAS signature is ever shown.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, cast

from shared.backfill import UsageError
from shared.backfill_cli import (
    backfill_commands,
    destination_flag,
    destination_settings,
    print_backfills,
    status_for,
)
from shared.backfill_run import backfill_settings, recorded
from shared.blob_store import sas_expiry
from shared.calltypes import CALL_TYPES
from shared.checks import Check, run_checks, sas_expiry_warning, settings_failure
from shared.cli_output import duration, print_summary, table
from shared.clients import build_clients, close_clients
from shared.destination_runs import DestinationRun, destinations_to_run, run_destinations
from shared.destinations import (
    DestinationStore,
    NamedDestination,
    add_destination,
    get_destination,
    load_destinations,
    open_store,
    remove_destination,
    set_enabled,
)
from shared.errors import ExportError, SettingsError, StateConflictError
from shared.etl_client import Destination
from shared.places import overlaps
from shared.recipe import Recipe, UnreadableRecipe
from shared.redact import RedactingWriter, install_log_redaction, redact_text, redact_url
from shared.secret_refs import is_secret, parse_ref
from shared.sequence import DEFAULT_DESTINATION, LIVE_DEFAULT
from shared.sequence import Sequence as ExportSequence
from shared.settings import Settings, load_local_settings
from shared.telemetry import configure_azure_monitor, quiet_sdk_loggers
from shared.verify import recorded_backfills, verify
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
    run = sub.add_parser("run", help="do what one timer tick does, for every enabled destination")
    run.add_argument("--now", help="the tick's instant, RFC 3339 (default: now)")
    status = sub.add_parser("status", help="where each destination's and type's export stands")
    status.add_argument("name", nargs="?", help="one destination (default: every one)")
    check = sub.add_parser("check", help="check settings, ETL API, SAS and state table of each destination")
    check.add_argument("name", nargs="?", help="one destination (default: every one)")
    dest = sub.add_parser("destinations", help="named destinations (DESTINATIONS_TABLE)")
    ops = dest.add_subparsers(dest="op", required=True)
    add = ops.add_parser("add", help="add NAME, or replace its settings (never its state)")
    add.add_argument("name")
    add.add_argument("assignments", nargs="*", metavar="SETTING=VALUE",
                     help="per-destination settings; secrets as @env:APP_SETTING or @kv:SECRET_NAME")
    ops.add_parser("list", help="every destination and its settings (secrets as their references)")
    for op, what in (("enable", "schedule NAME again"), ("disable", "stop scheduling NAME (state and files stay)"),
                     ("remove", "delete NAME's row (state and files stay)")):
        ops.add_parser(op, help=what).add_argument("name")
    audit = sub.add_parser("verify", help="audit one sequence: positions, metadata, manifests, foreign blobs")
    audit.add_argument("--deep", action="store_true", help="re-read every file: SHA-256 and row count")
    audit.add_argument("--against-etl", action="store_true",
                       help="read each manifested window again from the ETL API and compare the messageIds")
    audit.add_argument("--since", help="only windows starting at or after this RFC 3339 time")
    audit.add_argument("--until", help="only windows starting before this RFC 3339 time")
    audit.add_argument("--backfill", metavar="ID", help="audit the backfill ID (its folder _backfill/ID/)")
    audit.add_argument("--destination", metavar="NAME", default=DEFAULT_DESTINATION,
                       help="the destination (default: default, the app settings')")
    fill = sub.add_parser("backfill", help="export a closed range again into _backfill/ID/ (resumable)")
    fill.add_argument("--start", required=True, help="first window's start, RFC 3339 on a 10-minute boundary")
    fill.add_argument("--end", required=True, help="last window's end (closed: end + SETTLE_SECONDS <= now)")
    fill.add_argument("--types", help="comma-separated call types (default: all)")
    fill.add_argument("--id", help="the backfill's id (default: derived from the range and the types)")
    fill.add_argument("--now", help="the clock, RFC 3339 (default: now)")
    fill.add_argument("--destination", metavar="NAME", default=DEFAULT_DESTINATION,
                      help="the destination (default: default, the app settings')")
    fill.add_argument("--queue", action="store_true",
                      help="record it and enqueue its chains on EXPORT_QUEUE (the workers run it) instead of "
                           "running it here")
    rejected = sub.add_parser("rejected", help="the dead letters of _rejected/: list or replay them")
    verbs = rejected.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="quarantined calls by reason, type and window")
    listing.add_argument("--since", help="windows starting at or after this time, RFC 3339")
    listing.add_argument("--destination", metavar="NAME", default=DEFAULT_DESTINATION,
                         help="the destination (default: default, the app settings')")
    listing.add_argument("--of", metavar="ID", help="the dead letters of backfill or replay ID (what failed again "
                         "there) instead of the live export's")
    replay = verbs.add_parser("replay", help="re-validate them now; export those that pass as a replay")
    replay.add_argument("--since", help="windows starting at or after this time, RFC 3339")
    replay.add_argument("--until", help="windows starting before this time, RFC 3339")
    replay.add_argument("--types", help="comma-separated call types (default: all)")
    replay.add_argument("--id", help="the replay's id (default: derived from --since, --until and --types)")
    replay.add_argument("--now", help="the clock, RFC 3339 (default: now)")
    replay.add_argument("--destination", metavar="NAME", default=DEFAULT_DESTINATION,
                        help="the destination (default: default, the app settings')")
    replay.add_argument("--of", metavar="ID", help="replay the dead letters of the finished backfill or replay ID "
                        "(what failed again there) instead of the live export's")
    replay.add_argument("--queue", action="store_true",
                        help="record it and enqueue its chains on EXPORT_QUEUE instead of running it here")
    plan = sub.add_parser("plan", help="enqueue one work item per due (destination, type) without one")
    plan.add_argument("--now", help="the plan's instant, RFC 3339 (default: now)")
    work = sub.add_parser("work", help="run local worker processes on the work queue until it is empty")
    work.add_argument("--processes", type=_positive, default=1, help="worker processes (default: 1)")
    work.add_argument("--idle-exit", type=float, default=10.0, metavar="SECONDS",
                      help="exit once the queue was empty this long (default: 10)")
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


def load_env(path: Path | None, *, read_file: bool = True) -> dict[str, str]:
    """The app settings: the environment over ``path`` (which must exist), or over
    ./local.settings.json when it exists (``path`` None), or the environment alone (``read_file``
    False). ``@env:`` references of destinations read them too."""
    if not read_file:
        return dict(os.environ)
    if path is not None:
        if not path.is_file():
            raise SettingsError(missing_settings_file(path))
        return load_local_settings(path, os.environ)
    return load_local_settings(DEFAULT_SETTINGS, os.environ)


def export_app_settings(env: dict[str, str]) -> None:
    """Make the settings file's Values environment variables of this process (and of the `work`
    processes it spawns), as `func` does for a local host: every `@env:` reference, in every
    command and worker, then reads the same app settings. The environment keeps precedence."""
    for name, value in env.items():
        os.environ.setdefault(name, value)


def load_settings(path: Path | None, *, read_file: bool = True) -> Settings:
    """The settings of :func:`load_env`'s app settings."""
    env = load_env(path, read_file=read_file)
    try:
        return Settings.from_env(env)
    except SettingsError as exc:
        if not read_file or path is not None or DEFAULT_SETTINGS.is_file():
            raise
        raise SettingsError(f"{exc} {NO_DEFAULT_HINT}") from None


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = cast(TextIO, RedactingWriter(out or sys.stdout))
    err = cast(TextIO, RedactingWriter(sys.stderr))
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
        env = load_env(args.settings, read_file=not args.no_settings)
        settings = load_settings(args.settings, read_file=not args.no_settings)
    except SettingsError as exc:
        if args.command == "check":  # check reports it as its first (failed) check
            settings_failure(str(exc), out)
            return EXIT_FAILED
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    export_app_settings(env)
    if args.command == "destinations":
        return destinations_command(args, settings, out, err)
    if args.command == "check":
        return check_command(settings, env, args.name, out, err)
    configure_azure_monitor(settings.appinsights_connection_string)
    try:
        now = parse_rfc3339(args.now) if getattr(args, "now", None) else datetime.now(UTC)
    except ValueError:
        print(f"error: --now {args.now!r} is not an RFC 3339 time", file=err)
        return EXIT_USAGE
    if args.command == "verify":
        return verify_command(settings, env, args, out, err)
    if args.command == "plan":
        return _guarded(lambda: cmd_plan(settings, now, out, err), err)
    if args.command == "work":
        return _guarded(lambda: cmd_work(settings, args.processes, args.idle_exit, out, err, args.verbose), err)
    if args.command in ("backfill", "rejected"):
        return _guarded(lambda: backfill_commands(args, settings, env, now, out, err), err)
    if args.command == "run":
        return run_command(settings, env, now, out, err)
    return status_command(settings, env, args.name, now, out, err)


def _guarded(command: Callable[[], int], err: TextIO,
             usage: tuple[type[Exception], ...] = (UsageError,)) -> int:
    """A command's exit status; an error it raises is one line: a wrong command line (``usage``:
    UsageError, and SettingsError where the command line carries settings) exits 2, a failed
    export or storage call (ExportError) 1."""
    try:
        return command()
    except usage as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED


def _selected(settings: Settings, env: dict[str, str], name: str | None, *, quick: bool = False,
              ) -> tuple[list[NamedDestination], str | None]:
    """The destinations ``status`` or ``check`` covers (``name`` alone, or every one, disabled
    ones too) and an error that kept any from being read (the destinations table unreachable);
    SettingsError when there is no destination ``name``. ``quick``: one retry for the table, as
    ``check`` does for every store."""
    table_kwargs = {"retry_total": 1} if quick else None
    if name is not None:
        try:
            return [get_destination(settings, name, env=env, table_kwargs=table_kwargs)], None
        except SettingsError:
            raise  # no destination of that name: a usage error (exit 2), as for verify --destination
        except ExportError as exc:
            return [], str(exc)
    try:
        return load_destinations(settings, include_disabled=True, env=env, table_kwargs=table_kwargs), None
    except ExportError as exc:
        return [NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings)], \
            f"destinations table {settings.destinations_table}: {exc}"


def _only_default(destinations: list[NamedDestination]) -> bool:
    return [d.name for d in destinations] == [DEFAULT_DESTINATION]


def run_command(settings: Settings, env: dict[str, str], now: datetime, out: TextIO, err: TextIO) -> int:
    """Every due unit of every enabled destination, inline, ``default`` first; exit 1 if any failed."""
    loaded = destinations_to_run(settings, env=env)
    alone = _only_default(loaded[0]) and loaded[1] is None  # today's output, unchanged

    def head(dest: NamedDestination) -> None:
        if not alone:
            print(f"== destination {dest.name}", file=out)

    def show(run: DestinationRun) -> None:
        if run.summary is not None:
            print_summary(run.summary, out)

    runs = run_destinations(settings, now, env=env, before=head, after=show, loaded=loaded)
    for run in runs:
        if not run.ok:
            # Alone, the default's error reads as it always did (without "destination default: ").
            line = run.failure()
            print(f"error: {line.removeprefix(f'destination {DEFAULT_DESTINATION}: ') if alone else line}", file=err)
    return EXIT_OK if all(r.ok for r in runs) else EXIT_FAILED


def status_command(settings: Settings, env: dict[str, str], name: str | None, now: datetime, out: TextIO,
                   err: TextIO) -> int:
    """Every destination (disabled ones too, marked) or ``name``: lag and pending claims per type.
    A disabled destination's problem is shown without failing the command, unless it was named."""
    try:
        destinations, table_error = _selected(settings, env, name)
    except SettingsError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    alone = _only_default(destinations) and table_error is None
    failed = [table_error] if table_error else []
    for i, dest in enumerate(destinations):
        if i:
            print("", file=out)

        def problem(message: str, dest: NamedDestination = dest) -> None:
            if dest.enabled or name is not None:
                failed.append(message)
            else:
                print(f"destination {dest.name} (disabled): {message.removeprefix(f'destination {dest.name}: ')}",
                      file=out)

        if dest.settings is None:
            if dest.enabled or name is not None:
                print(f"destination {dest.name}: not runnable", file=out)
            problem(dest.error or dest.name)
            continue
        try:
            clients = build_clients(dest.settings)
        except ExportError as exc:
            problem(str(exc) if alone else f"destination {dest.name}: {exc}")
            continue
        try:
            print_status(dest.settings, clients, now, out, dest=dest, show_name=not alone)
        except ExportError as exc:
            problem(str(exc) if alone else f"destination {dest.name}: {exc}")
        finally:
            close_clients(clients)
    queue_status(settings, out)
    for line in failed:
        print(f"error: {line}", file=err)
    return EXIT_FAILED if failed else EXIT_OK


def queue_status(settings: Settings, out: TextIO) -> None:
    """The work queue's depth, under the destinations' status (EXPORT_MODE=queue; inline runs
    have no queue)."""
    if settings.export_mode == "queue":
        print("", file=out)
        print_queue(settings, out)


def check_command(settings: Settings, env: dict[str, str], name: str | None, out: TextIO,
                  err: TextIO) -> int:
    """``check`` of every destination (disabled ones too, whose failures do not fail the command)
    or of ``name`` (none of that name: exit 2); a header per destination when there is more than
    ``default``."""
    try:
        destinations, table_error = _selected(settings, env, name, quick=True)
    except SettingsError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    alone = _only_default(destinations) and table_error is None and name is None
    ok = table_error is None
    everyone = destinations if name is None else _selected(settings, env, None, quick=True)[0]
    if table_error:
        print(Check("destinations", False, redact_text(table_error)).line(), file=out)
    for i, dest in enumerate(destinations):
        if not alone:
            if i:
                print("", file=out)
            print(f"== destination {dest.name}{'' if dest.enabled else ' (disabled)'}", file=out)
        counts = dest.enabled or name is not None  # a disabled one is shown, and fails only when named
        if dest.settings is None:
            settings_failure(dest.error or "not runnable", out)
            ok = ok and not counts
            continue
        lines = io.StringIO()
        passed = run_checks(dest.settings, lines)
        for check in _folder_checks(dest.name, everyone):
            passed = passed and check.ok
            print(check.line(), file=lines)
        for line in lines.getvalue().splitlines():
            print(line + _where_secrets_are(line, dest), file=out)
        ok = (passed or not counts) and ok
    return EXIT_OK if ok else EXIT_FAILED


def _folder_checks(name: str, everyone: Sequence[NamedDestination]) -> list[Check]:
    """``check``'s folder lines of destination ``name`` beside ``everyone`` (shared/places.py): one
    per other destination that writes into its folder, inside it or around it (a warning beside a
    disabled one: nothing writes there now), or one saying the folder is its own; and a warning per
    other enabled destination whose settings do not resolve now (its place is unknown, so it is
    named rather than taken for a place elsewhere)."""
    neighbours = [(d.name, d.settings) for d in everyone if d.settings is not None]
    enabled = {d.name for d in everyone if d.enabled}
    checks: list[Check] = []
    if name in {n for n, _ in neighbours}:
        found = overlaps(name, neighbours)
        checks += [Check("folder", other not in enabled, problem, warn=True) for other, problem in found]
        if not found and len(neighbours) > 1:
            checks.append(Check("folder", True, "its own: no other destination writes into it, inside it or around "
                                "it"))
    for other in sorted(d.name for d in everyone if d.settings is None and d.enabled):
        if other != name:
            checks.append(Check("folder", True, f"not compared with destination {other}: its settings do not resolve "
                                f"(`check {other}` says why); it may write into this folder once they do", warn=True))
    return checks


def _where_secrets_are(line: str, dest: NamedDestination) -> str:
    """For a failed or warned check of a named destination that names a secret setting: where
    that setting's value comes from (its reference), which is what to fix, not the row."""
    if not line.startswith(("FAIL", "WARN")):
        return ""
    refs = [f"{setting} is {_shown_value(setting, value)}" for setting, value in sorted(dest.values.items())
            if is_secret(setting) and setting in line]
    return f" (for {dest.name}: {'; '.join(refs)})" if refs else ""


def destinations_command(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    try:
        store = open_store(settings)
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    try:
        return _guarded(lambda: _destinations_op(args, settings, store, out), err, usage=(SettingsError,))
    finally:
        store.close()


def _destinations_op(args: argparse.Namespace, settings: Settings, store: DestinationStore, out: TextIO) -> int:
    if args.op == "add":
        new = add_destination(settings, args.name, args.assignments, store=store)
        print(f"destination {args.name} {'added' if new else 'replaced (its state stays)'}; "
              f"check it with: python -m shared.cli check {args.name}", file=out)
    elif args.op == "list":
        print_destinations(settings, store, out)
    elif args.op in ("enable", "disable"):
        set_enabled(args.name, args.op == "enable", store=store)
        print(f"destination {args.name} {args.op}d", file=out)
    else:
        remove_destination(args.name, store=store)
        print(f"destination {args.name} removed (its state and files stay; adding it again goes on "
              "from them)", file=out)
    return EXIT_OK


def print_destinations(settings: Settings, store: DestinationStore, out: TextIO) -> None:
    """One line per destination: name, enabled, settings as stored (secrets are references there)."""
    rows = [["name", "enabled", "settings"],
            [DEFAULT_DESTINATION, "yes", f"(the app settings) -> {settings.destination_label}"]]
    for row in store.rows():
        shown = " ".join(f"{k}={_shown_value(k, v)}" for k, v in sorted(row.values.items()))
        rows.append([row.name, "yes" if row.enabled else "no",
                     shown + (f" (unreadable: {row.error})" if row.error else "")])
    table(rows, out)


def _shown_value(setting: str, value: str) -> str:
    """A row's value as ``destinations list`` prints it: a secret setting only as a reference (a
    plain value put there by hand is hidden), a URL without its credentials."""
    if is_secret(setting):
        try:
            return str(parse_ref(setting, value))
        except SettingsError:
            return "(a plain value, hidden: store a reference with 'destinations add')"
    return redact_url(value) if setting.endswith(("_URL", "_ENDPOINT")) else value


def print_status(settings: Settings, clients, now: datetime, out: TextIO,  # type: ignore[no-untyped-def]
                 dest: NamedDestination | None = None, show_name: bool = False) -> int:
    """One destination's table, headed ``destination [NAME] ids -> place``: the name is shown for
    every destination but ``default``, and for ``default`` too when ``show_name`` (there are others)."""
    named = dest or NamedDestination(DEFAULT_DESTINATION, LIVE_DEFAULT, True, settings)
    unreachable: ExportError | None = None
    try:
        pinned, unreachable = pinned_destination(clients.state, clients.etl.destination(), out, name=named.name)
    except ExportError as exc:
        # The ETL API is what fails (a wrong token, an outage): the table still shows where the
        # destination stands, from the ids pinned at its first run; the error ends the command.
        pin = clients.state.get_pin(named.name)
        if pin is None:
            raise
        unreachable, pinned = exc, Destination(pin.integration_id, pin.action_id)
    key = named.sequence.state_key(pinned.integration_id, pinned.action_id)
    rows = [["type", "last position", "last window exported", "lag", "pending"]]
    ahead: list[str] = []
    for call_type in CALL_TYPES:
        state = clients.state.get(key, call_type)
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
        rows.append([call_type, str(state.position), last_window, duration(lag), pending])
    title = pinned.key if named.name == DEFAULT_DESTINATION and not show_name else f"{named.name} {pinned.key}"
    folder = f" (folder {settings.blob_path})" if settings.blob_path else ""
    print(f"destination {title}{'' if named.enabled else ' (disabled)'} -> {settings.destination_label}{folder}",
          file=out)
    table(rows, out)
    if ahead:
        print(f"WARNING: {', '.join(ahead)} stand(s) past this clock ({format_rfc3339(now)}, negative lag): "
              "no window of theirs is due until then; if the clock is right, a run with a clock ahead "
              "moved them, and the windows in between are not exported (docs/operations.md, "
              "'A negative lag')", file=out)
    expiry = sas_expiry(settings.blob_sas_url) if settings.blob_sas_url else None
    if expiry:
        warning = sas_expiry_warning(settings.blob_sas_url, now)
        print(f"SAS expires {format_rfc3339(expiry)}, in {duration(expiry - now)}"
              + (f" - WARNING: {warning}" if warning else ""), file=out)
    elif settings.blob_sas_url:
        print("SAS has no expiry in the URL (a stored access policy sets it)", file=out)
    print_backfills(clients, named.name, pinned.key, out)
    if isinstance(unreachable, StateConflictError):  # the ETL API names other ids: runs stop
        raise unreachable
    if unreachable is not None:
        print(f"WARNING: the rows above are of the pinned ids {pinned.key}: the ETL API was not reached "
              "(the error is below)", file=out)
        raise unreachable
    return EXIT_OK


def verify_options(args: argparse.Namespace) -> dict[str, Any]:
    """The verify command's options, or ValueError saying which one is wrong."""
    bounds: dict[str, datetime | None] = {}
    for flag in ("since", "until"):
        raw = getattr(args, flag)
        try:
            bounds[flag] = parse_rfc3339(raw) if raw else None
        except ValueError:
            raise ValueError(f"--{flag} {raw!r} is not an RFC 3339 time, e.g. 2026-11-28T12:00:00Z") from None
    try:
        sequence = ExportSequence(args.destination, args.backfill)
    except ValueError as exc:
        raise ValueError(f"--backfill/--destination: {exc}") from None
    return {"sequence": sequence, "deep": args.deep, "against_etl": args.against_etl, **bounds}


def verify_command(settings: Settings, env: dict[str, str], args: argparse.Namespace, out: TextIO,
                   err: TextIO) -> int:
    """``verify``: the options checked, the destination's settings read, one sequence audited."""
    try:
        options = verify_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    try:
        dest_settings = destination_settings(settings, env, args.destination)
        clients = build_clients(dest_settings)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    try:
        recorded_or_usage(clients.state, options["sequence"])
        if options["sequence"] == LIVE_DEFAULT:
            options["others"] = _other_destinations(settings)
        return run_verify(dest_settings, clients, out, **options)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    except ExportError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    finally:
        close_clients(clients)


def recorded_or_usage(store, sequence: ExportSequence) -> None:  # type: ignore[no-untyped-def]
    """UsageError when ``sequence`` is a backfill that is not recorded for its destination (never
    started, refused at its start, or another destination's), naming the ones that are."""
    if sequence.live:
        return
    ids = sorted(recorded_backfills(store, sequence.destination))
    if sequence.backfill not in ids:
        raise UsageError(f"--backfill {sequence.backfill}: destination {sequence.destination} has no backfill or "
                         f"replay of that id in STATE_TABLE {store.table_name} (it has "
                         f"{', '.join(ids[:20]) + (', ...' if len(ids) > 20 else '') if ids else 'none'}); "
                         f"`{status_for(sequence.destination)}` lists them")


def recorded_recipe(settings: Settings, clients, sequence: ExportSequence) -> Recipe | None:  # type: ignore[no-untyped-def]
    """The recipe a backfill was recorded with (None: not recorded), in the container the settings
    reach; StateConflictError when it was written to another container (no secret in the line)."""
    assert sequence.backfill is not None
    definition = recorded(clients.state, sequence.destination, sequence.backfill)
    if definition is None:
        return None
    current = Recipe.of(backfill_settings(settings, sequence))
    try:
        recipe = Recipe.from_json(definition.recipe, current)
    except UnreadableRecipe as exc:
        raise StateConflictError(f"{sequence.label()}: its recorded recipe cannot be read ({exc}); set it back, "
                                 "or audit it with the settings it was written with") from None
    if recipe.container != current.container:
        raise StateConflictError(
            f"{sequence.label()}: backfill {sequence.backfill} was written to the container {recipe.container}, "
            f"but destination {sequence.destination}'s settings now reach {current.container}: point them "
            "back at that container to audit it")
    return recipe


def _other_destinations(settings: Settings) -> list[str]:
    """The enabled named destinations (a plain ``verify`` audits ``default`` only); none when the
    destinations table cannot be read (that is ``check``'s to say)."""
    try:
        store = open_store(settings, retry_total=1)
    except ExportError:
        return []
    try:
        return [row.name for row in store.rows() if row.enabled]
    except ExportError:
        return []
    finally:
        store.close()


def run_verify(settings: Settings, clients, out: TextIO, *, sequence: ExportSequence,  # type: ignore[no-untyped-def]
               deep: bool, against_etl: bool, since: datetime | None, until: datetime | None,
               others: Sequence[str] = ()) -> int:
    """Audit one sequence: one line per problem, a summary line; 1 on any problem. ``others``: the
    destinations this audit leaves out (named before the summary)."""
    pin = clients.state.get_pin(sequence.destination)
    dest = Destination(pin.integration_id, pin.action_id) if pin else clients.etl.destination()
    folder, max_call_bytes = sequence.folder(settings.blob_path), settings.max_call_bytes
    if sequence.backfill is not None:
        recipe = recorded_recipe(settings, clients, sequence)
        if recipe is not None:  # where it was written, whatever the settings say now
            folder, max_call_bytes = recipe.blob_path, recipe.max_call_bytes
    result = verify(clients.blobs, clients.state, dest, sequence, folder,
                    lambda problem: print(problem.line(), file=out, flush=True), deep=deep,
                    etl=clients.etl if against_etl else None, since=since, until=until,
                    max_call_bytes=max_call_bytes)
    if result.backfills:
        inner = ExportSequence(sequence.destination, result.backfills[0]).folder(settings.blob_path)
        print(f"backfills and replays in {inner.rsplit('/', 1)[0]}/ (not audited here; `verify --backfill ID"
              + destination_flag(sequence.destination)
              + f"` audits one): {', '.join(result.backfills)}", file=out)
    if others:
        print(f"other destinations, not audited here (`verify --destination NAME` audits one): {', '.join(others)}",
              file=out)
    print(result.summary(sequence.label(), folder), file=out)
    return EXIT_OK if result.ok else EXIT_FAILED


def pinned_destination(store, remote: Destination, out: TextIO,  # type: ignore[no-untyped-def]
                       name: str = DEFAULT_DESTINATION) -> tuple[Destination, StateConflictError | None]:
    """The ids whose rows ``status`` shows: the pinned ones, with a line when the ETL API differs
    and the error ``status`` then fails with (every run of the destination stops on it)."""
    pin = store.get_pin(name)
    if pin is None:
        return remote, None
    if pin.key == remote.key:
        return Destination(pin.integration_id, pin.action_id), None
    print(f"WARNING: GET /v1/destination returns {remote.key} but the state is pinned to {pin.key}: "
          "runs stop until this is resolved (docs/operations.md)", file=out)
    return Destination(pin.integration_id, pin.action_id), StateConflictError(
        f"GET /v1/destination now returns {remote.key}, but destination {name!r} is pinned to {pin.key}: "
        "every run of it stops; if the ETL API is wrong get it fixed, if the destination really changed "
        "export it with a new STATE_TABLE (docs/operations.md, 'The ETL API names another destination')")


if __name__ == "__main__":
    # Everything this process prints goes through the redaction, a traceback included.
    sys.stdout = RedactingWriter(sys.stdout)
    sys.stderr = RedactingWriter(sys.stderr)
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.exit(code)
