"""Attacks on the scale-out work (issue 13): named destinations, plan, queue, work. Each test
stands for a finding; real Azurite queue, table and blob, real emulators, real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.queue import QueueClient

from shared.windows import WINDOW
from shared.work_queue import MAX_DEQUEUE_COUNT, WorkQueue
from shared.work_runner import worker_loop
from tests.support.work import Fleet

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = W0 + 3 * WINDOW + timedelta(seconds=61)


@pytest.fixture
def fleet(azurite, tmp_path):
    f = Fleet(azurite, tmp_path, ["default"], W0, windows=1, lease=2)
    yield f
    f.close()


def test_a_message_that_is_not_base64_goes_to_poison_and_work_exits(fleet, azurite):
    """A message put on the queue without base64 (Storage Explorer, `az storage message put`)
    must end in the poison queue after maxDequeueCount deliveries, as the host does, and not keep
    `work` busy forever."""
    queue = WorkQueue.of(fleet.app)
    queue.ensure()
    raw = QueueClient.from_connection_string(azurite.connection_string, fleet.queue)
    raw.send_message("{not base64 at all}")  # no encode policy: the text as is
    raw.close()
    import threading

    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(worker_loop(fleet.app, idle_exit=2)), daemon=True)
    t.start()
    t.join(timeout=(MAX_DEQUEUE_COUNT + 3) * (1 + 2) + 20)
    try:
        assert done == [0], "work never exited: the undecodable message keeps coming back"
        assert queue.depth().poison == 1
    finally:
        queue.close()


def test_the_queue_depth_reads_a_queue_holding_a_message_that_is_not_base64(fleet, azurite):
    """plan (its gauges) and status read the queue's depth: one hand-put message must not break them."""
    queue = WorkQueue.of(fleet.app)
    queue.ensure()
    for name in (fleet.queue, queue.poison_name):
        raw = QueueClient.from_connection_string(azurite.connection_string, name)
        raw.send_message("hand-put, not base64 ~~")
        raw.close()
    try:
        depth = queue.depth()
        assert (depth.messages, depth.poison) == (1, 1)
        assert [m.content for m in queue.poison_messages()] == ["hand-put, not base64 ~~"]
    finally:
        queue.close()


class _Listener:
    """A TCP port on loopback that counts the connections made to it and closes each at once
    (a Key Vault that cannot be read)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_work_item_does_not_resolve_the_secrets_of_other_destinations(fleet, azurite):
    """Isolation: a unit of destination ``default`` must not read destination ``other``'s Key
    Vault (every item waited for it, on every retry of an unreachable vault: one destination's
    vault slowed or stalled every destination's units)."""
    import uuid

    from shared.destinations import add_destination, open_store
    from shared.planning import plan
    from shared.settings import Settings
    from shared.worker import handle
    from tests.support.runs import FAST_ETL

    vault = _Listener()
    app = Settings.from_env({**fleet.dests["default"].env, "DESTINATIONS_TABLE": f"d{uuid.uuid4().hex[:20]}",
                             "KEY_VAULT_URL": f"https://127.0.0.1:{vault.port}/"})
    store = open_store(app)
    add_destination(app, "other", ["ETL_API_ENDPOINT=https://etl.example.com", "ETL_API_TOKEN=@kv:other-token",
                                   "BLOB_SAS_URL=@kv:other-sas", "EXPORT_FORMAT=csv"], store=store)
    store.close()
    queue = WorkQueue.of(app)
    queue.ensure()
    try:
        planned = plan(app, W0 + WINDOW + timedelta(seconds=61), destinations=[fleet.dests["default"].planned],
                       queue=queue)
        assert len(planned.items) == 6
        outcomes = []
        while (message := queue.receive(30)) is not None:
            outcomes.append(handle(message.content, app, queue=queue, clients_kwargs={"etl_kwargs": FAST_ETL}))
            queue.delete(message)
        assert len(outcomes) == 6 and all(o.item.destination == "default" for o in outcomes)
        assert not any(o.status == "dropped" for o in outcomes)
        assert vault.count == 0, f"default's units connected {vault.count} time(s) to other's Key Vault"
    finally:
        queue.close()
        vault.close()


def test_an_item_of_a_disabled_or_removed_destination_is_dropped_and_its_marker_released(fleet):
    """The worker's own lookup of the item's destination (the destinations table, not a list)."""
    import uuid

    from shared.destinations import add_destination, open_store, set_enabled
    from shared.planning import marker_store, plan
    from shared.sequence import Sequence
    from shared.settings import Settings
    from shared.worker import handle

    app = Settings.from_env({**fleet.dests["default"].env, "DESTINATIONS_TABLE": f"d{uuid.uuid4().hex[:20]}"})
    store = open_store(app)
    add_destination(app, "other", ["ETL_API_ENDPOINT=https://etl.example.com", "ETL_API_TOKEN=@env:NOPE",
                                   "BLOB_SAS_URL=@env:NOPE", "EXPORT_FORMAT=csv"], store=store)
    set_enabled("other", False, store=store)
    queue = WorkQueue.of(app)
    queue.ensure()
    markers = marker_store(app)
    try:
        # "other" planned while it ran (as the default's settings), then disabled; "gone" never was a row
        for name in ("other", "gone"):
            planned = plan(app, W0 + WINDOW + timedelta(seconds=61),
                           destinations=[(name, Sequence(name), fleet.dests["default"].settings)], queue=queue)
            assert len(planned.items) == 6
        seen = 0
        while (message := queue.receive(30)) is not None:
            assert handle(message.content, app, queue=queue).status == "dropped"
            queue.delete(message)
            seen += 1
        assert seen == 12
        assert [m for m in markers.all() if m.key.split("~")[0] in ("other", "gone")] == []
    finally:
        markers.store.service.close()
        queue.close()
        store.close()


@pytest.mark.parametrize("pair", [
    "BLOB_ACCOUNT_URL=https://acct.blob.core.windows.net/?sv=2022-11-02&sp=rcwl&sig=SECRETSIG0123",
    "ETL_API_ENDPOINT=https://user:SECRETPASS0123@etl.example.com",
    "ETL_API_ENDPOINT=https://etl.example.com/v1?token=SECRETTOKEN0123",
])
def test_destinations_add_refuses_a_credential_inside_a_url_setting(fleet, pair):
    """A destination row holds no secret: a SAS signature, a password or a token in the query of a
    URL that is not a secret setting would sit in the table in clear (anyone with the app's storage
    reads it); refused with one line that does not repeat it, and nothing stored."""
    import uuid

    from shared.destinations import add_destination, open_store
    from shared.errors import SettingsError
    from shared.settings import Settings

    app = Settings.from_env({**fleet.dests["default"].env, "DESTINATIONS_TABLE": f"d{uuid.uuid4().hex[:20]}"})
    base = {"ETL_API_ENDPOINT": "https://etl.example.com", "ETL_API_TOKEN": "@env:TOKEN", "EXPORT_FORMAT": "csv",
            "BLOB_SAS_URL": "@kv:sas"}
    name = pair.partition("=")[0]
    if name == "BLOB_ACCOUNT_URL":
        del base["BLOB_SAS_URL"]
        base["BLOB_CONTAINER"] = "exports"
    base[name] = pair.partition("=")[2]
    store = open_store(app)
    try:
        with pytest.raises(SettingsError) as raised:
            add_destination(app, "other", [f"{k}={v}" for k, v in base.items()], store=store)
        assert "0123" not in str(raised.value) and "\n" not in str(raised.value)
        assert store.get("other") is None
    finally:
        store.close()


def test_a_url_secret_reference_to_a_value_that_is_no_url_never_shows_the_value(fleet):
    """BLOB_SAS_URL=@env:S where S holds something else (a token, an account key, a bare SAS
    without its URL): the destination's one-line error (printed by plan, status, check and logged)
    must not hold the value."""
    import uuid

    from shared.destinations import add_destination, load_destinations, open_store
    from shared.redact import redact_text
    from shared.settings import Settings

    app = Settings.from_env({**fleet.dests["default"].env, "DESTINATIONS_TABLE": f"d{uuid.uuid4().hex[:20]}"})
    store = open_store(app)
    try:
        add_destination(app, "other", ["ETL_API_ENDPOINT=https://etl.example.com", "ETL_API_TOKEN=@env:TOKEN",
                                       "BLOB_SAS_URL=@env:SAS", "EXPORT_FORMAT=csv"], store=store)
        env = {"TOKEN": "token-value-0123456789", "SAS": "Zm9vYmFyLWFjY291bnQta2V5LTAxMjM0NTY3ODk="}
        other = next(d for d in load_destinations(app, env=env, store=store) if d.name == "other")
    finally:
        store.close()
    assert other.settings is None and other.error
    assert "Zm9vYmFy" not in redact_text(other.error), other.error


def test_destinations_list_never_prints_a_plain_secret_stored_by_hand(fleet):
    """A row edited by hand (Storage Explorer) with a token instead of a reference: the row cannot
    run (its error says so), and `destinations list` must not print the token."""
    import io
    import uuid

    from shared.cli import print_destinations
    from shared.destinations import open_store
    from shared.settings import Settings

    app = Settings.from_env({**fleet.dests["default"].env, "DESTINATIONS_TABLE": f"d{uuid.uuid4().hex[:20]}"})
    store = open_store(app)
    out = io.StringIO()
    try:
        store.put("other", {"ETL_API_ENDPOINT": "https://etl.example.com", "ETL_API_TOKEN": "plain-token-0123456789",
                            "BLOB_SAS_URL": "@env:SAS", "EXPORT_FORMAT": "csv"})
        print_destinations(app, store, out)
    finally:
        store.close()
    assert "other" in out.getvalue() and "ETL_API_TOKEN" in out.getvalue()
    assert "plain-token-0123456789" not in out.getvalue(), out.getvalue()
