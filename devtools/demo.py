"""The README's first command: export a few windows locally and show what landed.

Starts a private Azurite and the ETL API emulator (synthetic calls) on loopback, creates a
container and a SAS for it, runs the exporter through the same CLI an operator uses, then lists
the files and previews one. Nothing is left running afterwards.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from devtools.azurite import ROOT, start_azurite
from emulator.server import EmulatorServer
from emulator.sources import SyntheticSource
from shared.manifest import ManifestError, parse
from shared.windows import WINDOW, floor_window, format_rfc3339


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--format", default="parquet", choices=["csv", "json", "parquet"])
    p.add_argument("--windows", type=int, default=3, help="how many closed windows to export")
    p.add_argument("--rate", type=int, default=60, help="synthetic calls per minute")
    args = p.parse_args()

    print("Starting Azurite and the ETL API emulator on 127.0.0.1 ...", flush=True)
    azurite = start_azurite(in_memory=True)
    etl = EmulatorServer(SyntheticSource(seed=1, rate_per_minute=args.rate), token="dev-token").start()
    try:
        container = "exports"
        azurite.create_container(container)
        now = datetime.now(UTC)
        last_end = floor_window(now - timedelta(seconds=60))
        start = last_end - args.windows * WINDOW
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EXPORTER_")},
            "ETL_API_ENDPOINT": etl.url,
            "ETL_API_TOKEN": "dev-token",
            "EXPORT_FORMAT": args.format,
            "BLOB_SAS_URL": azurite.sas_url(container),
            "BLOB_PATH": "segment",
            "AzureWebJobsStorage": azurite.connection_string,
            "STATE_TABLE": "demo" + uuid.uuid4().hex[:8],
            "EXPORT_START": format_rfc3339(start),
        }
        cli = [sys.executable, "-m", "shared.cli", "--no-settings"]
        print(f"\n$ python -m shared.cli run   (EXPORT_FORMAT={args.format}, "
              f"EXPORT_START={format_rfc3339(start)}, {args.windows} window(s) due)\n", flush=True)
        run = subprocess.run([*cli, "run", "--now", format_rfc3339(now)], env=env, cwd=ROOT)
        if run.returncode != 0:
            return run.returncode
        print("\n$ python -m shared.cli run   (again: nothing new is due)\n", flush=True)
        subprocess.run([*cli, "run", "--now", format_rfc3339(now)], env=env, cwd=ROOT, check=True)
        print("\n$ python -m shared.cli status\n", flush=True)
        subprocess.run([*cli, "status"], env=env, cwd=ROOT, check=True)
        _show(azurite, container, args.format)
        print("\n$ python -m shared.cli verify --deep   (positions, manifests, and every file read again)\n",
              flush=True)
        verified = subprocess.run([*cli, "verify", "--deep"], env=env, cwd=ROOT)
        print("\nThis demo's Azurite keeps its data in memory: the files above are gone when it exits."
              "\nNext steps: `scripts/test` runs the test suite; to run the exporter against your own "
              "settings (a local Azurite that keeps its data, or your storage account), see the README, "
              "'To run against your own settings locally'; docs/operations.md covers running it.", flush=True)
        return verified.returncode
    finally:
        etl.stop()
        azurite.stop()


def _show(azurite, container: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    with azurite.blob_service() as svc:
        client = svc.get_container_client(container)
        blobs = list(client.list_blobs(include=["metadata"]))
        print(f"\nThe container '{container}' now holds {len(blobs)} blob(s):\n")
        width = max((len(b.name) for b in blobs), default=0)
        for b in blobs:
            md = b.metadata or {}
            what = (_manifest_summary(client.download_blob(b.name).readall()) if md.get("kind") == "manifest"
                    else f"rows={md.get('rows', '?'):>4}")
            print(f"  {b.name:<{width}} {b.size:>9,} bytes  {what}  window={md.get('window_start', '?')}")
        track = next((b.name for b in blobs if ".track." in b.name), None)
        if track:
            data = client.download_blob(track).readall()
            print(f"\nFirst rows of {track}:\n")
            if fmt == "parquet":
                table = pq.read_table(io.BytesIO(data))
                for row in table.slice(0, 2).to_pylist():
                    print("  " + ", ".join(f"{k}={str(v)[:40]}" for k, v in row.items() if k in (
                        "messageId", "event", "event_text", "receivedAt", "properties")))
            else:
                for line in data.decode().splitlines()[:3]:
                    print("  " + line[:200])


def _manifest_summary(data: bytes) -> str:
    """A manifest's line in the listing: the files and calls it lists (it has no ``rows`` metadata)."""
    try:
        manifest = parse(data)
    except ManifestError:
        return "manifest (unreadable)"
    files = sum(len(t.files) for t in manifest.types.values())
    rows = sum(t.rows for t in manifest.types.values())
    return f"manifest: {files} file(s), {rows} row(s)"


if __name__ == "__main__":
    sys.exit(main())
