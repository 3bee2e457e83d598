"""Shared fixtures: a real Azurite (started once per session), a fresh container and table per
test, and a real ETL API emulator over loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from devtools.azurite import Azurite, existing_azurite, start_azurite
from emulator.server import EmulatorServer
from emulator.sources import StaticSource
from shared.clients import build_clients, close_clients
from shared.export import run_export
from shared.settings import Settings
from shared.summary import RunSummary
from tests.support.blobs import StoredBlob, read_container

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789abcdef"
FAST_RETRY = None  # set below (import cycle avoidance)


# Property tests draw fresh examples on every local run, to find what nobody wrote down. CI
# (HYPOTHESIS_PROFILE=ci) draws the same examples every time: a gate must not fail on luck. A failure
# found locally becomes a plain test (test_records.py's blank pages are one).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-long", action="store_true", help="run the fault soak test for longer")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    existing = existing_azurite()
    if existing is not None:
        yield existing
        return
    az = start_azurite(in_memory=True)
    try:
        yield az
    finally:
        az.stop()


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = f"t{uuid.uuid4().hex[:20]}"
    azurite.create_container(name)
    return name


@pytest.fixture
def table_name() -> str:
    return f"t{uuid.uuid4().hex[:20]}"


@pytest.fixture
def source() -> StaticSource:
    return StaticSource([])


@pytest.fixture
def etl(source: StaticSource) -> Iterator[EmulatorServer]:
    with EmulatorServer(source, token=TOKEN, integration_id="2184", action_id="13699") as srv:
        yield srv


class Harness:
    """One destination under test: settings env, runs in-process or as the CLI, reading back."""

    def __init__(self, azurite: Azurite, container: str, table: str, etl: EmulatorServer,
                 source: StaticSource) -> None:
        self.azurite = azurite
        self.container = container
        self.table = table
        self.etl = etl
        self.source = source
        self.env: dict[str, str] = {
            "ETL_API_ENDPOINT": etl.url,
            "ETL_API_TOKEN": TOKEN,
            "EXPORT_FORMAT": "csv",
            "BLOB_SAS_URL": azurite.sas_url(container),
            "BLOB_PATH": "exports/segment",
            "AzureWebJobsStorage": azurite.connection_string,
            "STATE_TABLE": table,
            "DESTINATIONS_TABLE": f"d{table}",  # a test's named destinations are its own
            "SETTLE_SECONDS": "60",
        }

    def settings(self, **overrides: str) -> Settings:
        return Settings.from_env({**self.env, **overrides})

    def run(self, now: str | datetime, etl_kwargs: dict[str, Any] | None = None, **overrides: str) -> RunSummary:
        from shared.etl_client import RetryPolicy

        settings = self.settings(**overrides)
        moment = now if isinstance(now, datetime) else datetime.fromisoformat(now.replace("Z", "+00:00"))
        kwargs = {"retry": RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)}
        kwargs.update(etl_kwargs or {})
        clients = build_clients(settings, etl_kwargs=kwargs)
        try:
            return run_export(settings, clients, moment.astimezone(UTC))
        finally:
            close_clients(clients)

    def cli(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")}
        env.update(self.env)
        env.update(extra_env or {})
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", "--no-settings", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )

    def blobs(self, container: str | None = None) -> dict[str, StoredBlob]:
        """Every blob of the harness's container (or of ``container``)."""
        with self.azurite.blob_service() as svc:
            return read_container(svc, container or self.container)

    def data_blobs(self) -> dict[str, StoredBlob]:
        return {n: b for n, b in self.blobs().items() if "/_rejected/" not in n and "/_manifests/" not in n}

    def manifests(self) -> dict[str, StoredBlob]:
        return {n: b for n, b in self.blobs().items() if "/_manifests/" in n}


@pytest.fixture
def harness(azurite: Azurite, container: str, table_name: str, etl: EmulatorServer,
            source: StaticSource) -> Harness:
    return Harness(azurite, container, table_name, etl, source)
