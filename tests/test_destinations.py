"""Named destinations (issue #13, item 1): rows in DESTINATIONS_TABLE beside the app's ``default``,
each exported by ``run`` in its own sequence, secrets as references, one bad destination never
stopping the others. Real Azurite, one real ETL emulator per destination, the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.server import EmulatorServer
from emulator.sources import StaticSource
from shared.calltypes import CALL_TYPES
from shared.destination_runs import TickOutcome, run_destinations
from shared.destinations import (
    ROW_PARTITION,
    add_destination,
    get_destination,
    load_destinations,
    open_store,
    parse_assignments,
)
from shared.errors import SettingsError
from shared.redact import install_log_redaction
from shared.secret_refs import KeyVaultReader, is_secret
from shared.sequence import Sequence
from shared.settings import PER_DESTINATION, SETTING
from shared.state_store import StateStore, make_table_service
from tests.conftest import ROOT
from tests.support.blobs import read_container
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of
from tests.support.key_vault import KeyVaultServer, StaticToken
from tests.support.leaks import assert_no_leak

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
W1 = W0 + timedelta(minutes=10)
START = "2026-11-28T12:00:00Z"
AFTER_ONE = "2026-11-28T12:11:01Z"
AFTER_TWO = "2026-11-28T12:21:01Z"
AFTER_THREE = "2026-11-28T12:31:01Z"


@dataclass
class Other:
    """A named destination under test: its own ETL emulator (own token) and place for files."""

    name: str
    etl: EmulatorServer
    source: StaticSource
    token: str
    container: str
    blob_path: str
    sas: str

    def add_args(self, token_ref: str, sas_ref: str, *extra: str) -> list[str]:
        path = [f"BLOB_PATH={self.blob_path}"] if self.blob_path else []
        return ["destinations", "add", self.name, f"ETL_API_ENDPOINT={self.etl.url}", f"ETL_API_TOKEN={token_ref}",
                f"BLOB_SAS_URL={sas_ref}", *path, f"EXPORT_START={START}", *extra]


@pytest.fixture
def others(harness) -> Iterator[dict[str, Other]]:
    """``eu``: the same ids (2184.13699) and the same container as ``default``, another folder;
    ``us``: other ids, another container."""
    us_container = f"t{uuid.uuid4().hex[:20]}"
    harness.azurite.create_container(us_container)
    with contextlib.ExitStack() as stack:
        made = {}
        for name, ids, container, path in (("eu", ("2184", "13699"), harness.container, "eu/segment"),
                                           ("us", ("9001", "42"), us_container, "")):
            source = StaticSource([])
            token = f"{name}-token-{uuid.uuid4().hex}"
            etl = stack.enter_context(EmulatorServer(source, token=token, integration_id=ids[0], action_id=ids[1]))
            made[name] = Other(name, etl, source, token, container, path, harness.azurite.sas_url(container))
        yield made


def env_of(others: dict[str, Other]) -> dict[str, str]:
    """The app settings the references point at, as the app (or local.settings.json) holds them."""
    out = {"EXPORT_START": START}
    for o in others.values():
        out[f"{o.name.upper()}_TOKEN"] = o.token
        out[f"{o.name.upper()}_SAS"] = o.sas
    return out


def add(harness, other: Other, env: dict[str, str], *extra: str):
    n = other.name.upper()
    extra = extra or ("EXPORT_FORMAT=json",)
    return harness.cli(*other.add_args(f"@env:{n}_TOKEN", f"@env:{n}_SAS", *extra), extra_env=env)


def ok(result, code: int = 0) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def store_of(harness) -> StateStore:
    return StateStore(make_table_service(harness.azurite.connection_string), harness.table)


def positions(harness, key: str) -> dict[str, int]:
    store = store_of(harness)
    try:
        return {t: s.position for t in CALL_TYPES if (s := store.get(key, t)) is not None}
    finally:
        store.service.close()


def secrets_of(harness, others: dict[str, Other]) -> list[str]:
    sigs = [parse_qs(urlsplit(s).query)["sig"][0] for s in [harness.env["BLOB_SAS_URL"]]
            + [o.sas for o in others.values()]]
    return [harness.env["ETL_API_TOKEN"], *[o.token for o in others.values()], *sigs]


def test_run_exports_every_destination_in_its_own_sequence_and_same_ids_never_share_state(harness, others):
    env = env_of(others)
    eu, us = others["eu"], others["us"]
    ok(add(harness, eu, env))
    refused = add(harness, us, env, "EXPORT_FORMAT=parquet", "EXPORT_FORMAT=csv")
    ok(refused, 2)
    assert refused.stderr.splitlines() == ["error: EXPORT_FORMAT is given twice: give each setting once"]
    store = open_store(harness.settings())
    assert [r.name for r in store.rows()] == ["eu"]  # nothing stored for us
    store.close()
    ok(add(harness, us, env, "EXPORT_FORMAT=parquet"))

    calls = {"default": make_window_calls(W0, seed=1) + make_window_calls(W1, seed=2),
             "eu": make_window_calls(W0, seed=3) + make_window_calls(W1, seed=4),
             "us": make_window_calls(W0, seed=5)}
    harness.source.add(calls["default"])
    eu.source.add(calls["eu"])
    us.source.add(calls["us"])
    result = harness.cli("run", "--now", AFTER_TWO, extra_env=env)
    ok(result)
    assert [ln for ln in result.stdout.splitlines() if ln.startswith("== ")] == [
        "== destination default", "== destination eu", "== destination us"]

    # Each destination: every call exactly once, positions gapless from 1, in its own place.
    def blobs(container: str, prefix: str) -> dict:
        with harness.azurite.blob_service() as svc:
            return {n: b for n, b in read_container(svc, container).items() if n.startswith(prefix)}

    check_container(blobs(harness.container, "exports/segment/"), expected_ids=ids_of(calls["default"]))
    check_container(blobs(eu.container, "eu/segment/"), expected_ids=ids_of(calls["eu"]), blob_path="eu/segment")
    check_container(blobs(us.container, ""), expected_ids=ids_of(calls["us"]), blob_path="", dest_key="9001.42")
    # Same ids, same table: two sequences, each from position 1, each with its own pin.
    assert positions(harness, "2184.13699") == {t: 2 for t in CALL_TYPES}
    assert positions(harness, Sequence("eu").state_key("2184", "13699")) == {t: 2 for t in CALL_TYPES}
    assert positions(harness, "9001.42~us") == {t: 1 for t in CALL_TYPES}
    store = store_of(harness)
    assert (store.get_pin("eu").key, store.get_pin("us").key, store.get_pin("default").key) == (
        "2184.13699", "9001.42", "2184.13699")
    store.service.close()

    # Nothing new: a second run writes nothing anywhere.
    again = harness.cli("run", "--now", AFTER_TWO, extra_env=env)
    ok(again)
    assert again.stdout.count("0 file(s), 0 call(s)") == 3

    status = harness.cli("status", extra_env=env)
    ok(status)
    heads = [ln for ln in status.stdout.splitlines() if ln.startswith("destination ")]
    assert [h.split(" -> ")[0] for h in heads] == [
        "destination default 2184.13699", "destination eu 2184.13699", "destination us 9001.42"]
    one = harness.cli("status", "us", extra_env=env)
    ok(one)
    assert [ln.split(" -> ")[0] for ln in one.stdout.splitlines() if ln.startswith("destination ")] == [
        "destination us 9001.42"]
    assert any(ln.split()[:2] == ["track", "1"] for ln in one.stdout.splitlines())
    check = harness.cli("check", extra_env=env)
    ok(check)
    assert check.stdout.count("PASS  ETL API") == 3
    listed = harness.cli("destinations", "list", extra_env=env)
    ok(listed)
    assert "ETL_API_TOKEN=@env:EU_TOKEN" in listed.stdout and "BLOB_SAS_URL=@env:US_SAS" in listed.stdout
    texts = [r.stdout + r.stderr for r in (result, again, status, one, check, listed)]
    assert_no_leak(texts, secrets_of(harness, others))


def test_a_bad_destination_fails_alone_and_the_others_export(harness, others):
    env = env_of(others)
    eu, us = others["eu"], others["us"]
    ok(add(harness, eu, env))
    # us points at an app setting that does not exist.
    ok(harness.cli(*us.add_args("@env:NO_SUCH_SETTING", "@env:US_SAS", "EXPORT_FORMAT=json"), extra_env=env))
    # A hand-edited row with a plain token: refused when loaded, the value never shown.
    with make_table_service(harness.azurite.connection_string) as svc:
        svc.get_table_client(harness.settings().destinations_table).upsert_entity({
            "PartitionKey": ROW_PARTITION, "RowKey": "hand", "Enabled": True,
            "ETL_API_ENDPOINT": eu.etl.url, "ETL_API_TOKEN": eu.token, "EXPORT_FORMAT": "csv",
            "BLOB_SAS_URL": "@env:EU_SAS"})
    harness.source.add(make_window_calls(W0, per_type={"track": 2}))
    eu.source.add(make_window_calls(W0, per_type={"page": 3}))
    us.source.add(make_window_calls(W0, per_type={"page": 3}))
    result = harness.cli("run", "--now", AFTER_ONE, extra_env=env)
    ok(result, 1)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("error: destination hand: ETL_API_TOKEN is a secret: a destination holds a "
                                "reference to it")
    assert errors[1].startswith("error: destination us: ETL_API_TOKEN=@env:NO_SUCH_SETTING: the app setting "
                                "NO_SUCH_SETTING is not set")
    assert set(harness.data_blobs()) == {"exports/segment/2184.13699.1.track.csv",
                                         "eu/segment/2184.13699.1.page.json"}
    assert positions(harness, "9001.42~us") == {}
    check = harness.cli("check", extra_env=env)
    ok(check, 1)
    assert "== destination us\nFAIL  settings: destination us: ETL_API_TOKEN=@env:NO_SUCH_SETTING" in check.stdout
    one = harness.cli("check", "eu", extra_env=env)
    ok(one)
    assert "==" not in one.stdout or "== destination eu" in one.stdout
    # eu's token revoked: the failed check names what to fix, the app setting its reference names.
    revoked = harness.cli("check", "eu", extra_env={**env, "EU_TOKEN": "eu-revoked-0123456789abcdef"})
    ok(revoked, 1)
    (token_line,) = [ln for ln in revoked.stdout.splitlines() if ln.startswith("FAIL") and "ETL_API_TOKEN" in ln]
    assert token_line.endswith("(for eu: ETL_API_TOKEN is @env:EU_TOKEN)"), token_line
    status = harness.cli("status", extra_env=env)
    ok(status, 1)
    assert "destination hand: not runnable" in status.stdout
    texts = [r.stdout + r.stderr for r in (result, check, one, revoked, status)]
    assert_no_leak(texts, secrets_of(harness, others))


def test_disable_enable_remove_and_add_again_keep_state_and_files(harness, others):
    env = env_of(others)
    eu = others["eu"]
    del others["us"]
    ok(add(harness, eu, env))
    eu.source.add(make_window_calls(W0, per_type={"track": 2}))
    ok(harness.cli("run", "--now", AFTER_ONE, extra_env=env))
    key = Sequence("eu").state_key("2184", "13699")
    assert positions(harness, key)["track"] == 1

    ok(harness.cli("destinations", "disable", "eu", extra_env=env))
    eu.source.add(make_window_calls(W1, per_type={"track": 2}, seed=9))
    result = harness.cli("run", "--now", AFTER_TWO, extra_env=env)
    ok(result)
    assert "== destination eu" not in result.stdout
    assert positions(harness, key)["track"] == 1
    status = harness.cli("status", extra_env=env)
    assert "destination eu 2184.13699 (disabled) ->" in status.stdout
    listed = harness.cli("destinations", "list", extra_env=env)
    assert any(ln.split()[:2] == ["eu", "no"] for ln in listed.stdout.splitlines())
    # Adding it again while disabled replaces its settings only: still disabled, same state.
    replaced = add(harness, eu, env, "EXPORT_FORMAT=json", "SETTLE_SECONDS=30")
    ok(replaced)
    assert replaced.stdout.startswith("destination eu replaced (its state stays)")
    # one setting alone is not a change of that setting: the row is replaced whole, and it says so
    partial = harness.cli("destinations", "add", "eu", "MAX_CALL_BYTES=200000", extra_env=env)
    ok(partial, 2)
    assert partial.stderr.startswith("error: ETL_API_ENDPOINT is not set") and partial.stderr.rstrip().endswith(
        "(destinations add replaces all of eu's settings: repeat the others from 'destinations list')")
    listed = harness.cli("destinations", "list", extra_env=env)
    assert any(ln.split()[:2] == ["eu", "no"] and "SETTLE_SECONDS=30" in ln for ln in listed.stdout.splitlines())
    assert positions(harness, key)["track"] == 1

    ok(harness.cli("destinations", "enable", "eu", extra_env=env))
    ok(harness.cli("run", "--now", AFTER_TWO, extra_env=env))
    assert positions(harness, key)["track"] == 2

    ok(harness.cli("destinations", "remove", "eu", extra_env=env))
    eu.source.add(make_window_calls(W0 + timedelta(minutes=20), per_type={"track": 1}, seed=11))
    result = harness.cli("run", "--now", AFTER_THREE, extra_env=env)
    ok(result)
    assert "== destination" not in result.stdout  # default alone: today's output
    assert positions(harness, key)["track"] == 2  # state stays
    assert "eu/segment/2184.13699.2.track.json" in harness.data_blobs()  # files stay

    # Adding the name again (another setting) goes on from its state, never from position 1.
    ok(add(harness, eu, env, "EXPORT_FORMAT=json", "MAX_FILE_ROWS=1000"))
    ok(harness.cli("run", "--now", AFTER_THREE, extra_env=env))
    assert positions(harness, key)["track"] == 3
    assert "eu/segment/2184.13699.3.track.json" in harness.data_blobs()


def test_default_cannot_be_added_disabled_or_removed_and_unknown_names_are_one_line(harness):
    for args in (("add", "default", "EXPORT_FORMAT=csv"), ("disable", "default"), ("remove", "default")):
        result = harness.cli("destinations", *args)
        ok(result, 2)
        assert result.stderr.splitlines() == [
            f"error: 'default' is the destination the app settings describe: it cannot be "
            f"{ {'add': 'added', 'disable': 'disabled', 'remove': 'removed'}[args[0]] } here; change the app "
            "settings instead"]
    for args in (("disable", "nope"), ("enable", "nope"), ("remove", "nope")):
        result = harness.cli("destinations", *args)
        ok(result, 2)
        assert result.stderr.splitlines() == ["error: there is no destination 'nope': 'destinations list' shows them"]
    result = harness.cli("destinations", "add", "Bad_Name", "EXPORT_FORMAT=csv")
    ok(result, 2)
    assert len(result.stderr.splitlines()) == 1 and "destination name 'Bad_Name'" in result.stderr
    for args in (("status", "nope"), ("check", "nope"), ("verify", "--destination", "nope")):
        result = harness.cli(*args)
        ok(result, 2)  # an unknown name is a usage error, whichever command names it
        assert result.stderr.splitlines()[-1].startswith("error: there is no destination 'nope'"), args


def test_the_app_wide_settings_are_refused_in_a_destination(harness):
    for name in sorted(set(SETTING) - set(PER_DESTINATION)):
        with pytest.raises(SettingsError, match=f"^{name} is an app-wide setting"):
            parse_assignments([f"{name}=x"])
    with pytest.raises(SettingsError, match="is an app-wide setting"):
        harness.settings().for_destination({"STATE_TABLE": "other"})


def test_a_missing_setting_takes_its_default_never_the_apps_value(harness, others):
    eu = others["eu"]
    app = harness.settings(SETTLE_SECONDS="900", BLOB_PATH="app/path", MAX_FILE_ROWS="7")
    dest = app.for_destination({"ETL_API_ENDPOINT": eu.etl.url, "ETL_API_TOKEN": eu.token, "EXPORT_FORMAT": "json",
                                "BLOB_SAS_URL": eu.sas})
    assert (dest.settle_seconds, dest.blob_path, dest.max_file_rows) == (60, "", 1_000_000)
    # The app-wide ones are the app's.
    assert (dest.state_table, dest.run_budget_seconds, dest.storage_connection) == (
        app.state_table, app.run_budget_seconds, app.storage_connection)
    with pytest.raises(SettingsError, match=r"^ETL_API_TOKEN is not set"):
        app.for_destination({"ETL_API_ENDPOINT": eu.etl.url, "EXPORT_FORMAT": "json", "BLOB_SAS_URL": eu.sas})


def test_a_named_destination_with_other_ids_than_the_defaults_unpinned_rows_is_pinned_not_refused(harness, others):
    """Regression: the legacy adoption of unpinned rows applied to every name, so a named
    destination with other ids than the default's legacy rows was refused as a changed destination."""
    harness.source.add(make_window_calls(W0, per_type={"track": 1}))
    assert harness.run(AFTER_ONE, EXPORT_START=START).ok
    store = store_of(harness)
    store.table.delete_entity("destinations", "default")  # rows of a version from before the pin
    store.service.close()
    us = others["us"]
    us.source.add(make_window_calls(W0, per_type={"page": 2}))
    app = harness.settings()
    add_destination(app, "us", [f"ETL_API_ENDPOINT={us.etl.url}", "ETL_API_TOKEN=@env:US_TOKEN",
                                "BLOB_SAS_URL=@env:US_SAS", "EXPORT_FORMAT=csv", f"EXPORT_START={START}"],
                    store=open_store(app))
    runs = run_destinations(app, datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC), env=env_of(others))
    assert TickOutcome(runs).ok, [r.failure() for r in runs if not r.ok]
    assert positions(harness, "9001.42~us") == {**{t: 0 for t in CALL_TYPES}, "page": 1}


# -- @kv: references, read from a Key Vault over https ---------------------------------------------

def test_kv_references_resolve_through_the_key_vault_cached_and_missing_ones_fail_alone(harness, others, caplog):
    eu, us = others["eu"], others["us"]
    app = harness.settings()
    store = open_store(app)
    add_destination(app, "eu", [f"ETL_API_ENDPOINT={eu.etl.url}", "ETL_API_TOKEN=@kv:eu-etl-token",
                                "BLOB_SAS_URL=@kv:eu-sas", "BLOB_PATH=eu", "EXPORT_FORMAT=json",
                                f"EXPORT_START={START}"], store=store)
    add_destination(app, "us", [f"ETL_API_ENDPOINT={us.etl.url}", "ETL_API_TOKEN=@kv:not-there",
                                "BLOB_SAS_URL=@env:US_SAS", "EXPORT_FORMAT=csv"], store=store)
    eu.source.add(make_window_calls(W0, per_type={"identify": 2}))
    install_log_redaction()  # as the entry points (timer, CLI) do
    caplog.set_level(logging.DEBUG)
    with KeyVaultServer({"eu-etl-token": eu.token, "eu-sas": eu.sas}) as kv:
        clock = itertools.count(0.0, 100.0)  # each read of the clock moves it 100 s
        vault = KeyVaultReader(kv.url, StaticToken(), client_kwargs=kv.client_kwargs(), clock=lambda: next(clock))
        loaded = {d.name: d for d in load_destinations(app, env=env_of(others), vault=vault)}
        assert loaded["eu"].settings is not None and loaded["eu"].settings.etl_api_token == eu.token
        assert loaded["us"].settings is None
        assert loaded["us"].error == ("destination us: ETL_API_TOKEN=@kv:not-there: no such secret in the Key "
                                      "Vault (KEY_VAULT_URL): create it or fix the reference")
        fetched = len(kv.fetches)
        get_destination(app, "eu", env=env_of(others), vault=vault)  # within the cache time
        assert len(kv.fetches) == fetched
        for _ in range(3):  # past it: read again (a rotated secret shows up)
            get_destination(app, "eu", env=env_of(others), vault=vault)
        assert len(kv.fetches) > fetched

        runs = run_destinations(app, datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC), env=env_of(others),
                                vault=vault)
    by_name = {r.name: r for r in runs}
    assert by_name["default"].ok and by_name["eu"].ok and not by_name["us"].ok
    assert "eu/2184.13699.1.identify.json" in harness.data_blobs()
    texts = [r.failure() for r in runs if not r.ok] + [r.getMessage() for r in caplog.records]
    assert_no_leak(texts, secrets_of(harness, others))


def test_many_destinations_read_their_key_vault_secrets_a_few_at_once_in_order(harness, others):
    app = harness.settings()
    store = open_store(app)
    names = [f"d{i}" for i in range(6)]
    for name in reversed(names):  # stored in any order, loaded by name
        add_destination(app, name, [f"ETL_API_ENDPOINT={others['eu'].etl.url}", f"ETL_API_TOKEN=@kv:{name}-token",
                                    f"BLOB_SAS_URL=@kv:{name}-sas", f"BLOB_PATH={name}", "EXPORT_FORMAT=csv"],
                        store=store)
    secrets = {f"{n}-token": f"token-of-{n}-0123456789" for n in names}
    secrets |= {f"{n}-sas": harness.azurite.sas_url(harness.container) for n in names}
    del secrets["d3-sas"]
    with KeyVaultServer(secrets, gather=4) as kv:
        vault = KeyVaultReader(kv.url, StaticToken(), client_kwargs=kv.client_kwargs())
        loaded = load_destinations(app, env=env_of(others), vault=vault)
    assert kv.most_at_once >= 4  # not one row after the other
    assert [d.name for d in loaded] == ["default", *names]
    for d in loaded[1:]:  # each row its own secrets, whichever thread read them
        if d.name == "d3":
            assert d.settings is None and "BLOB_SAS_URL=@kv:d3-sas: no such secret" in (d.error or "")
        else:
            assert d.settings is not None and d.settings.etl_api_token == f"token-of-{d.name}-0123456789"
            assert d.settings.blob_path == d.name


def test_a_vault_that_does_not_answer_for_one_row_fails_that_row_alone(harness, others, monkeypatch):
    """A read the vault never answers held load_destinations (every destination of the tick,
    default's included) for azure-core's default read timeout of 300 s, per retry: past the
    function's timeout. The reader has its own short timeouts: that row fails, the rest go on."""
    import shared.secret_refs as secret_refs

    monkeypatch.setattr(secret_refs, "VAULT_READ_TIMEOUT", 1.0)
    app = harness.settings()
    store = open_store(app)
    for name in ("d0", "d1"):
        add_destination(app, name, [f"ETL_API_ENDPOINT={others['eu'].etl.url}", f"ETL_API_TOKEN=@kv:{name}-token",
                                    "BLOB_SAS_URL=@env:EU_SAS", f"BLOB_PATH={name}", "EXPORT_FORMAT=csv"],
                        store=store)
    secrets = {"d0-token": "token-of-d0-0123456789", "d1-token": "token-of-d1-0123456789"}
    with KeyVaultServer(secrets, hang=frozenset({"d1-token"})) as kv:
        kwargs = {k: v for k, v in kv.client_kwargs().items() if k != "retry_total"}
        vault = KeyVaultReader(kv.url, StaticToken(), client_kwargs=kwargs)
        loaded = {d.name: d for d in load_destinations(app, env=env_of(others), vault=vault)}
    assert loaded["d0"].settings is not None and loaded["d0"].settings.etl_api_token == "token-of-d0-0123456789"
    assert loaded["d1"].settings is None
    assert loaded["d1"].error == ("destination d1: ETL_API_TOKEN=@kv:d1-token: the Key Vault could not be read "
                                  "(ServiceResponseTimeoutError): check KEY_VAULT_URL and that the vault is reachable")


def test_kv_without_key_vault_url_is_a_clear_error(harness, others):
    app = harness.settings()
    add_destination(app, "eu", [f"ETL_API_ENDPOINT={others['eu'].etl.url}", "ETL_API_TOKEN=@kv:x",
                                "BLOB_SAS_URL=@env:EU_SAS", "EXPORT_FORMAT=csv"], store=open_store(app))
    (_, eu) = load_destinations(app, env=env_of(others))
    assert eu.error == ("destination eu: ETL_API_TOKEN=@kv:x: KEY_VAULT_URL is not set: set it to the app's Key "
                        "Vault (https://<vault>.vault.azure.net/) or use @env:")


# -- destinations add: any SETTING=VALUE words, one clear error and nothing stored, or a valid row ----

VALID = {
    "ETL_API_ENDPOINT": "https://etl.example.com",
    "ETL_API_TOKEN": "@env:EU_TOKEN",
    "EXPORT_FORMAT": "csv",
    "BLOB_SAS_URL": "@kv:eu-sas",
}
PLAIN_SECRET = "plain-secret-value-that-must-never-show"

names = st.sampled_from([*PER_DESTINATION, "STATE_TABLE", "RUN_BUDGET_SECONDS", "AzureWebJobsStorage", "NOPE",
                         "export_format", ""])
values = st.one_of(
    st.sampled_from(["csv", "json", "parquet", "xml", "gzip", "zstd", "0", "-1", "99999999999", "true", "maybe",
                     "https://etl.example.com", "http://etl.example.com", "http://127.0.0.1:9", "@env:X",
                     "@env:", "@kv:a-b", "@kv:a_b", "@vault:x", PLAIN_SECRET, "2026-01-01T00:00:00Z", "a/../b",
                     "https://acct.blob.core.windows.net", " ", "\n"]),
    st.text(max_size=20),
)
words = st.one_of(st.tuples(names, values).map(lambda p: f"{p[0]}={p[1]}"), st.text(max_size=30))
_counter = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(words, max_size=4), base=st.booleans())
def test_destinations_add_either_stores_a_valid_row_or_stores_nothing_with_one_clear_line(harness, extra, base):
    app = harness.settings()
    store = open_store(app)
    name = f"h{next(_counter)}"
    pairs = ([f"{k}={v}" for k, v in VALID.items()] if base else []) + extra
    try:
        try:
            add_destination(app, name, pairs, store=store)
        except SettingsError as exc:
            message = str(exc)
            assert message and "\n" not in message and len(message) < 400
            # a secret setting's value is never repeated; another setting's may be (EXPORT_START=... is
            # not an RFC 3339 time), so the plain secret counts only where no such setting holds it
            elsewhere = any(not is_secret(k.strip()) and PLAIN_SECRET in v
                            for k, _, v in (p.partition("=") for p in pairs))
            assert elsewhere or PLAIN_SECRET not in message, message
            assert store.get(name) is None  # nothing stored
            return
        row = store.get(name)
        assert row is not None and row.enabled
        assert set(row.values) <= set(PER_DESTINATION)
        for setting in ("ETL_API_TOKEN", "BLOB_SAS_URL"):
            assert row.values.get(setting, "@").startswith("@")  # only references are ever stored
        assert PLAIN_SECRET not in "".join(row.values.get(s, "") for s in ("ETL_API_TOKEN", "BLOB_SAS_URL"))
    finally:
        store.close()


def test_the_timer_runs_every_enabled_destination_and_fails_naming_the_failed_one(harness, others, monkeypatch):
    from shared.summary import RunFailed
    from shared.timer import run_tick

    eu, us = others["eu"], others["us"]
    for key, value in env_of(others).items():
        monkeypatch.setenv(key, value)
    app = harness.settings()
    store = open_store(app)
    for other, fmt in ((eu, "json"), (us, "csv")):
        add_destination(app, other.name, other.add_args(f"@env:{other.name.upper()}_TOKEN",
                                                        f"@env:{other.name.upper()}_SAS", f"EXPORT_FORMAT={fmt}")[3:],
                        store=store)
    harness.source.add(make_window_calls(W0, per_type={"alias": 1}))
    eu.source.add(make_window_calls(W0, per_type={"alias": 2}))
    us.source.add(make_window_calls(W0, per_type={"alias": 3}))
    outcome = run_tick(datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC), harness.settings(EXPORT_START=START))
    assert outcome.ok and [r.name for r in outcome.runs] == ["default", "eu", "us"]
    assert (outcome.rows, len(outcome.files)) == (6, 3)

    monkeypatch.setenv("EU_TOKEN", "a-wrong-token-0123456789")
    eu.source.add(make_window_calls(W1, per_type={"alias": 1}, seed=3))
    us.source.add(make_window_calls(W1, per_type={"alias": 1}, seed=4))
    with pytest.raises(RunFailed) as failed:
        run_tick(datetime(2026, 11, 28, 12, 21, 1, tzinfo=UTC), harness.settings(EXPORT_START=START))
    message = str(failed.value)
    assert message.startswith("destination eu: ") and "ETL_API_TOKEN" in message and "destination us" not in message
    assert "a-wrong-token-0123456789" not in message
    assert positions(harness, "9001.42~us")["alias"] == 2  # us went on after eu failed
    assert positions(harness, Sequence("eu").state_key("2184", "13699"))["alias"] == 1


def test_two_destinations_with_the_same_ids_writing_one_folder_stop_the_second_and_lose_nothing(harness, others):
    """An operator's mistake (same ids, same container, same BLOB_PATH): the file names collide; the
    second destination stops on the blob in the way, the first one's files stay untouched."""
    eu = others["eu"]
    app = harness.settings()
    add_destination(app, "eu", [f"ETL_API_ENDPOINT={eu.etl.url}", "ETL_API_TOKEN=@env:EU_TOKEN",
                                "BLOB_SAS_URL=@env:EU_SAS", "BLOB_PATH=exports/segment", "EXPORT_FORMAT=csv",
                                f"EXPORT_START={START}"], store=open_store(app))
    harness.source.add(make_window_calls(W0, per_type={"track": 2}, seed=1))
    eu.source.add(make_window_calls(W0, per_type={"track": 3}, seed=2))
    runs = {r.name: r for r in run_destinations(harness.settings(EXPORT_START=START),
                                                datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC),
                                                env=env_of(others))}
    assert runs["default"].ok and not runs["eu"].ok
    assert "exports/segment/2184.13699.1.track.csv" in runs["eu"].failure()
    (blob,) = harness.data_blobs().values()
    assert blob.data.count(b"\r\n") == 3  # the default's header + 2 calls, untouched
    assert positions(harness, Sequence("eu").state_key("2184", "13699"))["track"] == 0


def test_a_tick_shares_one_run_budget_between_destinations():
    from shared.destination_runs import budget_share

    assert budget_share(480, 3) == 160  # three destinations to go: a third each
    assert budget_share(400, 2) == 200  # the first finished early: the rest share what it left
    assert budget_share(0.5, 1) == 1 and budget_share(-5, 2) == 1  # never nothing: a unit may start


def test_every_log_line_of_a_destinations_run_names_it(harness, others):
    from shared.telemetry import LogContextFilter

    eu = others["eu"]
    app = harness.settings()
    add_destination(app, "eu", [f"ETL_API_ENDPOINT={eu.etl.url}", "ETL_API_TOKEN=@env:EU_TOKEN",
                                "BLOB_SAS_URL=@env:EU_SAS", "BLOB_PATH=eu", "EXPORT_FORMAT=csv",
                                f"EXPORT_START={START}"], store=open_store(app))
    eu.source.add(make_window_calls(W0, per_type={"group": 1}))

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    handler.addFilter(LogContextFilter())
    logger = logging.getLogger("shared")
    logger.addHandler(handler)
    saved = logger.level
    logger.setLevel(logging.INFO)
    try:
        runs = run_destinations(harness.settings(EXPORT_START=START), datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC),
                                env=env_of(others))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
    assert all(r.ok for r in runs)
    started = [r for r in records if r.getMessage().startswith("export run ")]
    assert [getattr(r, "destination", None) for r in started] == ["default", "eu"]


def test_a_disabled_destinations_problem_is_shown_but_fails_status_and_check_only_when_named(harness, others):
    env = env_of(others)
    us = others["us"]
    ok(harness.cli(*us.add_args("@env:NO_SUCH_SETTING", "@env:US_SAS", "EXPORT_FORMAT=csv"), extra_env=env))
    ok(harness.cli("destinations", "disable", "us", extra_env=env))
    status = harness.cli("status", extra_env=env)
    ok(status)
    assert "destination us (disabled): ETL_API_TOKEN=@env:NO_SUCH_SETTING: the app setting NO_SUCH_SETTING is " \
           "not set" in status.stdout
    check = harness.cli("check", extra_env=env)
    ok(check)
    assert "== destination us (disabled)\nFAIL  settings: destination us: ETL_API_TOKEN=@env:NO_SUCH_SETTING" \
        in check.stdout
    ok(harness.cli("check", "us", extra_env=env), 1)
    ok(harness.cli("status", "us", extra_env=env), 1)
    ok(harness.cli("run", "--now", AFTER_ONE, extra_env=env))  # a disabled destination is not run


def test_plan_and_work_read_references_from_the_settings_file_as_run_does(harness, others, tmp_path):
    """`@env:` references resolve from local.settings.json Values in plan and in the spawned work
    processes too (func makes the Values environment variables; so does the CLI)."""
    eu = others["eu"]
    ok(add(harness, eu, env_of(others)))
    values = {**harness.env, **env_of({"eu": eu})}
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    eu.source.add(make_window_calls(W0, seed=3))
    # Only the file holds the references' values: the environment has none of the app settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_") and k not in values}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", "--settings", str(path), *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    planned = cli("plan", "--now", AFTER_ONE)
    ok(planned)
    assert "eu" in planned.stdout and "not set" not in planned.stdout + planned.stderr
    worked = cli("work", "--processes", "1", "--idle-exit", "2")
    ok(worked)
    assert "dropped" not in worked.stderr
    assert positions(harness, "2184.13699~eu") == {t: 1 for t in CALL_TYPES}
