"""N destinations on one app for the queue tests: each with its own ETL API emulator and container,
one STATE_TABLE and one work queue; and the destination source the worker processes read.

The worker processes are real (spawned) processes: they get their destinations from
:func:`from_file`, which reads the JSON file named by ``TEST_DESTINATIONS_FILE`` at every work item,
so a test adds or disables a destination while they run by rewriting that file.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emulator.server import EmulatorServer
from emulator.sources import StaticSource
from shared.calltypes import CALL_TYPES
from shared.planned import PlannedDestination
from shared.sequence import Sequence
from shared.settings import Settings
from shared.state_store import StateStore, TypeState, make_table_service
from tests.support.calls import make_window_calls
from tests.support.invariants import check_container, ids_of

TOKEN = "test-token-0123456789abcdef"
FILE_ENV = "TEST_DESTINATIONS_FILE"


def from_file(settings: Settings) -> list[PlannedDestination]:
    """The enabled destinations listed in the file ``$TEST_DESTINATIONS_FILE`` (name -> env)."""
    listed = json.loads(Path(os.environ[FILE_ENV]).read_text(encoding="utf-8"))
    return [(name, Sequence(name), Settings.from_env(env)) for name, env in listed.items()]


@dataclass
class Dest:
    name: str
    container: str
    etl: EmulatorServer
    env: dict[str, str]
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def planned(self) -> PlannedDestination:
        return (self.name, Sequence(self.name), self.settings)


class Fleet:
    """Destinations ``names`` (each with ``windows`` windows of calls from ``start``), one app."""

    def __init__(self, azurite: Any, tmp_path: Path, names: list[str], start: datetime, windows: int,
                 lease: int = 3, per_type: dict[str, int] | None = None) -> None:
        self.azurite = azurite
        self.start = start
        self.table = f"t{uuid.uuid4().hex[:20]}"
        self.queue = f"q{uuid.uuid4().hex[:20]}"
        self.file = tmp_path / "destinations.json"
        self.app_env = {
            "ETL_API_ENDPOINT": "https://etl.invalid", "ETL_API_TOKEN": TOKEN, "EXPORT_FORMAT": "csv",
            "BLOB_SAS_URL": azurite.sas_url("unused"), "AzureWebJobsStorage": azurite.connection_string,
            "STATE_TABLE": self.table, "EXPORT_QUEUE": self.queue, "WORK_LEASE_SECONDS": str(lease),
            "EXPORT_MODE": "queue",
        }
        self.dests: dict[str, Dest] = {}
        for i, name in enumerate(names):
            self.add(name, windows, seed=1000 * (i + 1), per_type=per_type)
        self.enabled = set(self.dests)

    def add(self, name: str, windows: int, seed: int, per_type: dict[str, int] | None = None) -> Dest:
        container = f"c{uuid.uuid4().hex[:20]}"
        self.azurite.create_container(container)
        source = StaticSource([])
        calls: list[dict[str, Any]] = []
        for w in range(windows):
            calls += make_window_calls(self.start + timedelta(minutes=10 * w), seed=seed + w, nasty=False,
                                       per_type=per_type or {"track": 3, "identify": 1, "page": 2})
        source.add(calls)
        etl = EmulatorServer(source, token=TOKEN, integration_id="2184", action_id="13699").start()
        env = {**self.app_env, "ETL_API_ENDPOINT": etl.url, "BLOB_SAS_URL": self.azurite.sas_url(container),
               "BLOB_PATH": "exports", "EXPORT_START": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "SETTLE_SECONDS": "60"}
        dest = Dest(name, container, etl, env, calls)
        self.dests[name] = dest
        return dest

    @property
    def app(self) -> Settings:
        return Settings.from_env(self.app_env)

    def planned(self) -> list[PlannedDestination]:
        return [d.planned for n, d in self.dests.items() if n in self.enabled]

    def write_file(self) -> None:
        self.file.write_text(json.dumps({n: d.env for n, d in self.dests.items() if n in self.enabled}))

    def rows(self, name: str) -> dict[str, TypeState]:
        store = StateStore(make_table_service(self.azurite.connection_string), self.table)
        key = Sequence(name).state_key("2184", "13699")
        try:
            return {t: r for t in CALL_TYPES if (r := store.get(key, t)) is not None}
        finally:
            store.service.close()

    def check(self, name: str, end: datetime) -> None:
        """The soak test's invariant check, and every type of ``name`` at ``end`` with no claim."""
        dest = self.dests[name]
        with self.azurite.blob_service() as svc:
            from tests.support.blobs import read_container

            blobs = read_container(svc, dest.container)
        check_container(blobs, expected_ids=ids_of(dest.calls), blob_path="exports", dest_key="2184.13699",
                        expected_rejected=0)
        rows = self.rows(name)
        assert set(rows) == set(CALL_TYPES)
        assert {t: (r.window_end, r.pending_start) for t, r in rows.items()} == {t: (end, None) for t in CALL_TYPES}

    def blob_names(self, name: str) -> set[str]:
        with self.azurite.blob_service() as svc:
            return {b.name for b in svc.get_container_client(self.dests[name].container).list_blobs()}

    def close(self) -> None:
        for d in self.dests.values():
            d.etl.stop()
