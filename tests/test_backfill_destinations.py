"""``backfill``, ``rejected list`` and ``rejected replay`` of a named destination (``--destination``):
its settings, its pin, its folder and its rows; the default destination's left as they were."""

from __future__ import annotations

import dataclasses
import json
import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.destinations import get_destination
from shared.errors import StateConflictError
from shared.recipe import recipe_diff
from shared.sequence import Sequence
from shared.state_store import StateStore, make_table_service
from shared.work_queue import WorkQueue
from shared.worker import handle
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of, snapshot
from tests.support.runs import FAST_ETL
from tests.test_destinations import AFTER_THREE, W0, add, env_of, ok
from tests.test_destinations import others as others  # the fixture

EU = "eu/segment"
KEY = "2184.13699"  # eu has the same ids as default (another folder): only the name tells them apart


def _big(message_id: str, at: str) -> bytes:
    return json.dumps({"messageId": message_id, "type": "track", "receivedAt": at, "event": "E",
                       "properties": {"x": "y" * 70_000}}).encode()


def _eu_exported(harness, others) -> tuple[dict[str, str], list]:
    """Three windows of eu's calls, one of them over MAX_CALL_BYTES (quarantined); default exports
    calls of its own into its own folder."""
    env = env_of(others)
    ok(add(harness, others["eu"], env))
    calls = make_window_calls(W0, per_type={"track": 3, "identify": 2}, seed=41)
    others["eu"].source.add(calls)
    others["eu"].source.add([("track", "2026-11-28T12:14:00.000Z", _big("big-eu", "2026-11-28T12:14:00.000Z"))])
    harness.env["EXPORT_START"] = "2026-11-28T12:00:00Z"
    harness.source.add(make_window_calls(W0, per_type={"track": 1}, seed=42))
    harness.source.add([("track", "2026-11-28T12:15:00.000Z", _big("big-default", "2026-11-28T12:15:00.000Z"))])
    ok(harness.cli("run", "--now", AFTER_THREE, extra_env=env))
    return env, calls


def _default_files(harness) -> dict:
    return {n: s for n, s in snapshot(harness.blobs()).items() if not n.startswith(f"{EU}/")}


def test_a_backfill_of_a_named_destination_uses_its_settings_pin_and_folder(harness, others):
    env, calls = _eu_exported(harness, others)
    default_before = _default_files(harness)
    proc = harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                       "--end", "2026-11-28T12:10:00Z", "--id", "b1", "--now", AFTER_THREE, extra_env=env)
    ok(proc)
    assert "backfill b1: 2026-11-28T12:00:00Z..2026-11-28T12:10:00Z" in proc.stdout
    assert f"-> {EU}/_backfill/b1/" in proc.stdout and "backfill b1 done" in proc.stdout
    blobs = harness.blobs()
    mine = {n: b for n, b in blobs.items() if n.startswith(f"{EU}/_backfill/b1/")}
    check_container(mine, expected_ids=ids_of(calls), blob_path=f"{EU}/_backfill/b1")
    assert f"{EU}/_backfill/b1/{KEY}.1.track.json" in mine  # eu's format (json), not default's (csv)
    manifest = json.loads(blobs[f"{EU}/_backfill/b1/_manifests/{KEY}.20261128T1200Z.json"].data)
    assert manifest["sequence"] == {"destination": "eu", "backfill": "b1"}
    assert _default_files(harness) == default_before  # default's folder untouched
    # the same id under default is another backfill, in default's folder
    ok(harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z",
                   "--types", "track", "--id", "b1", "--now", AFTER_THREE, extra_env=env))
    assert any(n.startswith("exports/segment/_backfill/b1/") for n in harness.blobs())
    # audited as eu's; status shows each destination its own backfills
    ok(harness.cli("verify", "--destination", "eu", "--backfill", "b1", extra_env=env))
    live = harness.cli("verify", "--destination", "eu", extra_env=env)
    ok(live)
    assert "backfills and replays in eu/segment/_backfill/ (not audited here; `verify --backfill ID --destination " \
        "eu` audits one): b1\n" in live.stdout, live.stdout
    lines = {name: [ln.split() for ln in harness.cli("status", name, extra_env=env).stdout.splitlines()
                    if ln.startswith("b1 ")] for name in ("eu", "default")}
    assert lines["eu"] == [["b1", "backfill", "2026-11-28T12:00:00Z..2026-11-28T12:10:00Z",
                            "identify,track,page,screen,alias,group", "6/6", "done"]], lines
    assert lines["default"] == [["b1", "backfill", "2026-11-28T12:00:00Z..2026-11-28T12:10:00Z", "track", "1/1",
                                 "done"]], lines
    # Run again: the recorded definition is eu's; another range under the same id is refused.
    again = harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                        "--end", "2026-11-28T12:20:00Z", "--id", "b1", "--now", AFTER_THREE, extra_env=env)
    ok(again, 1)
    assert "backfill b1 was started with 2026-11-28T12:00:00Z..2026-11-28T12:10:00Z" in again.stderr


def test_dead_letters_of_a_named_destination_are_listed_and_replayed_in_its_place(harness, others):
    env, _ = _eu_exported(harness, others)
    listed = harness.cli("rejected", "list", "--destination", "eu", extra_env=env)
    ok(listed)
    assert "1 quarantined call(s) in 1 file(s) of eu/segment/_rejected/" in listed.stdout, listed.stdout
    assert "1 can be replayed" in listed.stdout
    default_before = _default_files(harness)
    ok(add(harness, others["eu"], env, "EXPORT_FORMAT=json", "MAX_CALL_BYTES=200000"))  # eu's fix only
    proc = harness.cli("rejected", "replay", "--destination", "eu", "--id", "r1", "--now", AFTER_THREE,
                       extra_env=env)
    ok(proc)
    assert "replay r1 done" in proc.stdout and f"-> {EU}/_backfill/r1/" in proc.stdout
    mine = {n: b for n, b in harness.blobs().items() if n.startswith(f"{EU}/_backfill/r1/")}
    check_container(mine, expected_ids={"big-eu"}, blob_path=f"{EU}/_backfill/r1")
    assert _default_files(harness) == default_before
    listed = harness.cli("rejected", "list", "--destination", "eu", extra_env=env).stdout
    assert "0 can be replayed (`rejected replay --destination eu`), 1 in the range of a recorded replay (below)" \
        in listed, listed
    # default's dead letters of the same window are its own: eu's replay neither holds them back
    # nor stands in the way of default's replay of them
    listed = harness.cli("rejected", "list", extra_env=env).stdout
    assert "1 can be replayed" in listed and "replay r1" not in listed, listed
    harness.env["MAX_CALL_BYTES"] = "200000"
    ok(harness.cli("rejected", "replay", "--id", "r0", "--now", AFTER_THREE, extra_env=env))
    theirs = {n: b for n, b in harness.blobs().items() if n.startswith("exports/segment/_backfill/r0/")}
    check_container(theirs, expected_ids={"big-default"}, blob_path="exports/segment/_backfill/r0")
    again = harness.cli("rejected", "replay", "--destination", "eu", "--id", "r2", "--now", AFTER_THREE,
                        extra_env=env)
    ok(again, 1)
    assert "replay r1 already replayed the dead letters" in again.stderr



def test_the_newer_dead_letters_hint_of_a_named_destinations_replay_names_the_destination(harness, others):
    # Run as printed, the hint without --destination would replay default's dead letters.
    env, _ = _eu_exported(harness, others)
    ok(add(harness, others["eu"], env, "EXPORT_FORMAT=json", "MAX_CALL_BYTES=200000"))
    ok(harness.cli("rejected", "replay", "--destination", "eu", "--id", "r1", "--now", AFTER_THREE, extra_env=env))
    others["eu"].source.add([("track", "2026-11-28T12:33:00.000Z", b"{not json")])  # quarantined later
    later = "2026-11-28T12:41:01Z"
    ok(harness.cli("run", "--now", later, extra_env=env))
    again = harness.cli("rejected", "replay", "--destination", "eu", "--id", "r1", "--now", later, extra_env=env)
    ok(again)
    hint = "run `rejected replay --destination eu --since 2026-11-28T12:20:00Z`"
    assert "1 newer quarantined call(s) are outside this replay" in again.stdout and hint in again.stdout, again.stdout
    newer = harness.cli(*hint[len("run `"):-1].split(), "--now", later, extra_env=env)  # copy-pasted
    ok(newer)
    assert "1 quarantined call(s) in 1 file(s)" in newer.stdout, newer.stdout  # eu's (default has none there)
    assert "`rejected replay --destination eu --of replay-" in newer.stdout, newer.stdout


def test_an_unknown_destination_is_a_usage_error_and_touches_nothing(harness, others):
    env, _ = _eu_exported(harness, others)
    before = snapshot(harness.blobs())
    for args in (("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z",
                  "--now", AFTER_THREE), ("rejected", "list"), ("rejected", "replay", "--now", AFTER_THREE)):
        proc = harness.cli(*args, "--destination", "nope", extra_env=env)
        ok(proc, 2)
        assert proc.stderr.splitlines() == [
            "error: there is no destination 'nope' in DESTINATIONS_TABLE "
            f"{harness.env.get('DESTINATIONS_TABLE', 'destinations')}: 'destinations list' shows them"], args
    assert snapshot(harness.blobs()) == before


def test_a_destination_whose_secret_cannot_be_read_fails_with_its_name(harness, others):
    env, _ = _eu_exported(harness, others)
    del env["EU_TOKEN"]
    proc = harness.cli("rejected", "list", "--destination", "eu", extra_env=env)
    ok(proc, 1)
    assert proc.stderr.startswith("error: destination eu: ") and "EU_TOKEN" in proc.stderr
    assert others["eu"].token not in proc.stderr + proc.stdout


def test_a_queued_backfill_of_a_named_destination_is_worked_in_its_place(harness, others):
    env, calls = _eu_exported(harness, others)
    default_before = _default_files(harness)
    harness.env["EXPORT_QUEUE"] = f"q{uuid.uuid4().hex[:20]}"
    proc = harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                       "--end", "2026-11-28T12:20:00Z", "--types", "track", "--id", "bq", "--queue",
                       "--now", AFTER_THREE, extra_env=env)
    ok(proc)
    assert proc.stdout.splitlines()[1:3] == [
        "enqueued eu backfill bq track 2026-11-28T12:00:00Z (horizon 2026-11-28T12:31:01Z)",
        f"1 work item(s) enqueued on {harness.env['EXPORT_QUEUE']} for backfill bq (a type with a live chain or "
        "nothing left gets none); `python -m shared.cli status` shows its progress"], proc.stdout
    app = harness.settings()
    eu = get_destination(app, "eu", env={**harness.env, **env})
    assert eu.settings is not None
    queue = WorkQueue.of(app)
    statuses = []
    try:
        while (message := queue.receive(30)) is not None:
            outcome = handle(message.content, app, queue=queue, destinations=[("eu", Sequence("eu"), eu.settings)],
                             clients_kwargs={"etl_kwargs": FAST_ETL})
            queue.delete(message)
            statuses.append((outcome.item.destination, outcome.status))
    finally:
        queue.close()
    assert statuses == [("eu", "exported"), ("eu", "empty")]  # 12:10 holds only the big call
    mine = {n: b for n, b in harness.blobs().items() if n.startswith(f"{EU}/_backfill/bq/")}
    # eu's calls of the range, its big call quarantined again (MAX_CALL_BYTES is still eu's 65536)
    tracks = {c["messageId"] for c in calls if c["type"] == "track"}
    check_container(mine, expected_ids=tracks, expected_rejected=1, blob_path=f"{EU}/_backfill/bq")
    assert _default_files(harness) == default_before
    ok(harness.cli("verify", "--destination", "eu", "--backfill", "bq", extra_env=env))


def _drain(harness, app, name: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """Work every queued item with destination ``name``'s settings as they are now (a worker's lookup)."""
    named = get_destination(app, name, env={**harness.env, **env})
    assert named.settings is not None
    queue = WorkQueue.of(app)
    statuses = []
    try:
        while (message := queue.receive(30)) is not None:
            try:
                outcome = handle(message.content, app, queue=queue,
                                 destinations=[(name, Sequence(name), named.settings)],
                                 clients_kwargs={"etl_kwargs": FAST_ETL})
                statuses.append((outcome.item.destination, outcome.status))
            except StateConflictError as exc:  # permanent: the host retries it, then poisons it
                statuses.append(("error", str(exc)))
            queue.delete(message)
    finally:
        queue.close()
    return statuses


def test_a_queued_backfill_is_not_worked_with_settings_other_than_those_it_was_recorded_with(harness, others):
    """`destinations add eu` with another format between `backfill --queue` and the workers: the
    inline run refuses such a change, so must the workers (one backfill, one recipe)."""
    env, _ = _eu_exported(harness, others)
    harness.env["EXPORT_QUEUE"] = f"q{uuid.uuid4().hex[:20]}"
    ok(harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                   "--end", "2026-11-28T12:20:00Z", "--types", "track", "--id", "bq", "--queue",
                   "--now", AFTER_THREE, extra_env=env))
    ok(add(harness, others["eu"], env, "EXPORT_FORMAT=csv"))  # eu's settings change meanwhile
    statuses = _drain(harness, harness.settings(), "eu", env)
    assert [s for s, _ in statuses] == ["error"], statuses
    message = statuses[0][1]
    assert "backfill bq was recorded with other settings than destination eu's now" in message, message
    assert "nothing was exported" in message
    assert not [n for n in harness.blobs() if n.startswith(f"{EU}/_backfill/bq/") and "/_manifests/" not in n]
    # the inline run says the same (one line, exit 1)
    again = harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                        "--end", "2026-11-28T12:20:00Z", "--types", "track", "--id", "bq",
                        "--now", AFTER_THREE, extra_env=env)
    ok(again, 1)
    assert "recipe" in again.stderr and len(again.stderr.splitlines()) == 1, again.stderr
    # settings back as recorded: it runs (here inline) in one recipe, and audits clean
    ok(add(harness, others["eu"], env))
    ok(harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                   "--end", "2026-11-28T12:20:00Z", "--types", "track", "--id", "bq",
                   "--now", AFTER_THREE, extra_env=env))
    assert f"{EU}/_backfill/bq/{KEY}.1.track.json" in harness.blobs()
    ok(harness.cli("verify", "--destination", "eu", "--backfill", "bq", extra_env=env))


def test_a_disabled_destination_is_not_queued_for_workers_that_drop_its_items(harness, others):
    env, _ = _eu_exported(harness, others)
    harness.env["EXPORT_QUEUE"] = f"q{uuid.uuid4().hex[:20]}"
    ok(harness.cli("rejected", "list", "--destination", "eu", extra_env=env))
    ok(harness.cli("destinations", "disable", "eu", extra_env=env))
    ok(add(harness, others["eu"], env, "EXPORT_FORMAT=json", "MAX_CALL_BYTES=200000"))
    for args in (("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z", "--id", "bd"),
                 ("rejected", "replay", "--id", "rd")):
        proc = harness.cli(*args, "--destination", "eu", "--queue", "--now", AFTER_THREE, extra_env=env)
        ok(proc, 1)
        assert proc.stderr.splitlines() == [
            "error: destination eu is disabled: its work items would be dropped; enable it "
            "(`destinations enable eu`) or run this without --queue"], proc.stderr
    store = StateStore(make_table_service(harness.azurite.connection_string), harness.table)
    try:
        assert [e["RowKey"] for e in store.rows("backfills")] == []  # nothing recorded
    finally:
        store.service.close()
    queue = WorkQueue.of(harness.settings())
    try:
        queue.ensure()
        assert queue.depth().messages == 0
    finally:
        queue.close()
    # inline, a disabled destination's backfill runs (the operator asked for it by name)
    ok(harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z", "--end",
                   "2026-11-28T12:10:00Z", "--id", "bd", "--now", AFTER_THREE, extra_env=env))


_recipes = st.dictionaries(st.sampled_from(["export_format", "gzip", "blob_path", "container", "max_call_bytes"]),
                           st.one_of(st.text(alphabet="abc x/.", max_size=8), st.integers(-(2**63), 2**63 - 1),
                                     st.booleans()))


@given(was=_recipes, now=_recipes, junk=st.text(max_size=30))
def test_the_refusal_names_each_setting_that_changed_and_reads_any_recorded_text(was, now, junk):
    """A recorded recipe is a row's text (a hand edit may be anything): the refusal's diff never
    raises, and names exactly the settings that differ."""
    import orjson

    said = recipe_diff(orjson.dumps(was).decode(), orjson.dumps(now).decode())
    changed = {k for k in was.keys() | now.keys() if was.get(k) != now.get(k)}
    assert {part.split(" ", 1)[0] for part in said.split(", ") if part} == changed
    assert isinstance(recipe_diff(junk, orjson.dumps(now).decode()), str)


def test_a_queued_replay_of_a_named_destination_reads_and_writes_only_its_own_dead_letters(harness, others):
    env, _ = _eu_exported(harness, others)
    default_before = _default_files(harness)
    harness.env["EXPORT_QUEUE"] = f"q{uuid.uuid4().hex[:20]}"
    ok(add(harness, others["eu"], env, "EXPORT_FORMAT=json", "MAX_CALL_BYTES=200000"))
    proc = harness.cli("rejected", "replay", "--destination", "eu", "--id", "rq", "--queue", "--now", AFTER_THREE,
                       extra_env=env)
    ok(proc)
    assert "enqueued eu backfill rq track 2026-11-28T12:10:00Z" in proc.stdout, proc.stdout
    statuses = _drain(harness, harness.settings(), "eu", env)
    assert statuses == [("eu", "exported")], statuses
    mine = {n: b for n, b in harness.blobs().items() if n.startswith(f"{EU}/_backfill/rq/")}
    check_container(mine, expected_ids={"big-eu"}, blob_path=f"{EU}/_backfill/rq")
    assert _default_files(harness) == default_before
    ok(harness.cli("verify", "--destination", "eu", "--backfill", "rq", extra_env=env))
    # default's replay of its own dead letter under the same id is another replay
    harness.env["MAX_CALL_BYTES"] = "200000"
    ok(harness.cli("rejected", "replay", "--id", "rq", "--now", AFTER_THREE, extra_env=env))
    theirs = {n: b for n, b in harness.blobs().items() if n.startswith("exports/segment/_backfill/rq/")}
    check_container(theirs, expected_ids={"big-default"}, blob_path="exports/segment/_backfill/rq")
    status = harness.cli("status", "eu", extra_env=env).stdout
    assert [ln.split()[:2] for ln in status.splitlines() if ln.startswith("rq ")] == [["rq", "replay"]], status


def test_verify_audits_a_backfill_where_it_was_written_after_its_destination_moved(harness, others):
    """A finished backfill of eu, then eu's export moved (a new BLOB_PATH): `verify --backfill`
    audits the backfill's recorded folder, not the folder the new settings would give it."""
    env, _ = _eu_exported(harness, others)
    ok(harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                   "--end", "2026-11-28T12:10:00Z", "--id", "b1", "--now", AFTER_THREE, extra_env=env))
    ok(add(harness, dataclasses.replace(others["eu"], blob_path="eu/moved"), env))
    proc = harness.cli("verify", "--destination", "eu", "--backfill", "b1", extra_env=env)
    ok(proc)
    assert proc.stdout.splitlines()[-1].startswith(f"verify eu backfill b1 in {EU}/_backfill/b1: "), proc.stdout
    # a backfill written to another container than the settings reach now: one line saying so
    proc = harness.cli("verify", "--destination", "eu", "--backfill", "b1",
                       extra_env={**env, "EU_SAS": others["us"].sas})
    ok(proc, 1)
    assert len(proc.stderr.splitlines()) == 1 and "backfill b1 was written to the container" in proc.stderr, \
        proc.stderr
    assert "sig=" not in proc.stderr


def test_a_hand_edited_definition_of_one_destination_does_not_stop_anothers_backfills(harness, others):
    """default's definition row made unreadable (a hand edit): it is default's problem; eu's
    backfills, replays, list and status read only eu's rows."""
    env, _ = _eu_exported(harness, others)
    ok(harness.cli("backfill", "--start", "2026-11-28T12:00:00Z", "--end", "2026-11-28T12:10:00Z",
                   "--types", "track", "--id", "b1", "--now", AFTER_THREE, extra_env=env))
    store = StateStore(make_table_service(harness.azurite.connection_string), harness.table)
    try:
        row = store.get_row("backfills", "default~b1")
        assert row is not None
        store.table.upsert_entity({**row, "start": "yesterday"})
    finally:
        store.service.close()
    ok(harness.cli("backfill", "--destination", "eu", "--start", "2026-11-28T12:00:00Z",
                   "--end", "2026-11-28T12:10:00Z", "--id", "b1", "--now", AFTER_THREE, extra_env=env))
    ok(harness.cli("rejected", "list", "--destination", "eu", extra_env=env))
    status = harness.cli("status", "eu", extra_env=env)
    ok(status)
    assert any(ln.startswith("b1 ") and ln.split()[-1] == "done" for ln in status.stdout.splitlines()), status.stdout
    # default's own commands name the row
    proc = harness.cli("rejected", "list", extra_env=env)
    ok(proc, 1)
    assert "row backfills/default~b1: start is not what the exporter writes" in proc.stderr, proc.stderr


def test_a_destination_with_ids_of_its_own_replays_up_to_where_its_own_export_stands(harness, others):
    # us has other ids (9001.42) than default: its live rows are 9001.42~us, not the pin's bare key
    env = env_of(others)
    ok(add(harness, others["us"], env, "EXPORT_FORMAT=csv"))
    us = others["us"]
    us.source.add(make_window_calls(W0, per_type={"track": 2}, seed=43))
    us.source.add([("track", "2026-11-28T12:14:00.000Z", _big("big-us", "2026-11-28T12:14:00.000Z"))])
    harness.env["EXPORT_START"] = "2026-11-28T12:00:00Z"
    ok(harness.cli("run", "--now", AFTER_THREE, extra_env=env))
    listed = harness.cli("rejected", "list", "--destination", "us", extra_env=env)
    assert "1 can be replayed (`rejected replay --destination us`)" in listed.stdout, listed.stdout
    assert "the cap is MAX_CALL_BYTES (65536 now, destination us's row); raise it, then `rejected replay " \
        "--destination us`" in listed.stdout
    ok(add(harness, us, env, "EXPORT_FORMAT=csv", "MAX_CALL_BYTES=200000"))
    proc = harness.cli("rejected", "replay", "--destination", "us", "--id", "r1", "--now", AFTER_THREE,
                       extra_env=env)
    ok(proc)
    assert "replay r1 done" in proc.stdout, proc.stdout
    mine = {n: b for n, b in harness.blobs(us.container).items() if n.startswith("_backfill/r1/")}
    check_container(mine, expected_ids={"big-us"}, blob_path="_backfill/r1", dest_key="9001.42")
