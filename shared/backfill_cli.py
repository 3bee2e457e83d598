"""The ``backfill``, ``rejected list`` and ``rejected replay`` commands of :mod:`shared.cli`, and the
backfills' lines of ``status``."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

from shared.backfill import Definition, UsageError, derived_id, lineage, parse_id, parse_range, parse_types
from shared.backfill_run import (
    dead_letter_store,
    definitions,
    drive,
    progress_of,
    recipe_of,
    record,
    recorded,
    recording_replay,
    still_leased,
)
from shared.blob_store import BlobStore
from shared.calltypes import CALL_TYPES
from shared.cli_output import failures, print_summary, table
from shared.clients import build_clients, close_clients
from shared.destinations import get_destination
from shared.errors import ExportError, SettingsError, StateConflictError
from shared.pinning import pinned_for_backfill
from shared.records import over_cap
from shared.replay import reason_group, rejected_files, tally
from shared.sequence import DEFAULT_DESTINATION
from shared.sequence import Sequence as ExportSequence
from shared.settings import Settings
from shared.windows import WINDOW, floor_window, format_rfc3339, parse_rfc3339
from shared.work_cli import cmd_enqueue_backfill

EXIT_OK, EXIT_FAILED = 0, 1


def print_backfills(clients, name: str, dest_key: str, out: TextIO) -> None:  # type: ignore[no-untyped-def]
    """The backfills and replays of destination ``name`` recorded in the state table, with their progress."""
    found = [d for d in definitions(clients.state, name) if d.destination == name]
    if not found:
        return
    rows = [["backfill", "kind", "range", "types", "units done", "state"]]
    for d in found:
        p = progress_of(clients, d, dest_key)
        state = "done" if p.finished else (
            f"pending at {format_rfc3339(p.through)}" if p.pending else f"through {format_rfc3339(p.through)}")
        kind = f"{d.kind} of {d.source}" if d.source else d.kind
        rows.append([d.id, kind, d.range_label(), ",".join(d.types), f"{p.done}/{p.total}", state])
    print("backfills (files in BLOB_PATH/_backfill/<backfill>/):", file=out)
    table(rows, out)


def destination_settings(app: Settings, env: Mapping[str, str], name: str, *, queued: bool = False) -> Settings:
    """The settings of destination ``name`` (``default``: the app settings): UsageError when there
    is none of that name, ExportError when its settings cannot be read (a secret reference) or,
    ``queued``, when it is disabled (the workers drop a disabled destination's items)."""
    try:
        named = get_destination(app, name, env=env)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    if queued and not named.enabled:
        raise ExportError(f"destination {name} is disabled: its work items would be dropped; enable it "
                          f"(`destinations enable {name}`) or run this without --queue")
    if named.settings is None:
        raise ExportError(named.error or f"destination {name}: its settings cannot be read")
    return named.settings


def status_for(name: str) -> str:
    """The ``status`` command line that shows destination ``name``'s backfills and replays."""
    return "status" if name == DEFAULT_DESTINATION else f"status {name}"


def destination_flag(name: str) -> str:
    """`` --destination NAME`` for a command line the output suggests ("" for ``default``)."""
    return "" if name == DEFAULT_DESTINATION else f" --destination {name}"


def backfill_commands(args: argparse.Namespace, app: Settings, env: Mapping[str, str], now: datetime,
                      out: TextIO, err: TextIO) -> int:
    """``backfill``, ``rejected list`` and ``rejected replay`` of one destination (``--destination``)."""
    name = args.destination
    wanted: Definition | None = None
    if args.command == "backfill":  # the command line is checked before anything is reached
        start, end = parse_range(args.start, args.end, now, app.settle_seconds)
        types = parse_types(args.types)
        backfill_id = parse_id(args.id) if args.id else derived_id("backfill", start, end, types)
    settings = destination_settings(app, env, name, queued=bool(getattr(args, "queue", False)))
    if args.command == "backfill":
        sequence = ExportSequence(name, backfill_id)
        wanted = Definition(backfill_id, "backfill", start, end, types, recipe_of(settings, sequence), name)
    clients = build_clients(settings)
    try:
        if args.command == "rejected" and args.verb == "list":
            return rejected_list(clients, name, args, out, settings.max_call_bytes)
        definition: Definition | None
        if wanted is not None:
            pinned_for_backfill(clients.state, clients.etl.destination(), wanted.sequence)  # before recording
            definition = record(clients.state, wanted)
        else:
            definition = replay_definition(settings, clients, name, args, out)
            if definition is None:
                return EXIT_OK
        dest_key = pinned_key(clients, name)
    finally:
        close_clients(clients)
    print(f"{definition.kind} {definition.id}: {definition.range_label()}, {','.join(definition.types)} -> "
          f"{definition.sequence.folder(settings.blob_path)}/", file=out)
    if args.queue:
        return cmd_enqueue_backfill(settings, definition, now, out)
    last = drive(settings, lambda: build_clients(settings), close_clients, now, definition,
                 lambda summary: print_summary(summary, out) if summary.units else None)
    clients = build_clients(settings)
    try:
        key = dest_key or pinned_key(clients, name) or ""
        p = progress_of(clients, definition, key)
        # its own dead letters, where it was written (its recorded folder, whatever BLOB_PATH is now)
        own = rejected_files(dead_letter_store(clients, name, definition.id), key) if p.finished and key else []
        failed_again = tally(clients.blobs, own).total if own else 0
    finally:
        close_clients(clients)
    if last is not None and not last.ok:
        print(f"error: {last.error or failures(last)}", file=err)
    if p.finished:
        print(f"{definition.kind} {definition.id} done: {p.done} of {p.total} (window, type) units", file=out)
        if failed_again:
            named = destination_flag(name)
            print(f"{failed_again} call(s) were quarantined in {definition.kind} {definition.id}: `rejected "
                  f"list{named} --of {definition.id}` lists them, `rejected replay{named} --of {definition.id}` "
                  "replays them once what refused them is fixed", file=out)
        return EXIT_OK
    print(f"{definition.kind} {definition.id}: {p.done} of {p.total} (window, type) units done, through "
          f"{format_rfc3339(p.through)}; run the same command again to resume it", file=out)
    return EXIT_FAILED


def pinned_key(clients, name: str) -> str | None:  # type: ignore[no-untyped-def]
    pin = clients.state.get_pin(name)
    return None if pin is None else pin.key


def _since(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return floor_window(parse_rfc3339(text))
    except (ValueError, OverflowError):
        raise UsageError(f"{option} {text[:40]!r} is not an RFC 3339 time like 2026-11-28T12:00:00Z") from None


def rejected_list(clients, name: str, args: argparse.Namespace,  # type: ignore[no-untyped-def]
                  out: TextIO, max_call_bytes: int) -> int:
    since = _since("--since", args.since)
    dest_key = pinned_key(clients, name)
    if dest_key is None:
        print("nothing exported yet (no destination pin): no dead letters", file=out)
        return EXIT_OK
    of = _source(clients, name, args.of, finished=False)
    source = of.id if of else ""
    letters = dead_letter_store(clients, name, source)
    files = rejected_files(letters, dest_key, since)
    found = tally(letters, files)
    if found.total:
        rows = [["window", "type", "calls"]]
        rows += [[format_rfc3339(w), t, str(n)] for (w, t), n in sorted(found.by_window.items())]
        table(rows, out)
        print("", file=out)
        rows = [["type", "calls", "reason"]]
        rows += [[t, str(n), r] for (t, r), n in sorted(found.by_reason.items(), key=lambda kv: (kv[0][0], -kv[1]))]
        table(rows, out)
    replays = _family(definitions(clients.state, name), name, source)
    # A call in the range and types of a recorded replay that exported a file, or may still (not
    # finished), is that replay's: a new replay of it is refused, so it is not counted as
    # replayable. A finished replay that exported nothing holds nothing back (_exported_any).
    holding = {d.id for d in replays if _exported_any(clients, d, dest_key)}
    covered = sum(found.by_file[f.name] for f in files
                  if any(d.id in holding and f.call_type in d.types and d.start <= f.window_start < d.end
                         for d in replays))
    in_replays = f", {covered} in the range of a recorded replay (below)" if covered else ""
    named = destination_flag(name)
    again = f"rejected replay{named}" + (f" --of {source}" if source else "")
    print(f"{found.total} quarantined call(s) in {len(files)} file(s) of {letters.name('_rejected/')}"
          + (f" since {format_rfc3339(since)}" if since else "")
          + f": {found.replayable - covered} can be replayed (`{again}`){in_replays}, "
          f"{found.unreplayable} cannot (over the line cap, or repeats of exported calls)", file=out)
    if any(reason == OVER_MAX_CALL_BYTES for _, reason in found.by_reason):
        print(f"calls over the byte cap: the cap is MAX_CALL_BYTES ({max_call_bytes} now"
              + (f", destination {name}'s row" if name != DEFAULT_DESTINATION else "")
              + f"); raise it, then `{again}`", file=out)
    for d in replays:
        if d.id not in holding:
            print(f"replay {d.id} covers {d.range_label()} ({','.join(d.types)}) but exported nothing: its "
                  "dead letters are counted as replayable (a new replay of them needs its own --id)", file=out)
            continue
        print(f"replay {d.id} covers {d.range_label()} ({','.join(d.types)}): dead letters from "
              f"{format_rfc3339(d.end)} on need `{again} --since {format_rfc3339(d.end)}`; what failed again "
              f"in it: `rejected list{named} --of {d.id}`", file=out)
    return EXIT_OK


#: The reason group (shared/replay.py ``reason_group``) of a call over MAX_CALL_BYTES (shared/records.py).
OVER_MAX_CALL_BYTES = reason_group(over_cap(1, 1))


def _source(clients, name: str, of: str | None,  # type: ignore[no-untyped-def]
            finished: bool = True) -> Definition | None:
    """``--of ID``: the recorded backfill or replay whose own dead letters are meant (None: the live
    export's); UsageError for an id the destination never recorded, or (``finished``: to replay
    them) one not finished, whose dead letters may still grow."""
    if of is None:
        return None
    source_id = parse_id(of)
    source = recorded(clients.state, name, source_id)
    if source is None:
        raise UsageError(f"--of {source_id}: destination {name} has no backfill or replay of that id "
                         f"(`{status_for(name)}` lists them)")
    pin = clients.state.get_pin(name)
    if finished and pin is not None and not progress_of(clients, source, pin.key).finished:
        raise UsageError(f"--of {source_id}: {source.kind} {source_id} is not finished, so its dead letters may "
                         "still grow: run it to its end first")
    return source


def replay_definition(settings: Settings, clients, name: str,  # type: ignore[no-untyped-def]
                      args: argparse.Namespace, out: TextIO) -> Definition | None:
    """The replay's recorded definition (written at its first run), or None when there is nothing
    to replay. Its range ends where every live type has been exported (those files are final)."""
    since = _since("--since", args.since)
    until = _since("--until", args.until)
    types = parse_types(args.types)
    of = _source(clients, name, args.of)
    source = of.id if of else ""
    replay_id = parse_id(args.id) if args.id else derived_replay_id(since, until, types, source)
    sequence = ExportSequence(name, replay_id)
    recipe = recipe_of(settings, sequence)
    pin = clients.state.get_pin(name)
    if pin is None:
        print("nothing exported yet (no destination pin): nothing to replay", file=out)
        return None
    known = recorded(clients.state, name, replay_id)
    letters = dead_letter_store(clients, name, source)
    if known is None:
        if of is not None:  # a finished backfill's or replay's own dead letters are final up to its end
            final: datetime | None = of.end
        else:  # the live export's, up to where every type has been exported
            key = ExportSequence(name).state_key(pin.integration_id, pin.action_id)  # its own rows
            live = [clients.state.get(key, t) for t in CALL_TYPES]
            final = min((r.window_end for r in live if r is not None), default=None)
        if final is None:
            print("nothing exported yet: nothing to replay", file=out)
            return None
        until = final if until is None else min(until, final)
        files = [f for f in rejected_files(letters, pin.key, since, until) if f.call_type in types]
        if not files:
            print("no dead letters to replay" + (f" of {source}" if source else "")
                  + (f" since {format_rfc3339(since)}" if since else ""), file=out)
            return None
        found_types = tuple(t for t in CALL_TYPES if any(f.call_type == t for f in files))
        wanted = Definition(replay_id, "replay", files[0].window_start, files[-1].window_start + WINDOW,
                            found_types, recipe, name, source)
        with recording_replay(clients.state, name, replay_id) as held:
            # One replay at a time looks for overlaps and records itself: two new replays of the
            # same dead letters started at once would each find the other not recorded yet.
            for other in _family(definitions(clients.state, name), name, source):
                if other.id != replay_id and other.start < wanted.end and wanted.start < other.end \
                        and set(other.types) & set(wanted.types) and _exported_any(clients, other, pin.key):
                    raise StateConflictError(
                        f"replay {other.id} already replayed the dead letters of {other.range_label()} "
                        f"({','.join(other.types)}): replaying them again would export the calls that pass "
                        f"twice; pass --since {format_rfc3339(other.end)} (or --types without those types), or "
                        f"replay what failed again in it with --of {other.id}")
            definition = record(clients.state, wanted)
            still_leased(clients.state, definition, held)
    else:
        definition = known
        if definition.kind != "replay" or definition.recipe != recipe or definition.source != source:
            what = "is a backfill" if definition.kind != "replay" else (
                "was recorded with other settings" if definition.recipe != recipe
                else f"replays {definition.source_label()}")
            raise StateConflictError(f"{replay_id} {what} (recipe {definition.recipe}): nothing was "
                                     "exported; run it as recorded, or give a new replay its own --id")
    notes: list[str] = []
    files = [f for f in rejected_files(letters, pin.key, definition.start, definition.end)
             if f.call_type in definition.types]
    found = tally(letters, files, notes)
    for note in notes:
        print(note, file=out)
    print(f"{found.total} quarantined call(s) in {len(files)} file(s): {found.replayable} re-validated now, "
          f"{found.unreplayable} cannot be replayed", file=out)
    if known is not None:
        newer_than_replay(letters, pin.key, definition, since, until, types, out)
    return definition


def newer_than_replay(letters: BlobStore, dest_key: str, definition: Definition,
                      since: datetime | None, until: datetime | None, types: tuple[str, ...], out: TextIO) -> None:
    """A recorded replay's range was fixed at its first run: say how many dead letters (in
    ``letters``, where it reads them) the same command would have covered that landed after it,
    and the command that replays them."""
    start = definition.end if since is None else max(since, definition.end)
    newer = [f for f in rejected_files(letters, dest_key, start, until) if f.call_type in types]
    count = tally(letters, newer).total if newer else 0
    if count:
        # The same command from the replay's end: its destination, --of, --until and --types too.
        again = f"rejected replay{destination_flag(definition.destination)}" \
            + (f" --of {definition.source}" if definition.source else "") \
            + f" --since {format_rfc3339(start)}" + (f" --until {format_rfc3339(until)}" if until else "") \
            + (f" --types {','.join(types)}" if types != CALL_TYPES else "")
        print(f"{count} newer quarantined call(s) are outside this replay (it covers {definition.range_label()}): "
              f"run `{again}`", file=out)


def _family(recorded: list[Definition], name: str, source: str) -> list[Definition]:
    """The recorded replays of destination ``name`` that may hold calls of ``source``'s dead letters
    (the live export's: ``""``): those of the same root (:func:`lineage`), the chain ``source``
    descends from left out (their dead letters are where ``source``'s come from)."""
    replays = {d.id: d for d in recorded if d.kind == "replay" and d.destination == name}
    by_id = {d.id: d for d in recorded}
    ancestors, root = lineage(source, by_id)
    return [d for d in replays.values() if d.id not in ancestors and lineage(d.source, by_id)[1] == root]


def _exported_any(clients, definition: Definition, dest_key: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether a replay wrote a data file, or may still (not finished): only then does another
    replay of its dead letters risk exporting a call twice."""
    key = definition.sequence.state_key(*dest_key.split("."))
    rows = [clients.state.get(key, t) for t in definition.types]
    return any(r is not None and r.position > 0 for r in rows) \
        or not progress_of(clients, definition, dest_key).finished


def derived_replay_id(since: datetime | None, until: datetime | None, types: tuple[str, ...],
                      source: str = "") -> str:
    """``replay-<since or all>-<8 hex of since, until, the types and --of>``: the same command, the
    same replay (a replay of the live dead letters derives what earlier versions did)."""
    text = f"{since and format_rfc3339(since)}|{until and format_rfc3339(until)}|{','.join(types)}"
    text += f"|of={source}" if source else ""
    stamp = since.strftime("%Y%m%dT%H%MZ") if since else "all"
    return f"replay-{stamp}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
