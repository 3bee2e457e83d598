"""Start Azurite on loopback and hand out connection strings and container SAS URLs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `npm ci` in the repository root")


@dataclass
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    process: subprocess.Popen[bytes] | None = None
    workdir: str | None = None

    @property
    def blob_url(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{ACCOUNT}"

    @property
    def table_url(self) -> str:
        return f"http://{HOST}:{self.table_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.blob_url};"
            f"QueueEndpoint=http://{HOST}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={self.table_url};"
        )

    def blob_service(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str) -> None:
        with self.blob_service() as svc:
            svc.create_container(name)

    def sas_url(
        self,
        container: str,
        permission: str = "rcwl",
        expiry: datetime | None = None,
    ) -> str:
        """A container SAS URL signed with the Azurite account key."""
        token = generate_container_sas(
            ACCOUNT,
            container,
            account_key=KEY,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=expiry or datetime.now(UTC) + timedelta(days=30),
            start=datetime.now(UTC) - timedelta(minutes=5),
        )
        return f"{self.blob_url}/{container}?{token}"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Azurite did not listen on {HOST}:{port} within {timeout:.0f}s")


def start_azurite(in_memory: bool = True, location: str | None = None, fixed_ports: bool = False) -> Azurite:
    """Start a private Azurite (free ports unless ``fixed_ports``), ready to use."""
    ports = (10000, 10001, 10002) if fixed_ports else (_free_port(), _free_port(), _free_port())
    workdir = location or tempfile.mkdtemp(prefix="azurite-")
    cmd = [
        azurite_binary(),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--blobHost", HOST, "--blobPort", str(ports[0]),
        "--queueHost", HOST, "--queuePort", str(ports[1]),
        "--tableHost", HOST, "--tablePort", str(ports[2]),
    ]
    # In memory: fast and nothing to clean; on disk (--location) for big benchmark volumes.
    cmd += ["--inMemoryPersistence"] if in_memory else ["--location", workdir]
    log_path = Path(workdir) / "azurite.log"
    with open(log_path, "wb") as log:  # startup errors end up here
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
                                start_new_session=True)
    az = Azurite(*ports, process=proc, workdir=None if location else workdir)
    try:
        for port in ports:
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited: {log_path.read_text(errors='replace')[-500:]}")
            _wait_for(port)
    except RuntimeError:
        az.stop()
        raise
    return az


def existing_azurite() -> Azurite | None:
    """Use an Azurite that is already running when AZURITE_BLOB_PORT (etc.) are set."""
    if "AZURITE_BLOB_PORT" not in os.environ:
        return None
    return Azurite(
        int(os.environ["AZURITE_BLOB_PORT"]),
        int(os.environ.get("AZURITE_QUEUE_PORT", "10001")),
        int(os.environ.get("AZURITE_TABLE_PORT", "10002")),
    )
