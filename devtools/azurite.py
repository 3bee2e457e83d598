"""Start Azurite on loopback and hand out connection strings and container SAS URLs.

    python -m devtools.azurite sas [--container exports] [--blob-port 10000] [--days 30]

creates the container on a running local Azurite (``npm run azurite``: 127.0.0.1, the well-known
dev account) when it is missing and prints a container SAS URL (sp=rcwl) for ``BLOB_SAS_URL``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from azure.core.exceptions import AzureError, ResourceExistsError
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


def ensure_container(az: Azurite, name: str) -> bool:
    """Create the container unless it is there; True when this call created it."""
    try:
        az.create_container(name)
    except ResourceExistsError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.azurite",
                                description="Helpers for a local Azurite (npm run azurite).")
    sub = p.add_subparsers(dest="command", required=True)
    sas = sub.add_parser("sas", help="create the container if missing and print a container SAS URL (sp=rcwl)")
    sas.add_argument("--container", default="exports", help="container name (default: exports)")
    sas.add_argument("--blob-port", type=int, default=10000, help="Azurite's blob port on 127.0.0.1 (default: 10000)")
    sas.add_argument("--days", type=int, default=30, help="days until the SAS expires (default: 30)")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``sas``: the URL alone on stdout (for ``$(...)``), notes and errors on stderr; exit 1 on failure."""
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    if args.days < 1:
        print("error: --days must be at least 1", file=err)
        return 2
    try:
        with socket.create_connection((HOST, args.blob_port), timeout=2):
            pass
    except OSError:
        print(f"error: no Azurite listening on {HOST}:{args.blob_port}: start it with `npm run azurite` "
              "(or pass --blob-port)", file=err)
        return 1
    az = Azurite(blob_port=args.blob_port, queue_port=args.blob_port + 1, table_port=args.blob_port + 2)
    try:
        created = ensure_container(az, args.container)
    except AzureError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: could not create container {args.container!r} on {az.blob_url}: {first}", file=err)
        return 1
    print(f"{'created' if created else 'using existing'} container {args.container!r} on {az.blob_url}", file=err)
    print(az.sas_url(args.container, expiry=datetime.now(UTC) + timedelta(days=args.days)), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
