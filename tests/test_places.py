"""Two destinations in one folder, or one inside the other's: ``check`` fails (beside a disabled
one it warns); the rule itself (shared/places.py) as a property."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from shared.places import overlaps
from shared.settings import Settings
from tests.test_destinations import add, env_of, ok
from tests.test_destinations import others as others  # the fixture

# Settings register their secrets with the process's redaction: a short one would be scrubbed from
# every later test's output (a one-letter signature turned "expires" into "eREDACTEDpires").
SIG = "places-test-signature-0123456789abcdef"
BASE = {"ETL_API_ENDPOINT": "https://etl.example.com", "ETL_API_TOKEN": "t" * 20,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "EXPORT_FORMAT": "csv"}


def _settings(container: str, folder: str, *, account: bool = False) -> Settings:
    if account:  # the same container reached with the managed identity is the same place
        return Settings.from_env({**BASE, "BLOB_ACCOUNT_URL": "https://acct.blob.core.windows.net",
                                  "BLOB_CONTAINER": container, "BLOB_PATH": folder})
    sas = f"https://ACCT.blob.core.windows.net:443/{container}?sp=rcwl&sig={SIG}"
    return Settings.from_env({**BASE, "BLOB_SAS_URL": sas, "BLOB_PATH": folder})


_FOLDER = st.lists(st.sampled_from(["a", "b", "ab", "_backfill"]), max_size=3).map("/".join)


@given(places=st.lists(st.tuples(st.sampled_from(["c1x", "c2x"]), _FOLDER, st.booleans()), min_size=2, max_size=5))
def test_an_overlap_is_seen_from_both_sides_and_only_within_a_container(places):
    dests = [(f"d{i}", _settings(c, f, account=a)) for i, (c, f, a) in enumerate(places)]
    found = {n: {other for other, _ in overlaps(n, dests)} for n, _ in dests}
    for i, (c, f, _) in enumerate(places):
        for j, (c2, f2, _) in enumerate(places):
            if i == j:
                continue
            nested = f == f2 or f == "" or f2 == "" or f.startswith(f2 + "/") or f2.startswith(f + "/")
            assert (f"d{j}" in found[f"d{i}"]) == (c == c2 and nested), (places, found)


def test_sibling_folders_and_prefixes_that_are_not_folders_do_not_overlap():
    dests = [("a", _settings("cont", "exports")), ("b", _settings("cont", "exports2")),
             ("c", _settings("cont", "other/exports"))]
    assert [overlaps(n, dests) for n, _ in dests] == [[], [], []]


def test_check_fails_for_two_destinations_in_one_folder_and_warns_beside_a_disabled_one(harness, others):
    env = env_of(others)
    same = dataclasses.replace(others["eu"], blob_path="exports/segment")  # default's folder, same container
    ok(add(harness, same, env))
    result = harness.cli("check", extra_env=env)
    ok(result, 1)
    lines = [ln for ln in result.stdout.splitlines() if "  folder: " in ln]
    assert lines == [
        "FAIL  folder: writes into the same folder exports/segment as destination eu (same container): give each "
        "destination a folder of its own, beside the others' (BLOB_PATH); with the same ids they would write the "
        "same file names, and verify calls each one's files foreign to the other",
        "FAIL  folder: writes into the same folder exports/segment as destination default (same container): give "
        "each destination a folder of its own, beside the others' (BLOB_PATH); with the same ids they would write "
        "the same file names, and verify calls each one's files foreign to the other"], result.stdout
    named = harness.cli("check", "eu", extra_env=env)  # checked alone, it is still compared with the others
    ok(named, 1)
    assert "FAIL  folder: writes into the same folder exports/segment as destination default" in named.stdout
    ok(harness.cli("destinations", "disable", "eu", extra_env=env))
    result = harness.cli("check", extra_env=env)
    ok(result)  # eu writes nothing now: default's line is a warning
    assert "WARN  folder: writes into the same folder exports/segment as destination eu" in result.stdout
    inside = dataclasses.replace(others["eu"], blob_path="exports/segment/eu")
    ok(add(harness, inside, env))
    ok(harness.cli("destinations", "enable", "eu", extra_env=env))
    result = harness.cli("check", extra_env=env)
    ok(result, 1)
    assert "FAIL  folder: holds destination eu's folder exports/segment/eu (same container)" in result.stdout
    assert "FAIL  folder: writes inside destination default's folder exports/segment (same container)" \
        in result.stdout
    beside = dataclasses.replace(others["eu"], blob_path="exports/segment-eu")
    ok(add(harness, beside, env))
    result = harness.cli("check", extra_env=env)
    ok(result)
    assert [ln for ln in result.stdout.splitlines() if "  folder: " in ln] == [
        "PASS  folder: its own: no other destination writes into it, inside it or around it"] * 2  # default, eu


def test_a_destination_whose_place_is_unknown_is_named_not_skipped(harness, others):
    """eu writes into default's folder, but its secret reference does not resolve at check time
    (a Key Vault hiccup, a setting not yet added): default's check cannot compare with it, and
    says so (a warning), rather than passing as if eu were elsewhere."""
    env = env_of(others)
    ok(add(harness, dataclasses.replace(others["eu"], blob_path="exports/segment"), env))
    unresolved = {k: v for k, v in env.items() if k != "EU_SAS"}
    for args in (("check", "default"), ("check",)):
        result = harness.cli(*args, extra_env=unresolved)
        lines = [ln for ln in result.stdout.splitlines() if "  folder: " in ln]
        assert lines == ["WARN  folder: not compared with destination eu: its settings do not resolve (`check eu` "
                         "says why); it may write into this folder once they do"], result.stdout
    ok(harness.cli("check", "default", extra_env=unresolved))  # a warning: default itself is fine
