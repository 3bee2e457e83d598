"""Replaying dead letters (issue 14, item 4): ``rejected list`` shows the quarantined calls,
``rejected replay`` re-validates them under today's settings and exports those that pass as a
replay sequence; ``_rejected/`` is only read (etags unchanged). Real Azurite and emulator."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.calltypes import CALL_TYPES
from shared.dead_letters import dead_letter_line
from shared.page_order import REPEAT_REASON
from shared.page_reader import OversizedLine
from shared.records import RejectedCall
from shared.replay import OVER_CAP, REPEATED, read_entry, reason_group
from shared.windows import WINDOW, format_rfc3339
from tests.support.blobs import rows_of
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LIVE_PATH = "exports/segment"


# --- one dead-letter line read back (pure) -------------------------------------------------------

lines = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" "))


@given(lines, st.text(min_size=1, max_size=80))
def test_every_stored_line_reads_back_byte_for_byte(line, reason):
    entry = read_entry(dead_letter_line(RejectedCall(line, reason)))
    if reason == REPEAT_REASON:
        assert entry.line is None and entry.unreplayable == REPEATED
    else:
        assert entry.line == line and entry.reason == reason and entry.unreplayable is None


@given(st.integers(1, 2**40), st.binary(max_size=600))
def test_an_over_cap_line_is_never_replayed_and_says_why(length, prefix):
    entry = read_entry(dead_letter_line(OversizedLine(length, "ab" * 32, prefix, 1 << 20)))
    assert entry.line is None and entry.unreplayable == OVER_CAP
    assert entry.line_bytes == length and entry.line_sha256 == "ab" * 32


@given(st.binary(max_size=300))
def test_any_bytes_read_as_an_entry_without_raising(raw):
    entry = read_entry(raw)
    assert (entry.line is None) != (entry.unreplayable is None)
    assert "\n" not in reason_group(entry.reason) or "\n" in entry.reason


# --- against Azurite and the emulator -----------------------------------------------------------


def _call(message_id: str, at: str, **fields) -> bytes:
    return json.dumps({"messageId": message_id, "type": "track", "receivedAt": at, "event": "E", **fields}).encode()


def _setup(harness):
    """Two windows of good calls; in them calls over MAX_CALL_BYTES (70 KB), a line that is not
    JSON and one over the 1 MiB line cap, all quarantined by the live export."""
    calls = []
    for i in range(3):
        calls += make_window_calls(W0 + i * WINDOW, per_type={c: 2 for c in CALL_TYPES}, seed=80 + i)
    harness.source.add(calls)
    big = [("track", "2026-11-28T12:04:00.000Z", _call("big-1", "2026-11-28T12:04:00.000Z", p={"x": "y" * 70_000})),
           ("track", "2026-11-28T12:24:00.000Z", _call("big-2", "2026-11-28T12:24:00.000Z", p={"x": "z" * 70_000})),
           ("page", "2026-11-28T12:05:00.000Z", _call("big-3", "2026-11-28T12:05:00.000Z", type="page",
                                                       name="n", properties={"x": "w" * 80_000}))]
    harness.source.add(big)
    harness.source.add([("track", "2026-11-28T12:06:00.000Z", b"{not json"),
                        ("track", "2026-11-28T12:07:00.000Z",
                         _call("huge", "2026-11-28T12:07:00.000Z", p={"x": "h" * 1_100_000}))])
    harness.env.update(EXPORT_START="2026-11-28T12:00:00Z")
    now = format_rfc3339(W0 + 3 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", now).returncode == 0
    return calls, now


def test_rejected_list_counts_the_quarantined_calls_by_window_type_and_reason(harness):
    _setup(harness)
    before = snapshot(harness.blobs())
    proc = harness.cli("rejected", "list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "2026-11-28T12:00:00Z  track  3" in out and "2026-11-28T12:00:00Z  page   1" in out
    assert "2026-11-28T12:20:00Z  track  1" in out
    assert "track  2      call is N bytes, over the N-byte cap" in out
    assert "calls over the byte cap: the cap is MAX_CALL_BYTES (65536 now); raise it, then `rejected replay`" in out
    assert "5 quarantined call(s) in 3 file(s)" in out and "4 can be replayed" in out and "1 cannot" in out
    assert "y" * 50 not in out and harness.env["ETL_API_TOKEN"] not in out  # counts, not calls or secrets
    since = harness.cli("rejected", "list", "--since", "2026-11-28T12:10:00Z")
    assert "1 quarantined call(s) in 1 file(s)" in since.stdout and "12:00:00Z  track" not in since.stdout
    bad = harness.cli("rejected", "list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since 'yesterday' is not an RFC 3339 time" in bad.stderr
    assert snapshot(harness.blobs()) == before


def test_replays_of_the_same_dead_letters_never_both_export_a_call(harness):
    _, now = _setup(harness)
    # Under the same settings nothing new passes (the 70 KB calls are still over the cap): the
    # replay exports no data file, so it does not stand in the way of the next one.
    proc = harness.cli("rejected", "replay", "--id", "same-settings", "--now", now)
    assert proc.returncode == 0, proc.stderr
    assert not [n for n in harness.blobs() if "/_backfill/same-settings/" in n and "/_rejected/" not in n
                and "/_manifests/" not in n]
    # ... so `rejected list` still counts its calls as replayable (they were: "raised" below)
    listed = harness.cli("rejected", "list").stdout
    assert ": 4 can be replayed (`rejected replay`), 1 cannot" in listed, listed
    assert "replay same-settings covers 2026-11-28T12:00:00Z..2026-11-28T12:30:00Z (track,page) but exported " \
        "nothing: its dead letters are counted as replayable (a new replay of them needs its own --id)" in listed
    harness.env["MAX_CALL_BYTES"] = "200000"
    raised = harness.cli("rejected", "replay", "--id", "raised", "--now", now)
    assert raised.returncode == 0 and "replay raised done" in raised.stdout, raised.stderr
    assert [n for n in harness.blobs() if "/_backfill/raised/" in n and "/_rejected/" not in n
            and "/_manifests/" not in n]
    listed = harness.cli("rejected", "list").stdout
    assert ": 0 can be replayed (`rejected replay`), 4 in the range of a recorded replay (below), 1 cannot" \
        in listed, listed
    assert "replay raised covers 2026-11-28T12:00:00Z..2026-11-28T12:30:00Z (track,page): dead letters from" \
        in listed
    before = snapshot(harness.blobs())
    again = harness.cli("rejected", "replay", "--id", "again", "--types", "page", "--now", now)
    assert again.returncode == 1, again.stdout
    assert "replay raised already replayed the dead letters of 2026-11-28T12:00:00Z..2026-11-28T12:30:00Z" \
        in again.stderr and "pass --since 2026-11-28T12:30:00Z" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert snapshot(harness.blobs()) == before


def test_a_replay_exports_the_calls_that_pass_now_and_is_idempotent(harness):
    calls, now = _setup(harness)
    live_rows = state_rows(harness)
    before = harness.blobs()
    rejected_before = {n: s for n, s in snapshot(before).items() if "/_rejected/" in n}
    harness.env["MAX_CALL_BYTES"] = "200000"
    proc = harness.cli("rejected", "replay", "--now", now)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout
    assert "a call cannot be replayed (line of" in out and "over the line cap" in out  # the huge line, by name
    assert "20261128T1200Z.track.ndjson" in out
    assert "5 quarantined call(s) in 3 file(s): 4 re-validated now, 1 cannot be replayed" in out
    replay_id = re.search(r"replay (replay-[A-Za-z0-9_-]+):", out).group(1)
    assert "done" in out
    assert " 0 window(s)" not in out  # a last run that found nothing left prints no empty summary
    blobs = harness.blobs()
    mine = {n: b for n, b in blobs.items() if n.startswith(f"{LIVE_PATH}/_backfill/{replay_id}/")}
    # big-1..3 now pass; "{not json" fails again, into the replay's own _rejected/.
    check_container(mine, expected_ids={"big-1", "big-2", "big-3"}, expected_rejected=1,
                    blob_path=f"{LIVE_PATH}/_backfill/{replay_id}")
    assert f"{LIVE_PATH}/_backfill/{replay_id}/2184.13699.2.track.csv" in mine  # two windows: positions 1, 2
    # _rejected/ never modified, the live sequence untouched.
    assert {n: s for n, s in snapshot(blobs).items() if "/_rejected/" in n and "/_backfill/" not in n} \
        == rejected_before
    live = {n: b for n, b in blobs.items() if "/_backfill/" not in n}
    check_container(live, expected_ids=ids_of(calls), expected_rejected=5, before=snapshot(before))
    assert state_rows(harness) == live_rows

    again = harness.cli("rejected", "replay", "--now", now)
    assert again.returncode == 0 and f"replay {replay_id} done" in again.stdout, again.stderr
    assert snapshot(harness.blobs()) == snapshot(blobs)
    status = harness.cli("status")
    assert any(ln.startswith(replay_id) and "replay" in ln and "done" in ln for ln in status.stdout.splitlines())


def test_a_second_plain_replay_says_which_newer_dead_letters_it_leaves_out_and_how_to_replay_them(harness):
    _, now = _setup(harness)
    harness.env["MAX_CALL_BYTES"] = "200000"
    first = harness.cli("rejected", "replay", "--now", now)
    assert first.returncode == 0 and "done" in first.stdout, first.stderr
    replay_id = re.search(r"replay (replay-[A-Za-z0-9_-]+):", first.stdout).group(1)
    assert "newer quarantined" not in first.stdout
    # a later window quarantines another call (the cap back where it was for the live run)
    del harness.env["MAX_CALL_BYTES"]
    harness.source.add([("track", "2026-11-28T12:33:00.000Z",
                         _call("big-4", "2026-11-28T12:33:00.000Z", p={"x": "v" * 70_000}))])
    later = format_rfc3339(W0 + 4 * WINDOW + timedelta(seconds=61))
    assert harness.cli("run", "--now", later).returncode == 0
    listed = harness.cli("rejected", "list")
    assert f"replay {replay_id} covers 2026-11-28T12:00:00Z..2026-11-28T12:30:00Z (track,page): dead letters " \
        "from 2026-11-28T12:30:00Z on need `rejected replay --since 2026-11-28T12:30:00Z`" in listed.stdout
    # the 4 replayed calls are the replay's, not counted again as replayable; only big-4 is
    assert "6 quarantined call(s) in 4 file(s)" in listed.stdout
    assert ": 1 can be replayed (`rejected replay`), 4 in the range of a recorded replay (below), 1 cannot" \
        in listed.stdout
    harness.env["MAX_CALL_BYTES"] = "200000"
    again = harness.cli("rejected", "replay", "--now", later)
    assert again.returncode == 0 and f"replay {replay_id} done" in again.stdout, again.stderr
    assert "1 newer quarantined call(s) are outside this replay (it covers 2026-11-28T12:00:00Z.." \
        "2026-11-28T12:30:00Z): run `rejected replay --since 2026-11-28T12:30:00Z`" in again.stdout
    newer = harness.cli("rejected", "replay", "--since", "2026-11-28T12:30:00Z", "--now", later)
    assert newer.returncode == 0 and "done" in newer.stdout, newer.stderr
    newer_id = re.search(r"replay (replay-[A-Za-z0-9_-]+):", newer.stdout).group(1)
    assert newer_id != replay_id and "newer quarantined" not in newer.stdout
    mine = {n: b for n, b in harness.blobs().items() if n.startswith(f"{LIVE_PATH}/_backfill/{newer_id}/")}
    check_container(mine, expected_ids={"big-4"}, expected_rejected=0, blob_path=f"{LIVE_PATH}/_backfill/{newer_id}")


def test_a_replay_killed_mid_way_and_run_again_ends_exactly_once(harness):
    calls, now = _setup(harness)
    harness.env.update(MAX_CALL_BYTES="200000", MAX_FILE_ROWS="1")
    before = snapshot(harness.blobs())
    crashed = harness.cli("rejected", "replay", "--id", "killed", "--now", now,
                          extra_env={"EXPORTER_CRASH_AT": "after_file_commit:2"})
    assert crashed.returncode == 137, (crashed.stdout, crashed.stderr)
    resumed = harness.cli("rejected", "replay", "--id", "killed", "--now", now)
    assert resumed.returncode == 0 and "replay killed done" in resumed.stdout, resumed.stderr
    blobs = harness.blobs()
    check_container({n: b for n, b in blobs.items() if "/_backfill/killed/" in n},
                    expected_ids={"big-1", "big-2", "big-3"}, expected_rejected=1,
                    blob_path=f"{LIVE_PATH}/_backfill/killed")
    live = {n: b for n, b in blobs.items() if "/_backfill/" not in n}
    check_container(live, expected_ids=ids_of(calls), expected_rejected=5, before=before)


def _a_paused_while_b_runs(harness, monkeypatch, now, at_pause) -> dict[str, int]:
    """Replay "a" runs in a thread until it is about to record its definition (after its overlap
    check), where ``at_pause(store)`` runs and "a" waits; replay "b" (the same dead letters) runs to
    its end; then "a" goes on. The exit status of each."""
    import io
    import threading

    import shared.backfill_cli as backfill_cli
    from shared.cli import main

    for key, value in harness.env.items():
        monkeypatch.setenv(key, value)
    checked, go = threading.Event(), threading.Event()
    real_record = backfill_cli.record

    def paused_a(store, wanted):
        if wanted.id == "a":
            at_pause(store)
            checked.set()
            assert go.wait(60)
        return real_record(store, wanted)

    monkeypatch.setattr(backfill_cli, "record", paused_a)
    exits: dict[str, int] = {}
    a = threading.Thread(target=lambda: exits.update(
        a=main(["--no-settings", "rejected", "replay", "--id", "a", "--now", now], out=io.StringIO())))
    a.start()
    try:
        assert checked.wait(60)
        exits["b"] = main(["--no-settings", "rejected", "replay", "--id", "b", "--now", now], out=io.StringIO())
    finally:
        go.set()
        a.join(60)
    return exits


def _replayed_ids(harness) -> dict[str, int]:
    """How many times each messageId is in the replays' data files."""
    exported: dict[str, int] = {}
    for name, blob in harness.blobs().items():
        if "/_backfill/" in name and "/_rejected/" not in name and "/_manifests/" not in name:
            for row in rows_of(name, blob.data):
                exported[row["messageId"]] = exported.get(row["messageId"], 0) + 1
    return exported


def test_two_new_replays_started_at_once_never_both_export_a_call(harness, monkeypatch, capsys):
    """Replay A has looked for overlapping replays and is about to record itself when replay B
    (another id, the same dead letters) starts. Before the replay lease, B found A not recorded
    yet, recorded and exported; then A did too: every call that passed was in two replays. Now B
    is refused while A holds the lease, A goes on, and each call is exported once."""
    _, now = _setup(harness)
    harness.env.update(MAX_CALL_BYTES="200000")
    exits = _a_paused_while_b_runs(harness, monkeypatch, now, lambda store: None)
    assert exits == {"a": 0, "b": 1}, exits
    assert "another replay of destination default is choosing its dead letters right now" in capsys.readouterr().err
    exported = _replayed_ids(harness)
    assert exported == {"big-1": 1, "big-2": 1, "big-3": 1}, exported
    assert not [n for n in harness.blobs() if "/_backfill/b/" in n]


def test_a_replay_slower_than_its_lease_never_exports_beside_the_one_that_took_it_over(harness, monkeypatch, capsys):
    """Replay A has checked for overlapping replays but is slower than its lease (120 s) before it
    records itself; replay B (another id, the same dead letters) takes the expired lease over,
    finds A not recorded, records and exports. A must not then record and export the same calls:
    it finds its lease gone, leaves no definition behind and says to run it again."""
    import io

    from shared.cli import main
    from shared.state_store import LEASES_PARTITION

    def lease_runs_out(store):  # A's lease ends between its overlap check and its record
        lease = store.table.get_entity(LEASES_PARTITION, "replay~default")
        lease["expires"] = "2000-01-01T00:00:00Z"
        store.table.update_entity(lease)

    _, now = _setup(harness)
    harness.env.update(MAX_CALL_BYTES="200000")
    exits = _a_paused_while_b_runs(harness, monkeypatch, now, lease_runs_out)
    assert exits == {"a": 1, "b": 0}, exits
    assert "took longer than its lease" in capsys.readouterr().err
    exported = _replayed_ids(harness)
    assert exported == {"big-1": 1, "big-2": 1, "big-3": 1}, exported
    assert not [n for n in harness.blobs() if "/_backfill/a/" in n]
    # run again, A is refused as overlapping B (it was not left recorded to export on its own)
    assert main(["--no-settings", "rejected", "replay", "--id", "a", "--now", now], out=io.StringIO()) == 1
    assert "already replayed the dead letters" in capsys.readouterr().err


def test_what_failed_again_in_a_replay_is_replayed_with_of_each_call_exactly_once(harness):
    calls, now = _setup(harness)

    def folder(replay_id: str) -> dict:
        return {n: b for n, b in harness.blobs().items() if n.startswith(f"{LIVE_PATH}/_backfill/{replay_id}/")}

    harness.env["MAX_CALL_BYTES"] = "75000"  # the 70 KB calls pass now, the 80 KB one fails again
    first = harness.cli("rejected", "replay", "--id", "r1", "--now", now)
    assert first.returncode == 0 and "replay r1 done" in first.stdout, (first.stdout, first.stderr)
    check_container(folder("r1"), expected_ids={"big-1", "big-2"}, expected_rejected=2,
                    blob_path=f"{LIVE_PATH}/_backfill/r1")  # big-3 and "{not json" failed again, there
    assert "2 call(s) were quarantined in replay r1: `rejected list --of r1` lists them, `rejected replay --of r1` " \
           "replays them once what refused them is fixed" in first.stdout, first.stdout
    listed = harness.cli("rejected", "list").stdout
    assert "what failed again in it: `rejected list --of r1`" in listed, listed
    harness.env["MAX_CALL_BYTES"] = "200000"
    # the same dead letters again would export big-1 and big-2 twice: refused, pointing at --of
    refused = harness.cli("rejected", "replay", "--id", "r-again", "--now", now)
    assert refused.returncode == 1 and "replay what failed again in it with --of r1" in refused.stderr
    listed = harness.cli("rejected", "list", "--of", "r1")
    assert listed.returncode == 0, listed.stderr
    assert f"2 quarantined call(s) in 2 file(s) of {LIVE_PATH}/_backfill/r1/_rejected/: 2 can be replayed " \
           "(`rejected replay --of r1`)" in listed.stdout, listed.stdout
    before = {n: s for n, s in snapshot(harness.blobs()).items() if "/_backfill/r2/" not in n}
    second = harness.cli("rejected", "replay", "--of", "r1", "--id", "r2", "--now", now)
    assert second.returncode == 0 and "replay r2 done" in second.stdout, (second.stdout, second.stderr)
    assert "2 quarantined call(s) in 2 file(s): 2 re-validated now, 0 cannot be replayed" in second.stdout
    check_container(folder("r2"), expected_ids={"big-3"}, expected_rejected=1,
                    blob_path=f"{LIVE_PATH}/_backfill/r2")  # "{not json" never passes
    # nothing else moved: the live export, r1 and their dead letters are as they were
    assert {n: s for n, s in snapshot(harness.blobs()).items() if "/_backfill/r2/" not in n} == before
    check_container({n: b for n, b in harness.blobs().items() if "/_backfill/" not in n},
                    expected_ids=ids_of(calls), expected_rejected=5)
    # the same command resumes (is done); a new replay of r1's leftovers overlaps r2 and is refused
    again = harness.cli("rejected", "replay", "--of", "r1", "--id", "r2", "--now", now)
    assert again.returncode == 0 and "replay r2 done" in again.stdout
    third = harness.cli("rejected", "replay", "--of", "r1", "--id", "r3", "--now", now)
    assert third.returncode == 1 and "replay r2 already replayed the dead letters" in third.stderr
    # r2 is recorded with its source: run under another source it is refused
    other = harness.cli("rejected", "replay", "--id", "r2", "--now", now)
    assert other.returncode == 1 and "r2 replays the dead letters of r1" in other.stderr, other.stderr
    assert harness.cli("verify", "--backfill", "r2").returncode == 0
    assert any(ln.split()[:4] == ["r2", "replay", "of", "r1"] for ln in harness.cli("status").stdout.splitlines())


def test_of_names_a_finished_backfill_or_replay_of_the_destination(harness):
    _, now = _setup(harness)
    harness.env["EXPORT_QUEUE"] = f"q{uuid.uuid4().hex[:20]}"
    queued = harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z",
                         "--id", "bq", "--queue", "--now", now)
    assert queued.returncode == 0, queued.stderr  # recorded, not run yet
    before = snapshot(harness.blobs())
    for args, message in ((("--of", "nope"), "error: --of nope: destination default has no backfill or replay of "
                                             "that id (`status` lists them)"),
                          (("--of", "bq"), "error: --of bq: backfill bq is not finished, so its dead letters may "
                                           "still grow: run it to its end first"),
                          (("--of", "a/b"), "error: ")):
        proc = harness.cli("rejected", "replay", *args, "--now", now)
        assert proc.returncode == 2 and proc.stderr.startswith(message), (args, proc.stderr)
    assert "0 quarantined call(s)" in harness.cli("rejected", "list", "--of", "bq").stdout  # listing may look
    assert snapshot(harness.blobs()) == before


def test_a_replay_that_exported_nothing_has_its_leftovers_replayed_once_by_of_or_by_a_live_replay(harness):
    """Replay r1 exported nothing (everything failed again), so it holds nothing back: a new replay
    of the live dead letters may take them. Its own dead letters are the same calls: a replay
    --of r1 and a live replay of the same range must not both export them (in either order)."""
    _, now = _setup(harness)
    same = harness.cli("rejected", "replay", "--id", "r1", "--now", now)
    assert same.returncode == 0 and "replay r1 done" in same.stdout, same.stderr
    harness.env["MAX_CALL_BYTES"] = "200000"
    of = harness.cli("rejected", "replay", "--of", "r1", "--id", "r2", "--now", now)
    assert of.returncode == 0 and "replay r2 done" in of.stdout, (of.stdout, of.stderr)
    assert _replayed_ids(harness) == {"big-1": 1, "big-2": 1, "big-3": 1}
    listed = harness.cli("rejected", "list").stdout
    assert ": 0 can be replayed (`rejected replay`), 4 in the range of a recorded replay (below)" in listed, listed
    live = harness.cli("rejected", "replay", "--id", "r3", "--now", now)
    assert live.returncode == 1 and "replay r2 already replayed the dead letters" in live.stderr, live.stderr
    sibling = harness.cli("rejected", "replay", "--of", "r1", "--id", "r2b", "--now", now)
    assert sibling.returncode == 1 and "replay r2 already replayed" in sibling.stderr, sibling.stderr
    assert _replayed_ids(harness) == {"big-1": 1, "big-2": 1, "big-3": 1}


def test_a_live_replay_and_a_replay_of_the_leftovers_of_one_that_exported_nothing_never_both_export(harness):
    _, now = _setup(harness)
    assert harness.cli("rejected", "replay", "--id", "r1", "--now", now).returncode == 0  # exports nothing
    harness.env["MAX_CALL_BYTES"] = "200000"
    live = harness.cli("rejected", "replay", "--id", "r3", "--now", now)
    assert live.returncode == 0 and "replay r3 done" in live.stdout, live.stderr
    listed = harness.cli("rejected", "list", "--of", "r1").stdout
    assert "0 can be replayed (`rejected replay --of r1`), 4 in the range of a recorded replay" in listed, listed
    of = harness.cli("rejected", "replay", "--of", "r1", "--id", "r2", "--now", now)
    assert of.returncode == 1 and "replay r3 already replayed the dead letters" in of.stderr, of.stderr
    assert _replayed_ids(harness) == {"big-1": 1, "big-2": 1, "big-3": 1}
