"""Storage failures become the exporter's errors in one place (issue 9, item 9).

A missing container is the same clear permanent error from a run as from ``check`` (it was a raw
``ResourceNotFoundError``, and ``metadata_of`` read it as "no blob"). An HTTP 400 from storage is a
configuration error, permanent: it must not look like an outage that the next run may heal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from hypothesis import given
from hypothesis import strategies as st

from shared.blob_store import BlobStore, make_container_client
from shared.errors import ExportError, StorageError, StoragePermissionError
from shared.state_store import StateStore, make_table_service
from tests.support.calls import make_window_calls
from tests.support.faulty_transport import FailingTransport, is_blob_commit
from tests.support.runs import committed, run_with, state_rows

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONTAINER_MISSING = (  # shared.azure_errors.CONTAINER_MISSING, spelled out: the user reads this
    "the destination container does not exist: create it, or fix BLOB_SAS_URL "
    "(or BLOB_ACCOUNT_URL/BLOB_CONTAINER)"
)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
NOW = "2026-11-28T12:11:01Z"


def test_a_missing_container_stops_the_run_with_the_message_check_gives(harness, azurite):
    harness.source.add(make_window_calls(W0, per_type={"track": 3}, seed=1))
    harness.env.update(START, BLOB_SAS_URL=azurite.sas_url("nosuchcontainer"))
    summary = run_with(harness, NOW)
    assert summary.error == CONTAINER_MISSING
    assert committed(state_rows(harness))["track"] == (0, W0)  # (empty types need no container)
    run = harness.cli("run", "--now", NOW)
    assert run.returncode == 1 and f"error: {CONTAINER_MISSING}" in run.stderr, run.stderr
    check = harness.cli("check")
    line = next(ln for ln in check.stdout.splitlines() if "destination container" in ln)
    assert line == f"FAIL  destination container: {CONTAINER_MISSING}"


def test_metadata_of_in_a_missing_container_is_that_error_not_no_blob(azurite):
    store = BlobStore(make_container_client(sas_url=azurite.sas_url("nosuchcontainer")))
    try:
        with pytest.raises(ExportError, match="container does not exist") as err:
            store.metadata_of("x/2184.13699.1.track.csv")
        assert not err.value.transient
    finally:
        store.close()


def test_metadata_of_a_missing_blob_is_none(azurite, container):
    store = BlobStore(make_container_client(sas_url=azurite.sas_url(container)))
    try:
        assert store.metadata_of("x/absent.csv") is None
    finally:
        store.close()


def test_a_blob_storage_400_is_permanent(azurite, container):
    store = BlobStore(make_container_client(sas_url=azurite.sas_url(container)))
    blob = store.container.get_blob_client("x")
    try:  # Azurite answers 400 for a metadata name that is not a C# identifier
        with pytest.raises(ExportError, match="HTTP 400") as err:
            store.call("cw", lambda: blob.upload_blob(b"x", metadata={"not valid": "1"}))
        assert not err.value.transient and "not an outage" in str(err.value)
    finally:
        store.close()


def test_a_table_storage_400_is_permanent(azurite, table_name):
    store = StateStore(make_table_service(azurite.connection_string), table_name)
    try:
        store.ensure_table()
        with pytest.raises(ExportError, match="HTTP 400") as err:  # a key over 1 KiB
            store.create("x" * 600, "track", W0)
        assert not err.value.transient
    finally:
        store.service.close()


def test_a_400_on_a_file_commit_stops_the_run_instead_of_waiting_for_the_next(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 3, "alias": 2}, seed=2))
    transport = FailingTransport(is_blob_commit, times=1, status=400)
    summary = run_with(harness, "2026-11-28T12:21:01Z", blob_transport=transport, **START)
    assert summary.error is not None and "HTTP 400" in summary.error, summary.error
    assert len(transport.fired) == 1  # not retried: the SDK does not retry a 400, nor does the run
    rows = committed(state_rows(harness))
    assert rows["track"] == (0, W0)  # the type that failed did not move
    assert rows["alias"] == (0, W0)  # and the run stopped there: a later type was not exported either
    assert all(end <= W0 + timedelta(minutes=10) for _, end in rows.values())


def _error(status: int, code: str) -> HttpResponseError:
    exc = HttpResponseError(message=f"HTTP {status}")
    exc.status_code = status
    exc.error_code = code
    return exc


@given(st.integers(min_value=400, max_value=599), st.sampled_from(["", "InvalidInput", "ServerBusy",
                                                                   "ContainerNotFound", "OutOfRangeInput"]))
def test_the_rule_4xx_is_a_setting_408_429_and_5xx_are_outages_401_403_are_permissions(status, code):
    from shared.azure_errors import classify
    from shared.errors import StorageConfigError

    denied = StoragePermissionError("denied")
    err = classify(_error(status, code), "blob", lambda exc: denied, {"ContainerNotFound": CONTAINER_MISSING})
    if status in (401, 403):
        assert err is denied
    elif code == "ContainerNotFound":
        assert isinstance(err, StorageConfigError) and str(err) == CONTAINER_MISSING
    elif status < 500 and status not in (408, 429):
        assert isinstance(err, StorageConfigError) and not err.transient
    else:
        assert isinstance(err, StorageError) and err.transient


# --- an unreachable store names its host and the setting to check (not urllib3's text) -----------

def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # nothing listens on it once closed
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TABLE_FIX = "check AzureWebJobsStorage (locally: is Azurite running? npm run azurite)"


def test_an_unreachable_table_service_names_its_host_and_azurite(harness):
    from shared.clients import build_clients, close_clients
    from shared.etl_client import RetryPolicy
    from shared.export import run_export

    port = _closed_port()
    conn = harness.azurite.connection_string.replace(f":{harness.azurite.table_port}/", f":{port}/")
    settings = harness.settings(AzureWebJobsStorage=conn, **START)
    clients = build_clients(settings, table_kwargs={"retry_total": 0},
                            etl_kwargs={"retry": RetryPolicy(attempts=1)})
    try:
        summary = run_export(settings, clients, datetime(2026, 11, 28, 12, 11, 1, tzinfo=UTC))
    finally:
        close_clients(clients)
    assert summary.error == f"table storage unreachable at 127.0.0.1:{port}: {TABLE_FIX}"


def test_an_unreachable_blob_service_names_its_host_never_the_sas(azurite, container):
    port = _closed_port()
    sas_url = azurite.sas_url(container).replace(f":{azurite.blob_port}/", f":{port}/")
    store = BlobStore(make_container_client(sas_url=sas_url, retry_total=0), "p", sas_url=sas_url)
    with pytest.raises(StorageError) as caught:
        store.metadata_of("p/x.csv")
    message = str(caught.value)
    assert message.startswith(f"blob storage unreachable at 127.0.0.1:{port}: check BLOB_SAS_URL")
    assert "sig=" not in message and "urllib3" not in message and caught.value.transient


_SECRET_CHARS = st.text(st.characters(blacklist_characters="/?#@[]\\", blacklist_categories=("Cs", "Cc")),
                        min_size=1, max_size=40)


@given(_SECRET_CHARS, st.text(max_size=80))
def test_host_of_never_shows_more_than_the_host(secret, anything):
    from shared.azure_errors import host_of

    url = f"https://user:{secret}@acct.blob.core.windows.net:8443/c/p?sv=1&sig={secret}"
    assert host_of(url) == "acct.blob.core.windows.net:8443"
    assert isinstance(host_of(anything), str)  # any text at all: an answer, never an exception
