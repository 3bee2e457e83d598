"""`python -m devtools.azurite sas`: the local SAS URL the README's local path needs, against the
test Azurite (the command takes its blob port)."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from azure.storage.blob import ContainerClient

from devtools.azurite import HOST, Azurite

ROOT = Path(__file__).resolve().parent.parent


def _sas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devtools.azurite", "sas", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_sas_creates_the_container_and_prints_a_working_rcwl_url(azurite: Azurite) -> None:
    name = f"t{uuid.uuid4().hex[:20]}"
    proc = _sas("--container", name, "--blob-port", str(azurite.blob_port))
    assert proc.returncode == 0, proc.stderr
    url = proc.stdout.strip()
    assert "\n" not in url  # the URL alone, for BLOB_SAS_URL=$(...)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{azurite.blob_url}/{name}"
    assert parse_qs(parts.query)["sp"] == ["rcwl"]
    assert "created" in proc.stderr
    with ContainerClient.from_container_url(url) as container:  # the URL does what the exporter needs
        container.upload_blob("probe.txt", b"hello")
        assert [b.name for b in container.list_blobs()] == ["probe.txt"]
        assert container.download_blob("probe.txt").readall() == b"hello"

    again = _sas("--container", name, "--blob-port", str(azurite.blob_port))  # idempotent
    assert again.returncode == 0, again.stderr
    assert "existing" in again.stderr
    with ContainerClient.from_container_url(again.stdout.strip()) as container:
        assert [b.name for b in container.list_blobs()] == ["probe.txt"]


def test_sas_without_azurite_is_a_one_line_error_naming_the_fix() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    proc = _sas("--blob-port", str(port))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{HOST}:{port}" in lines[0] and "npm run azurite" in lines[0]
