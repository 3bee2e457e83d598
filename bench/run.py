"""Throughput benchmark of the exporter: the real CLI end to end, against a measured floor.

    python bench/run.py [--quick] [--n 100000 1000000] [--profile real basic]
                        [--formats csv json parquet] [--keep]
                        [--json-out bench/results/latest.json] [--check-targets]

For each data profile, N and format it runs ``python -m shared.cli run`` as a child process
against the ETL API emulator (serving a generated NDJSON file, one 10-minute window: ``real``
calls shaped like real SDK output, or the ``basic`` ones that hold only the columns' fields) and
an on-disk Azurite, measures wall time and peak RSS, verifies every written file row by row
against the input, and compares the throughput with the "floor": the same calls parsed and
serialized in-process (no HTTP, no upload). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from devtools.azurite import Azurite, azurite_binary, start_azurite  # noqa: E402
from emulator.realistic import PROFILE_VERSION  # noqa: E402
from shared.batching import BATCH_LINES, rebatch  # noqa: E402
from shared.calltypes import CALL_TYPES, COLUMNS  # noqa: E402
from shared.columnar import parser_for  # noqa: E402
from shared.etl_client import PAGE_LIMIT  # noqa: E402
from shared.lines import LineBlock  # noqa: E402
from shared.memory import frozen_gc, tune_allocator  # noqa: E402
from shared.windows import Window, parse_rfc3339  # noqa: E402
from shared.writers import FORMATS, WriterOptions, writer_class  # noqa: E402

DATA_DIR = ROOT / "bench" / ".data"
WINDOW_START = "2026-01-01T00:00:00Z"
RUN_NOW = "2026-01-01T00:11:01Z"  # the window [00:00, 00:10) is closed and settled (60 s) by then
TOKEN = "bench-token"
BLOB_PATH = "bench"
QUICK_N = 20_000
#: The data profiles (``python -m emulator generate --profile``) and their cache file tags: a
#: tag changes whenever the generator's output does, so a stale cached file is never reused.
DATA_PROFILES = {"real": f"real-v{PROFILE_VERSION}", "basic": "basic"}
DEFAULT_PROFILES = ["real"]
QUICK_PROFILES = ["real", "basic"]
API_PAGE_LINES = 10_000  # the ETL API's default page size (docs/etl-api.md), used to pre-split the floor
RSS_POLL_SECONDS = 0.05
CHILD_TIMEOUT = 3600.0

#: The targets in bench/README.md (checked only with --check-targets).
TARGET_PARQUET_CALLS_S = 80_000
TARGET_PARQUET_FLOOR_RATIO = 0.75
TARGET_TEXT_CALLS_S = 25_000
TARGET_RSS_MB_1M = 300
TARGET_RSS_GROWTH = 0.20


class BenchError(RuntimeError):
    """A failed step: the run exits non-zero with this message."""


# ------------------------------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mb(n: float) -> float:
    return n / 1e6


def cpu_probe_ms() -> float:
    """A fixed pure-Python loop, best of 3, in ms: tells a VM's fast and slow phases apart."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        sum(i * i for i in range(3_000_000))
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        az_version = subprocess.run([azurite_binary(), "--version"], capture_output=True, text=True,
                                    timeout=30).stdout.strip()
    except Exception as exc:  # informational only
        az_version = f"unknown ({exc})"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_total / 2**30, 1) if mem_total else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "msgspec": msgspec.__version__,
        "azurite": az_version,
        "probe_ms": cpu_probe_ms(),
    }


# ------------------------------------------------------------------------------------------------
# Input


def input_file(n: int, profile: str) -> Path:
    """The cached NDJSON of N calls of a data profile (generated once by the emulator)."""
    path = DATA_DIR / f"calls-{DATA_PROFILES[profile]}-{n}.ndjson"
    if path.exists() and path.stat().st_size > 0:
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    log(f"generating {n:,} {profile} calls -> {path.relative_to(ROOT)}")
    cmd = [sys.executable, "-m", "emulator", "generate", "--count", str(n), "--start", WINDOW_START,
           "--minutes", "10", "--seed", "1", "--profile", profile, "--out", str(tmp)]
    try:
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if res.returncode != 0:
            raise BenchError(f"generating the input failed ({res.returncode}): {res.stderr[-2000:]}")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class _TypeOnly(msgspec.Struct):
    type: str | None = None


def count_types(path: Path) -> tuple[Counter[str], int]:
    """Per-type call counts of the input file, and its byte size."""
    decode = msgspec.json.Decoder(_TypeOnly).decode
    counts: Counter[str] = Counter()
    with open(path, "rb", buffering=16 * 1024 * 1024) as f:
        for line in f:
            if line.strip():
                counts[str(decode(line).type)] += 1
    unknown = set(counts) - set(CALL_TYPES)
    if unknown:
        raise BenchError(f"input has calls of unknown types {sorted(map(str, unknown))}")
    return counts, path.stat().st_size


def lines_by_type(path: Path) -> dict[str, list[bytes]]:
    """The input's lines (without their newline) split per type: the floor's in-memory input."""
    decode = msgspec.json.Decoder(_TypeOnly).decode
    out: dict[str, list[bytes]] = {t: [] for t in CALL_TYPES}
    with open(path, "rb", buffering=16 * 1024 * 1024) as f:
        for line in f:
            body = line.rstrip(b"\n")
            if body:
                call_type = decode(body).type
                if call_type not in out:
                    raise BenchError(f"input has a call of unknown type {call_type!r}")
                out[call_type].append(body)
    return out


# ------------------------------------------------------------------------------------------------
# Floor: parse + serialize in-process, no HTTP, no upload


class NullSink:
    """A byte sink that only counts."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        n = len(data)
        self.count += n
        return n


def floor(lines: dict[str, list[bytes]], fmt: str) -> dict[str, Any]:
    """Calls/s of parse + serialize for ``fmt`` over all types (only the loop below is timed),
    with the allocator and the collector set up as the exporter's run has them
    (``tune_allocator``; ``frozen_gc``: the million input lines held here are not walked by
    every full collection)."""
    tune_allocator()
    with frozen_gc():
        return _floor(lines, fmt)


def _floor(lines: dict[str, list[bytes]], fmt: str) -> dict[str, Any]:
    cls = writer_class(fmt)
    options = WriterOptions()
    window = Window.starting(parse_rfc3339(WINDOW_START))  # as the exporter: receivedAt checked
    total_calls = total_bytes = 0
    elapsed = 0.0
    for call_type in CALL_TYPES:
        type_lines = lines[call_type]
        if not type_lines:
            continue
        # Pages as the ETL client hands them on (one buffer each), built before the clock starts.
        pages = [LineBlock.from_lines(type_lines[i:i + API_PAGE_LINES])
                 for i in range(0, len(type_lines), API_PAGE_LINES)]
        parser = parser_for(call_type, cls.spec.mode, window=window)
        sink = NullSink()
        rows = 0
        t0 = time.perf_counter()
        writer = cls(sink, call_type, options)
        for batch in rebatch(pages, BATCH_LINES):
            parsed = parser.parse(batch)
            if parsed.rejected:
                raise BenchError(f"floor: {len(parsed.rejected)} {call_type} call(s) rejected, first: "
                                 f"{parsed.rejected[0].reason}")
            writer.write(parsed)
            rows += parsed.count
        writer.close()
        elapsed += time.perf_counter() - t0
        if rows != len(type_lines):
            raise BenchError(f"floor: {fmt} {call_type} wrote {rows} rows of {len(type_lines)}")
        total_calls += rows
        total_bytes += sink.count
    return {"calls": total_calls, "seconds": elapsed, "bytes": total_bytes,
            "calls_per_s": total_calls / elapsed if elapsed else 0.0}


# ------------------------------------------------------------------------------------------------
# Processes


class Emulator:
    """``python -m emulator serve --file ...`` as a child process."""

    def __init__(self, path: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._err = open(workdir / f"emulator-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._err_path = workdir / f"emulator-{self.port}.log"
        cmd = [sys.executable, "-m", "emulator", "serve", "--file", str(path), "--port", str(self.port),
               "--token", TOKEN]
        self.process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err,
                                        start_new_session=True)
        self._wait_listening(timeout=600)

    def _wait_listening(self, timeout: float) -> None:
        assert self.process.stdout is not None
        result: list[str] = []

        def read() -> None:
            assert self.process.stdout is not None
            for raw in self.process.stdout:
                line = raw.decode(errors="replace")
                if "listening" in line:
                    result.append(line.strip())
                    break
            # drain the rest so the child never blocks on a full pipe
            for _ in self.process.stdout:
                pass

        threading.Thread(target=read, name="emulator-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not result:
            if self.process.poll() is not None:
                raise BenchError(f"the emulator exited ({self.process.returncode}): "
                                 f"{self._err_path.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise BenchError(f"the emulator did not listen within {timeout:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)
        self._err.close()


def stop_process(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """Terminate a child we started (and its session), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(grace)


class RssPoller(threading.Thread):
    """Peak RSS of the exporter process.

    ``hwm`` is the kernel's own high-water mark of the process's memory since its exec
    (``VmHWM`` in /proc/<pid>/status; monotonic, so the last reading before exit is the peak to
    within one poll). ``ru_maxrss`` from wait4 is not used for the verdict: Linux carries the
    *parent's* high-water mark into a vforked child at exec, so it reports the benchmark's own
    size whenever that is bigger. ``peak`` is the RSS sampled every 50 ms (with children).
    """

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-poller", daemon=True)
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process(pid)
        self._stop_event = threading.Event()
        self._status = Path(f"/proc/{pid}/status")
        self._main_stat = Path(f"/proc/{pid}/task/{pid}/stat")
        self._ticks = os.sysconf("SC_CLK_TCK")
        self.peak = 0
        self.hwm = 0
        self.main_cpu = 0.0  # CPU seconds of the exporter's main thread (its tid is its pid)

    def _read_hwm(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
                    return

    def _read_main_cpu(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = self._main_stat.read_text().rsplit(")", 1)[1].split()
            self.main_cpu = max(self.main_cpu, (int(fields[11]) + int(fields[12])) / self._ticks)

    def run(self) -> None:
        psutil = self._psutil
        while not self._stop_event.is_set():
            self._read_hwm()
            self._read_main_cpu()
            try:
                rss = self._proc.memory_info().rss
                for child in self._proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
            except psutil.Error:
                break
            self.peak = max(self.peak, rss)
            self._stop_event.wait(RSS_POLL_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


@dataclass
class ChildRun:
    returncode: int
    wall_s: float
    maxrss_bytes: int  # VmHWM of the exporter process (see RssPoller)
    polled_peak_bytes: int  # psutil, process + children, sampled
    cpu_s: float  # user + system CPU of the exporter process
    main_cpu_s: float  # of its main thread (to within one poll)
    stdout: str
    stderr: str


_current_child: subprocess.Popen[bytes] | None = None


def run_exporter(env: dict[str, str], workdir: Path, tag: str, profile: Path | None = None,
                 spy: Path | None = None) -> ChildRun:
    global _current_child
    cmd = [sys.executable]
    if spy is not None:  # py-spy samples every thread (cProfile sees only the main one)
        py_spy = shutil.which("py-spy") or os.environ.get("PY_SPY", "py-spy")
        extra = os.environ.get("PY_SPY_ARGS", "").split()  # e.g. "--native --idle"
        cmd = [py_spy, "record", "--format", "raw", "--threads", "--rate", "250", *extra, "--output", str(spy),
               "--", sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "shared.cli", "--no-settings", "run", "--now", RUN_NOW]
    out_path, err_path = workdir / f"{tag}.stdout", workdir / f"{tag}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        _current_child = proc
        poller = RssPoller(proc.pid)
        poller.start()
        timer = threading.Timer(CHILD_TIMEOUT, lambda: stop_process(proc, grace=5))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        finally:
            timer.cancel()
            poller.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        _current_child = None
    return ChildRun(proc.returncode, wall, poller.hwm or poller.peak, poller.peak,
                    usage.ru_utime + usage.ru_stime, poller.main_cpu,
                    out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def cpu_seconds(proc: subprocess.Popen[Any] | None) -> float:
    """User + system CPU seconds of a running process and its children (0 when unknown)."""
    import psutil

    if proc is None:
        return 0.0
    try:
        root = psutil.Process(proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return 0.0


def exporter_env(az: Azurite, etl_url: str, fmt: str, container: str, table: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EXPORTER_", "ETL_API_", "BLOB_", "AzureWebJobs", "EXPORT_",
                                "APPLICATIONINSIGHTS_", "MAX_", "SETTLE_", "RUN_BUDGET", "STATE_",
                                "PARQUET_", "CSV_"))}
    env.update({
        "ETL_API_ENDPOINT": etl_url,
        "ETL_API_TOKEN": TOKEN,
        "EXPORT_FORMAT": fmt,
        "BLOB_SAS_URL": az.sas_url(container),
        "BLOB_PATH": BLOB_PATH,
        "AzureWebJobsStorage": az.connection_string,
        "STATE_TABLE": table,
        "EXPORT_START": WINDOW_START,
        "SETTLE_SECONDS": "60",
        "RUN_BUDGET_SECONDS": "3600",
        "PYTHONUNBUFFERED": "1",
    })
    return env


# ------------------------------------------------------------------------------------------------
# Verification


def _csv_rows(path: Path, call_type: str) -> int:
    """Data rows of a CSV file (header checked), parsed by Arrow with newlines in values."""
    names = list(COLUMNS[call_type])
    reader = pacsv.open_csv(
        str(path),
        read_options=pacsv.ReadOptions(block_size=16 * 1024 * 1024),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
    )
    if reader.schema.names != names:
        raise BenchError(f"CSV header is {reader.schema.names}, expected {names}")
    return sum(batch.num_rows for batch in reader)


def verify_container(az: Azurite, container: str, fmt: str, expected: Counter[str],
                     workdir: Path) -> dict[str, Any]:
    """Count the rows of every blob written; compare per type with the input. Raises BenchError."""
    from azure.storage.blob import ContainerClient

    ext = writer_class(fmt).spec.extension
    per_type: Counter[str] = Counter()
    files = 0
    total_bytes = 0
    problems: list[str] = []
    with ContainerClient.from_connection_string(az.connection_string, container) as cc:
        blobs = list(cc.list_blobs(include=["metadata"]))
        for blob in blobs:
            name = blob.name
            md = {k.lower(): v for k, v in (blob.metadata or {}).items()}
            if f"{BLOB_PATH}/_manifests/" in name and md.get("kind") == "manifest":
                continue  # the window's manifest (docs/guarantees.md); tests/test_manifests.py checks them
            if "/_rejected/" in name or md.get("kind") not in (None, "data"):
                problems.append(f"{name}: a rejected-calls file (the synthetic input has no bad calls)")
                continue
            leaf = name.rsplit("/", 1)[-1]
            parts = leaf.split(".")
            if not name.startswith(BLOB_PATH + "/") or len(parts) != 5 or parts[-1] != ext:
                problems.append(f"{name}: unexpected name for a {fmt} data file")
                continue
            call_type = parts[3]
            if md.get("call_type") != call_type:
                problems.append(f"{name}: metadata call_type {md.get('call_type')!r}")
            local = workdir / "verify.tmp"
            with open(local, "wb") as fh:
                cc.download_blob(name, max_concurrency=2).readinto(fh)
            size = local.stat().st_size
            if fmt == "parquet":
                rows = pq.ParquetFile(str(local)).metadata.num_rows
            elif fmt == "csv":
                rows = _csv_rows(local, call_type)
            else:
                rows = 0
                last = b""
                with open(local, "rb") as fh:
                    while chunk := fh.read(16 * 1024 * 1024):
                        rows += chunk.count(b"\n")
                        last = chunk[-1:]
                if size and last != b"\n":
                    problems.append(f"{name}: does not end with a newline")
            local.unlink()
            if md.get("rows") != str(rows):
                problems.append(f"{name}: {rows} rows, metadata says {md.get('rows')}")
            per_type[call_type] += rows
            files += 1
            total_bytes += size
    for call_type in CALL_TYPES:
        if per_type[call_type] != expected[call_type]:
            problems.append(f"{call_type}: {per_type[call_type]} rows in the files, "
                            f"{expected[call_type]} calls in the input")
    if problems:
        raise BenchError(f"{fmt}: verification failed:\n  " + "\n  ".join(problems))
    return {"files": files, "bytes": total_bytes, "rows": sum(per_type.values())}


# ------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Result:
    profile: str
    n: int
    format: str
    calls: int
    input_bytes: int
    wall_s: float
    calls_per_s: float
    input_mb_per_s: float
    peak_rss_mb: float
    peak_rss_polled_mb: float
    output_files: int
    output_bytes: int
    exporter_cpu_s: float = 0.0
    exporter_main_cpu_s: float = 0.0
    exporter_thread_cpu_s: dict[str, float] = field(default_factory=dict)
    emulator_cpu_s: float = 0.0
    azurite_cpu_s: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    runs: int = 1
    floor_calls_per_s: float = 0.0
    floor_s: float = 0.0
    ratio: float = 0.0
    notes: list[str] = field(default_factory=list)


def bench_n(data_profile: str, n: int, formats: list[str], workroot: Path, keep: bool, repeat: int = 1,
            cprofile: str | None = None, spy: str | None = None, thread_cpu: bool = False) -> list[Result]:
    path = input_file(n, data_profile)
    counts, input_bytes = count_types(path)
    total = sum(counts.values())
    log(f"\n== {data_profile}: N = {total:,} calls, {mb(input_bytes):.1f} MB "
        f"({input_bytes / max(total, 1):.0f} B/call): " + ", ".join(f"{t} {counts[t]:,}" for t in CALL_TYPES))
    workdir = Path(tempfile.mkdtemp(prefix=f"{data_profile}-n{n}-", dir=workroot))
    results: list[Result] = []
    az: Azurite | None = None
    emu: Emulator | None = None
    try:
        (workdir / "azurite").mkdir()
        az = start_azurite(in_memory=False, location=str(workdir / "azurite"))
        t0 = time.perf_counter()
        emu = Emulator(path, workdir)
        log(f"azurite on disk at {workdir / 'azurite'}; emulator {emu.url} ready in "
            f"{time.perf_counter() - t0:.1f}s")
        for fmt in formats:
            prof = _per_format(cprofile, fmt, formats)
            spy_out = _per_format(spy, fmt, formats)
            best: Result | None = None
            peak_rss = 0.0
            for attempt in range(repeat):
                # a fresh container and state table: every export starts from scratch
                suffix = uuid.uuid4().hex[:12]
                container, table = f"bench-{fmt}-{suffix}", f"bench{fmt}{suffix}"
                az.create_container(container)
                env = exporter_env(az, emu.url, fmt, container, table)
                result = _one_run(az, emu, env, container, fmt, counts, total, input_bytes, workdir,
                                  f"{data_profile}-{fmt}-{n}-{attempt}", prof, spy_out, data_profile,
                                  thread_cpu)
                if not keep:
                    with az.blob_service() as svc:
                        svc.delete_container(container)
                peak_rss = max(peak_rss, result.peak_rss_mb)
                if best is None or result.wall_s < best.wall_s:
                    best = result
            assert best is not None
            best.runs = repeat
            best.peak_rss_mb = peak_rss  # the worst of the runs
            results.append(best)
    finally:
        if emu is not None:
            emu.stop()
        if az is not None:
            az.stop()
        if keep:
            log(f"kept {workdir} (Azurite data, exporter logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    # The floor, after the end-to-end runs (so this process's copy of the input never competes
    # with the exporter for memory). Same calls, same batches, same writers.
    lines = lines_by_type(path)
    for result in results:
        fl = min((floor(lines, result.format) for _ in range(repeat)), key=lambda f: f["seconds"])
        result.floor_calls_per_s = fl["calls_per_s"]
        result.floor_s = fl["seconds"]
        result.ratio = result.calls_per_s / fl["calls_per_s"] if fl["calls_per_s"] else 0.0
        log(f"{result.format:8s} floor: {fl['calls_per_s']:,.0f} calls/s ({fl['seconds']:.2f}s), "
            f"end to end = {result.ratio:.2f} of floor")
    del lines
    return results


def _per_format(path: str | None, fmt: str, formats: list[str]) -> Path | None:
    """A profile's output file for ``fmt``: the path as given for one format, else with the
    format before the extension (``spy.txt`` -> ``spy.csv.txt``)."""
    if not path:
        return None
    out = Path(path)
    return out if len(formats) == 1 else out.with_name(f"{out.stem}.{fmt}{out.suffix}")


def _one_run(az: Azurite, emu: Emulator, env: dict[str, str], container: str, fmt: str,
             counts: Counter[str], total: int, input_bytes: int, workdir: Path, tag: str,
             prof: Path | None, spy_out: Path | None, data_profile: str, thread_cpu: bool = False) -> Result:
    threads_out = workdir / f"{tag}.threads.json"
    if thread_cpu:  # the child adds up its threads' CPU (bench/thread_cpu/sitecustomize.py)
        paths = [str(ROOT / "bench" / "thread_cpu"), env.get("PYTHONPATH", "")]
        env = {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "BENCH_THREAD_CPU": str(threads_out)}
    load0 = os.getloadavg()[0]
    cpu0 = (cpu_seconds(emu.process), cpu_seconds(az.process))
    run = run_exporter(env, workdir, tag, profile=prof, spy=spy_out)
    cpu1 = (cpu_seconds(emu.process), cpu_seconds(az.process))
    if run.returncode != 0:
        raise BenchError(f"{fmt}: the exporter exited {run.returncode}\n--- stdout\n"
                         f"{run.stdout[-3000:]}\n--- stderr\n{run.stderr[-3000:]}")
    t_verify = time.perf_counter()
    out = verify_container(az, container, fmt, counts, workdir)
    result = Result(
        profile=data_profile, n=total, format=fmt, calls=total, input_bytes=input_bytes, wall_s=run.wall_s,
        calls_per_s=total / run.wall_s, input_mb_per_s=mb(input_bytes) / run.wall_s,
        peak_rss_mb=mb(run.maxrss_bytes), peak_rss_polled_mb=mb(run.polled_peak_bytes),
        output_files=out["files"], output_bytes=out["bytes"], exporter_cpu_s=run.cpu_s,
        exporter_main_cpu_s=run.main_cpu_s,
        emulator_cpu_s=cpu1[0] - cpu0[0], azurite_cpu_s=cpu1[1] - cpu0[1],
        load_before=load0, load_after=os.getloadavg()[0],
    )
    if thread_cpu and threads_out.exists():
        seconds = json.loads(threads_out.read_text())
        result.exporter_thread_cpu_s = {k: round(v, 2) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}
        log(f"{fmt:8s} CPU s per thread: " + ", ".join(f"{k} {v:.2f}" for k, v in result.exporter_thread_cpu_s.items()))
    if prof:
        result.notes.append(f"run under cProfile ({prof}): timings are not representative")
    if spy_out:
        result.notes.append(f"run under py-spy ({spy_out}): timings and RSS are not representative")
    log(f"{fmt:8s} exported {total:,} calls in {run.wall_s:.2f}s ({result.calls_per_s:,.0f} calls/s, "
        f"peak RSS {result.peak_rss_mb:.0f} MB), {out['files']} file(s), {mb(out['bytes']):.1f} MB; "
        f"CPU s: exporter {run.cpu_s:.1f} (main thread {run.main_cpu_s:.1f}), emulator {result.emulator_cpu_s:.1f}, "
        f"azurite {result.azurite_cpu_s:.1f}; load {load0:.1f}; "
        f"verified in {time.perf_counter() - t_verify:.1f}s")
    return result


def print_table(results: list[Result]) -> None:
    head = ["profile", "N", "format", "calls/s", "MB/s in", "wall s", "peak RSS MB", "output MB", "files",
            "floor calls/s", "ratio", "CPU s exp/emu/azurite", "load"]
    rows = [head] + [[
        r.profile, f"{r.n:,}", r.format, f"{r.calls_per_s:,.0f}", f"{r.input_mb_per_s:.1f}", f"{r.wall_s:.2f}",
        f"{r.peak_rss_mb:.0f}", f"{mb(r.output_bytes):.1f}", str(r.output_files),
        f"{r.floor_calls_per_s:,.0f}", f"{r.ratio:.2f}",
        f"{r.exporter_cpu_s:.1f}/{r.emulator_cpu_s:.1f}/{r.azurite_cpu_s:.1f}", f"{r.load_before:.1f}",
    ] for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    log("")
    for i, row in enumerate(rows):
        log("  ".join(c.ljust(w) if j in (0, 2) else c.rjust(w)
                      for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            log("  ".join("-" * w for w in widths))


def check_targets(results: list[Result]) -> list[str]:
    """The issue's targets, which are set at N = 1M (at smaller N the fixed start-up dominates),
    for every data profile run."""
    misses: list[str] = []
    by_key = {(r.profile, r.n, r.format): r for r in results}
    for r in results:
        if r.n < 1_000_000:
            continue
        what = f"{r.profile} {r.format} N={r.n:,}"
        if r.format == "parquet":
            if r.calls_per_s < TARGET_PARQUET_CALLS_S:
                misses.append(f"{what}: {r.calls_per_s:,.0f} calls/s < {TARGET_PARQUET_CALLS_S:,}")
            if r.ratio < TARGET_PARQUET_FLOOR_RATIO:
                misses.append(f"{what}: {r.ratio:.2f} of floor < {TARGET_PARQUET_FLOOR_RATIO}")
        elif r.calls_per_s < TARGET_TEXT_CALLS_S:
            misses.append(f"{what}: {r.calls_per_s:,.0f} calls/s < {TARGET_TEXT_CALLS_S:,}")
        if r.peak_rss_mb >= TARGET_RSS_MB_1M:
            misses.append(f"{what}: peak RSS {r.peak_rss_mb:.0f} MB >= {TARGET_RSS_MB_1M}")
        small = by_key.get((r.profile, 100_000, r.format))
        if small and r.peak_rss_mb > small.peak_rss_mb * (1 + TARGET_RSS_GROWTH):
            misses.append(f"{r.profile} {r.format}: peak RSS {r.peak_rss_mb:.0f} MB at 1M is more than "
                          f"{TARGET_RSS_GROWTH:.0%} over {small.peak_rss_mb:.0f} MB at 100k")
    return misses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"N = {QUICK_N:,} (what CI runs)")
    p.add_argument("--n", type=int, nargs="+", help="call counts to run (default 100000)")
    p.add_argument("--profile", nargs="+", choices=list(DATA_PROFILES), dest="profiles",
                   help="data profiles to run: real (shaped like real SDK output) and/or basic (only the "
                        f"columns' fields); default {' '.join(DEFAULT_PROFILES)}, with --quick "
                        f"{' '.join(QUICK_PROFILES)}")
    p.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    p.add_argument("--keep", action="store_true", help="keep Azurite's data and the exporter logs")
    p.add_argument("--json-out", default=str(ROOT / "bench" / "results" / "latest.json"),
                   help="where to write the results as JSON ('' for nowhere)")
    p.add_argument("--check-targets", action="store_true",
                   help="exit 1 when a target of bench/README.md is missed")
    p.add_argument("--repeat", type=int, default=1,
                   help="export each format this many times and keep the fastest (noisy machines)")
    p.add_argument("--thread-cpu", action="store_true",
                   help="add up the exporter's CPU seconds per thread (logged, and in the JSON)")
    p.add_argument("--cprofile", metavar="PROF",
                   help="run each export under cProfile, writing this .prof file (with several "
                        "formats, one file each: the format goes before the extension)")
    p.add_argument("--py-spy", metavar="OUT",
                   help="run each export under `py-spy record --threads` (raw output here; with "
                        "several formats, one file each); PY_SPY_ARGS adds options, e.g. '--idle'")
    args = p.parse_args(argv)
    ns = [QUICK_N] if args.quick else (args.n or [100_000])
    if args.quick and args.n:
        p.error("--quick and --n are exclusive")
    profiles = args.profiles or (QUICK_PROFILES if args.quick else DEFAULT_PROFILES)
    if (args.cprofile or args.py_spy) and (len(profiles) > 1 or len(ns) > 1):
        p.error("--cprofile and --py-spy take one --profile and one --n (each run would overwrite the output)")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

    info = machine_info()
    log("exporter benchmark")
    for k, v in info.items():
        log(f"  {k:8s} {v}")
    log(f"  batch {BATCH_LINES} lines, exporter pages {PAGE_LIMIT} calls, floor pages {API_PAGE_LINES} "
        f"lines, formats {' '.join(args.formats)}")

    workroot = Path(tempfile.mkdtemp(prefix="exporter-bench-"))
    results: list[Result] = []
    started = time.perf_counter()
    try:
        for data_profile in profiles:
            for n in ns:
                results += bench_n(data_profile, n, args.formats, workroot, args.keep, max(1, args.repeat),
                                   args.cprofile, args.py_spy, args.thread_cpu)
    except BenchError as exc:
        log(f"\nFAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted")
        return 130
    finally:
        stop_process(_current_child, grace=5)
        if not args.keep:
            shutil.rmtree(workroot, ignore_errors=True)

    print_table(results)
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "machine": info,
            "quick": args.quick,
            "profiles": {name: DATA_PROFILES[name] for name in profiles},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "results": [asdict(r) for r in results],
        }, indent=2) + "\n")
        log(f"\nresults written to {out}")
    misses = check_targets(results)
    for miss in misses:
        log(f"target missed: {miss}")
    log(f"total {time.perf_counter() - started:.1f}s")
    return 1 if misses and args.check_targets else 0


if __name__ == "__main__":
    sys.exit(main())
