"""Scale-out benchmark: D destinations, each with a W-window backlog, drained through the work queue
by ``work --processes 1`` and by ``work --processes K``.

    python bench/scale_out.py [--destinations 8] [--windows 3] [--processes 6] [--page-delay 0.05]
                          [--json-out bench/results/scale_out.json]

Each destination has its own ETL API emulator (in this process, every ``/v1/calls`` page answered
after ``--page-delay`` seconds: a network-bound load, as the real API is) and its own container;
one in-memory Azurite holds the state table and the queue. Per worker count: fresh tables,
queue and containers, one plan (the timer's work: ``shared.planning.plan``), then the real
``work`` runner (``shared.work_runner.work``, spawned processes) until the queue was empty for
``--idle-exit`` seconds. Reported:

- **drain**: the workers are started first and given ``--warmup`` seconds (warm instances, as
  Functions keeps them); then the plan, and the drain is timed from the plan's start to the last
  state commit (the newest ``Timestamp`` Azurite gave a type row, read once the workers exited:
  nothing polls storage while they run), so neither process start-up nor the idle wait nor the
  exit is counted;
- **per-unit overhead**: with one process, ``drain / units`` minus the emulator's page delay
  (one page per unit; the plan is inside the drain): what a unit costs besides waiting for the
  ETL API (marker, positions, claim, blob commit, state commit, next message), on this machine;
- **speed-up**: drain with 1 process / drain with K.

See bench/README.md, "Scale-out benchmark".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableServiceClient  # noqa: E402

from devtools.azurite import start_azurite  # noqa: E402
from emulator.faults import Fault  # noqa: E402
from emulator.server import EmulatorServer  # noqa: E402
from emulator.sources import StaticSource  # noqa: E402
from emulator.synthetic import make_call  # noqa: E402
from shared.calltypes import CALL_TYPES  # noqa: E402
from shared.planned import PlannedDestination  # noqa: E402
from shared.sequence import Sequence  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.windows import format_rfc3339  # noqa: E402

TOKEN = "bench-token-0123456789"
W0 = datetime(2026, 1, 1, tzinfo=UTC)
FILE_ENV = "BENCH_SCALE_OUT_DESTINATIONS"


def from_file(settings: Settings) -> list[PlannedDestination]:
    """The destinations of this run (read by the worker processes at each work item)."""
    listed = json.loads(Path(os.environ[FILE_ENV]).read_text(encoding="utf-8"))
    return [(name, Sequence(name), Settings.from_env(env)) for name, env in listed.items()]


def _calls(start: datetime, windows: int, seed: int) -> list[dict[str, Any]]:
    """Three calls of every type in every window (small files: the cost is the unit, not the data)."""
    rng = random.Random(seed)
    out = []
    for w in range(windows):
        for i, call_type in enumerate(CALL_TYPES):
            for k in range(3):
                out.append(make_call(rng, call_type, start + timedelta(minutes=10 * w, seconds=30 + 60 * k + i)))
    return out


def _cpu(az: Any) -> dict[str, float]:
    """CPU seconds so far: the worker processes (joined children), this process (the plan, the
    watcher and the ETL API emulators' threads) and Azurite. The workers' whole life is counted:
    start-up and idle polling too."""
    import psutil

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    azurite = psutil.Process(az.process.pid).cpu_times() if az.process else None
    return {"workers": children.ru_utime + children.ru_stime, "bench_and_etl": own.ru_utime + own.ru_stime,
            "azurite": (azurite.user + azurite.system) if azurite else 0.0}


def one(az: Any, workdir: Path, destinations: int, windows: int, processes: int, delay: float,
        idle_exit: float, warmup: float) -> dict[str, Any]:
    from shared.planning import plan
    from shared.work_runner import work

    load = os.getloadavg()[0]
    table, queue = f"b{uuid.uuid4().hex[:16]}", f"b{uuid.uuid4().hex[:16]}"
    app_env = {"ETL_API_ENDPOINT": "https://etl.invalid", "ETL_API_TOKEN": TOKEN, "EXPORT_FORMAT": "csv",
               "BLOB_SAS_URL": az.sas_url("unused"), "AzureWebJobsStorage": az.connection_string,
               "STATE_TABLE": table, "EXPORT_QUEUE": queue, "WORK_LEASE_SECONDS": "30", "EXPORT_MODE": "queue"}
    servers, listed = [], {}
    for d in range(destinations):
        container = f"c{uuid.uuid4().hex[:16]}"
        az.create_container(container)
        etl = EmulatorServer(StaticSource(_calls(W0, windows, d)), token=TOKEN).start()
        etl.add_fault(Fault("delay", path="/v1/calls", delay=delay, times=10**9))
        servers.append(etl)
        listed[f"dest-{d}"] = {**app_env, "ETL_API_ENDPOINT": etl.url, "BLOB_SAS_URL": az.sas_url(container),
                               "BLOB_PATH": "bench", "EXPORT_START": "2026-01-01T00:00:00Z"}
    path = workdir / f"destinations-{processes}.json"
    path.write_text(json.dumps(listed))
    os.environ[FILE_ENV] = str(path)
    app = Settings.from_env(app_env)
    now = W0 + windows * timedelta(minutes=10) + timedelta(seconds=61)
    end = W0 + windows * timedelta(minutes=10)
    try:
        # Warm instances, as Functions keeps them: the workers start (imports, clients) before the
        # plan, and wait on the empty queue; the drain is timed from the plan on.
        exits: list[Any] = []
        cpu_before = _cpu(az)
        runner = threading.Thread(target=lambda: exits.extend(
            work(app, processes, warmup + idle_exit, destinations=from_file)))
        runner.start()
        time.sleep(warmup)
        started, started_wall = time.perf_counter(), time.time()
        planned = plan(app, now, destinations=from_file(app))
        plan_seconds = time.perf_counter() - started
        runner.join()
        cpu = {k: round(v - cpu_before[k], 2) for k, v in _cpu(az).items()}
        # The drain ends at the last state commit: the newest Timestamp Azurite (same clock) gave
        # a type row. Read once at the end, not polled: polling the rows while the workers run
        # (48 reads every 50 ms, as this script did) took Azurite's CPU from the workers.
        with TableServiceClient.from_connection_string(az.connection_string) as service:
            client = service.get_table_client(table)
            rows = [e for name in listed for e in client.query_entities(
                f"PartitionKey eq '{Sequence(name).state_key('2184', '13699')}'")]
        if (len(rows) != destinations * len(CALL_TYPES) or any(e.get("pending_start") for e in rows)
                or {e["window_end"] for e in rows} != {format_rfc3339(end)} or any(e.exitcode != 0 for e in exits)):
            raise SystemExit(f"the backlog was not drained with {processes} process(es): {exits}")
        last_commit = max(e.metadata["timestamp"].timestamp() for e in rows)
        units = destinations * windows * len(CALL_TYPES)
        return {"processes": processes, "units": units, "plan_seconds": round(plan_seconds, 3),
                "planned_items": len(planned.items), "drain_seconds": round(last_commit - started_wall, 3),
                "cpu_seconds": cpu, "load_before": round(load, 2)}
    finally:
        for s in servers:
            s.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--destinations", type=int, default=8)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--processes", type=int, default=6)
    p.add_argument("--page-delay", type=float, default=0.05, help="seconds before each ETL page (default 0.05)")
    p.add_argument("--idle-exit", type=float, default=1.0)
    p.add_argument("--warmup", type=float, default=6.0,
                   help="seconds the workers get to start before the plan (default 6)")
    p.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "scale_out.json"))
    args = p.parse_args(argv)
    az = start_azurite(in_memory=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [one(az, Path(tmp), args.destinations, args.windows, k, args.page_delay, args.idle_exit,
                           args.warmup)
                       for k in (1, args.processes)]
    finally:
        az.stop()
    single, many = results
    overhead_ms = (single["drain_seconds"] / single["units"] - args.page_delay) * 1000
    summary = {"destinations": args.destinations, "windows": args.windows, "page_delay": args.page_delay,
               "cpus": os.cpu_count(), "runs": results,
               "speedup": round(single["drain_seconds"] / many["drain_seconds"], 2),
               "per_unit_overhead_ms": round(overhead_ms, 1)}
    for r in results:
        print(f"work --processes {r['processes']}: {r['units']} units drained in {r['drain_seconds']:.2f} s "
              f"(plan {r['plan_seconds']:.2f} s, {r['planned_items']} items; load before {r['load_before']}; "
              f"CPU s {r['cpu_seconds']})")
    print(f"speed-up {summary['speedup']}x with {args.processes} processes; "
          f"per-unit overhead {summary['per_unit_overhead_ms']} ms (one process, page delay excluded)")
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
