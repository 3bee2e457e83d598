"""Count the requests a work item makes: one destination, a W-window backlog of the six types,
drained by one in-process worker (``shared.work_runner.worker_loop``, the ``work`` command's loop),
every HTTP request counted by service (table / queue / blob / ETL) and kind (method + what it names).

    python bench/unit_calls.py [--windows 3]

Prints the plan's requests, the requests per unit (the plan's excluded) and the table of kinds. A measuring tool, not a
test: it wraps urllib3's ``urlopen`` (what the Azure SDK and the ETL client both send through).
See bench/README.md, "Scale-out benchmark".
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import urllib3.connectionpool  # noqa: E402
from scale_out import TOKEN, W0, _calls  # noqa: E402

from devtools.azurite import start_azurite  # noqa: E402
from emulator.server import EmulatorServer  # noqa: E402
from emulator.sources import StaticSource  # noqa: E402
from shared.calltypes import CALL_TYPES  # noqa: E402
from shared.sequence import Sequence  # noqa: E402
from shared.settings import Settings  # noqa: E402

COUNTS: collections.Counter[tuple[str, str]] = collections.Counter()
PORTS: dict[int, str] = {}


def _kind(method: str, url: str) -> str:
    path, _, query = url.partition("?")
    path = re.sub(r"\(PartitionKey='([^']*)',RowKey='[^']*'\)", lambda m: f"(PK={m.group(1)[:12]})", path)
    path = re.sub(r"/devstoreaccount1/[^/?(]+", "/…", path, count=1)
    path = re.sub(r"/bench/.*", "/bench/<blob>", path)
    path = re.sub(r"/messages/[0-9a-f-]+", "/messages/<id>", path)
    comp = re.findall(r"(comp=\w+|restype=\w+|\$filter|popreceipt|blockid)", query)
    return f"{method} {path} {' '.join(sorted(set(comp)))}".strip()


WRAPPERS = ("state_store.py", "blob_store.py", "azure_errors.py", "work_queue.py", "etl_client.py",
            "work_markers.py", "page_reader.py", "abandoning.py")


def _caller() -> str:
    """The innermost function of shared/ that is not a client wrapper, and the one that called it."""
    frame = sys._getframe(2)
    found: list[str] = []
    while frame is not None and len(found) < 2:
        name = frame.f_code.co_filename
        if "/shared/" in name and (found or not name.endswith(WRAPPERS)):
            found.append(f"{Path(name).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found)


def _wrap() -> None:
    original = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        COUNTS[(PORTS.get(self.port, f"port {self.port}"), f"{_kind(method, url):45} {_caller()}")] += 1
        return original(self, method, url, *args, **kwargs)

    urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=3)
    args = p.parse_args(argv)
    from shared.planning import plan
    from shared.work_runner import worker_loop

    az = start_azurite(in_memory=True)
    etl = EmulatorServer(StaticSource(_calls(W0, args.windows, 0)), token=TOKEN).start()
    try:
        PORTS.update({az.blob_port: "blob", az.queue_port: "queue", az.table_port: "table",
                      int(etl.url.rsplit(":", 1)[1].split("/")[0]): "etl"})
        container = f"c{uuid.uuid4().hex[:16]}"
        az.create_container(container)
        env = {"ETL_API_ENDPOINT": etl.url, "ETL_API_TOKEN": TOKEN, "EXPORT_FORMAT": "csv",
               "BLOB_SAS_URL": az.sas_url(container), "AzureWebJobsStorage": az.connection_string,
               "STATE_TABLE": f"b{uuid.uuid4().hex[:16]}", "EXPORT_QUEUE": f"b{uuid.uuid4().hex[:16]}",
               "WORK_LEASE_SECONDS": "30", "EXPORT_MODE": "queue", "BLOB_PATH": "bench",
               "EXPORT_START": "2026-01-01T00:00:00Z"}
        settings = Settings.from_env(env)
        listed = [("dest-0", Sequence("dest-0"), settings)]
        now = W0 + args.windows * timedelta(minutes=10) + timedelta(seconds=61)
        _wrap()
        plan(settings, now, destinations=listed)
        planned = sum(COUNTS.values())
        COUNTS.clear()
        started = time.perf_counter()
        handled = worker_loop(settings, 0.0, lambda s: listed)
        seconds = time.perf_counter() - started
    finally:
        etl.stop()
        az.stop()
    units = args.windows * len(CALL_TYPES)
    total = sum(COUNTS.values())
    print(f"plan: {planned} requests; work: {handled} messages, {units} units, {seconds:.2f} s; {total} requests, "
          f"{total / units:.2f} per unit")
    by_service = collections.Counter()
    for (service, _), n in COUNTS.items():
        by_service[service] += n
    print("per unit: " + ", ".join(f"{s} {n / units:.2f}" for s, n in sorted(by_service.items())))
    for (service, kind), n in sorted(COUNTS.items(), key=lambda kv: (kv[0][0], -kv[1])):
        print(f"{n / units:6.2f}  {service:5}  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
