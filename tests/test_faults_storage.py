"""Storage faults at the SDK's HTTP boundary: lost responses, 5xx, timeouts, refused SAS.

Lost responses: the transport lets the request reach Azurite (which applies it), then drops the
response; the SDK's own retry resends it and meets what the first attempt created (409/412).
That must count as success, never as a new position or a second file.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.blob_store import BLOCK_SIZE, RETRY_BACKOFF
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import (
    FailingTransport,
    LosingTransport,
    is_any_write,
    is_blob_commit,
    is_rejected_commit,
    is_table_conditional_write,
)
from tests.support.invariants import check_container, ids_of
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:21:01Z"  # windows 12:00 and 12:10 due


def _load(harness, bad_line=False):
    calls = make_window_calls(W0, per_type={"track": 6, "group": 2}, seed=1)
    calls += make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 4, "alias": 3}, seed=2)
    harness.source.add(calls)
    if bad_line:
        harness.source.add([("track", "2026-11-28T12:01:00.000Z", b'{"type":"track"')])
    return calls


def _assert_exactly_once(harness, calls, rejected=0):
    check_container(harness.blobs(), expected_ids=ids_of(calls), expected_rejected=rejected)
    assert committed(state_rows(harness))["track"] == (2, W0 + timedelta(minutes=20))
    assert all(r.pending_start is None for r in state_rows(harness).values())


@pytest.mark.parametrize("after", [0, 2])
def test_a_lost_put_blob_response_is_recognised_as_our_commit_not_a_new_position(harness, after):
    calls = _load(harness)
    lose = LosingTransport(is_blob_commit, after=after)
    summary = run_with(harness, NOW, blob_transport=lose, **START)
    assert summary.ok, summary.error
    assert len(lose.fired) == 1 and lose.fired[0].status == 201  # Azurite did create it
    assert lose.retried_statuses and lose.retried_statuses[0] in (409, 412)  # what Azurite answers
    assert [f.created for f in summary.files].count(False) == 1  # the resent commit found ours
    _assert_exactly_once(harness, calls)


def test_a_lost_commit_block_list_response_is_recognised_as_our_commit(harness):
    # A file larger than one staged block (BLOCK_SIZE) is committed with Put Block List.
    big = make_window_calls(W0, per_type={"track": BLOCK_SIZE // 28_000 + 30}, seed=3, nasty=False)
    for i, call in enumerate(big):
        call["properties"]["padding"] = f"{i:06d}" + "x" * 28_000
    harness.source.add(big)
    lose = LosingTransport(is_blob_commit)
    summary = run_with(harness, "2026-11-28T12:11:01Z", blob_transport=lose, **START)
    assert summary.ok, summary.error
    assert "comp=blocklist" in lose.fired[0].url and lose.fired[0].status == 201
    assert lose.retried_statuses[0] in (409, 412)
    (f,) = summary.files
    assert not f.created and f.bytes > BLOCK_SIZE
    check_container(harness.blobs(), expected_ids=ids_of(big))


def test_a_lost_dead_letter_commit_response_is_recognised(harness):
    calls = _load(harness, bad_line=True)
    lose = LosingTransport(is_rejected_commit)
    summary = run_with(harness, NOW, blob_transport=lose, **START)
    assert summary.ok, summary.error
    assert len(lose.fired) == 1 and lose.retried_statuses[0] in (409, 412)
    assert summary.rejected == 1
    _assert_exactly_once(harness, calls, rejected=1)


@pytest.mark.parametrize("after", [0, 1, 4, 7])  # claims and commits of several units
def test_a_lost_conditional_state_write_response_is_recognised_as_ours(harness, after):
    calls = _load(harness)
    lose = LosingTransport(is_table_conditional_write, after=after)
    summary = run_with(harness, NOW, table_transport=lose, **START)
    assert summary.ok, summary.error
    assert len(lose.fired) == 1 and lose.fired[0].status in (200, 204)
    assert lose.retried_statuses == [412]  # the resent If-Match write meets our own new etag
    assert not [u for u in summary.units if u.status == "busy"]
    _assert_exactly_once(harness, calls)


def test_blob_and_table_503s_and_timeouts_are_retried_by_the_sdk_and_the_run_succeeds_once(harness):
    calls = _load(harness)
    blob = FailingTransport(is_blob_commit, times=1, status=503)
    table = FailingTransport(is_any_write, times=2, status=503)
    summary = run_with(harness, NOW, blob_transport=blob, table_transport=table, **START)
    assert summary.ok, summary.error
    assert len(blob.fired) == 1 and len(table.fired) == 2
    _assert_exactly_once(harness, calls)


def test_storage_connect_timeouts_are_retried_by_the_sdk(harness):
    calls = _load(harness)
    blob = FailingTransport(is_any_write, times=1, after=1, timeout=True)
    table = FailingTransport(is_table_conditional_write, times=2, timeout=True)
    summary = run_with(harness, NOW, blob_transport=blob, table_transport=table, **START)
    assert summary.ok, summary.error
    assert len(blob.fired) == 1 and len(table.fired) == 2
    _assert_exactly_once(harness, calls)


def test_blob_retries_use_the_spelled_out_backoff_not_the_sdk_default_of_15_seconds(harness):
    import time

    calls = _load(harness)
    blob = FailingTransport(is_blob_commit, times=1)
    started = time.monotonic()
    assert run_with(harness, NOW, blob_transport=blob, **START).ok
    elapsed = time.monotonic() - started
    assert RETRY_BACKOFF - 1 <= elapsed < 10, elapsed
    _assert_exactly_once(harness, calls)


def test_blob_5xx_beyond_the_sdk_retries_fails_the_window_and_the_next_run_exports_it_once(harness):
    calls = _load(harness)
    # RETRY_TOTAL=5 resends: 6 answers of 503 for the very first commit spend them (about 40 s of
    # backoff with the production policy), so use a fast policy for this one test.
    from azure.storage.blob import ExponentialRetry

    fast = {"retry_policy": ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=2,
                                             random_jitter_range=0)}
    blob = FailingTransport(is_blob_commit, times=3)
    before = state_rows(harness)
    summary = run_with(harness, NOW, blob_transport=blob, blob_kwargs=fast, **START)
    assert not summary.ok
    failed = summary.failures
    assert failed and "blob storage failed: HTTP 503" in failed[0].error
    assert committed(state_rows(harness)).get(failed[0].call_type, (0, W0))[0] == \
        committed(before).get(failed[0].call_type, (0, W0))[0]
    assert run_with(harness, NOW, **START).ok
    _assert_exactly_once(harness, calls)


def _sas_case(harness, azurite, container, kind):
    if kind == "expired":
        return azurite.sas_url(container, expiry=datetime.now(UTC) - timedelta(minutes=1))
    if kind == "tampered":
        url = azurite.sas_url(container)
        head, sig = url.split("sig=")
        return f"{head}sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    return azurite.sas_url(container, permission=kind)


@pytest.mark.parametrize("kind, expect", [
    ("expired", "expired"),
    ("tampered", "tampered"),
    ("rl", "lacks the create and write permission"),
    ("cwl", "lacks the read permission"),
])
def test_a_refused_sas_is_a_permanent_clear_error_and_nothing_advances(harness, azurite, container, kind, expect):
    calls = _load(harness)
    assert run_with(harness, "2026-11-28T12:11:01Z", **START).ok  # the first window lands
    before_rows = state_rows(harness)
    before_blobs = harness.blobs()
    harness.env["BLOB_SAS_URL"] = _sas_case(harness, azurite, container, kind)
    summary = run_with(harness, NOW, **START)
    assert summary.error is not None and expect in summary.error, summary.error
    assert "BLOB_SAS_URL" in summary.error or "permission" in summary.error
    # Types with data do not move (a type without calls needs no blob access, so it may).
    with_data = ("track", "group", "alias")
    assert {t: v for t, v in committed(state_rows(harness)).items() if t in with_data} == \
        {t: v for t, v in committed(before_rows).items() if t in with_data}
    assert set(harness.blobs()) == set(before_blobs)
    harness.env["BLOB_SAS_URL"] = azurite.sas_url(container)
    assert run_with(harness, NOW, **START).ok
    check_container(harness.blobs(), expected_ids=ids_of(calls), before={
        n: (b.etag, b.last_modified) for n, b in before_blobs.items()})


@pytest.mark.parametrize("permission", ["rcl", "rwl"])
def test_create_or_write_alone_is_enough_because_every_write_is_create_only(harness, azurite, container,
                                                                           permission):
    calls = _load(harness)
    harness.env["BLOB_SAS_URL"] = azurite.sas_url(container, permission=permission)
    assert run_with(harness, NOW, **START).ok
    _assert_exactly_once(harness, calls)
