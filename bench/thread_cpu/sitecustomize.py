"""Loaded by the exporter child of ``bench/run.py --thread-cpu`` (on its PYTHONPATH only): adds up
each thread's CPU time (``time.thread_time()`` as it ends) by thread name, pools' threads under
one name, and writes them as JSON to ``BENCH_THREAD_CPU`` when the process exits."""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
import time
from collections import Counter

_OUT = os.environ.get("BENCH_THREAD_CPU")

if _OUT:
    _seconds: Counter[str] = Counter()
    _lock = threading.Lock()
    _run = threading.Thread.run

    def _runq(name: str) -> None:
        """The seconds this thread was runnable but waited for a core (the kernel's schedstat):
        a thread that waits for the GIL sleeps, so it is not in this figure; one the other
        threads and processes crowd out of the two cores is."""
        try:
            with open("/proc/thread-self/schedstat") as f:
                _seconds[f"runq {name}"] += int(f.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            pass

    def _faults(name: str) -> None:
        """The thread's system CPU seconds, minor page faults and context switches in thousands
        (getrusage(RUSAGE_THREAD)): ``vcsw``, the times it went to sleep (a queue, a future, the
        GIL, a socket); ``ivcsw``, the times the scheduler took its core away."""
        import resource

        usage = resource.getrusage(resource.RUSAGE_THREAD)
        _seconds[f"sys {name}"] += usage.ru_stime
        _seconds[f"minflt {name}"] += usage.ru_minflt / 1000  # thousands
        _seconds[f"vcsw {name}"] += usage.ru_nvcsw / 1000
        _seconds[f"ivcsw {name}"] += usage.ru_nivcsw / 1000

    def _counted_run(self: threading.Thread) -> None:
        try:
            _run(self)
        finally:
            name = re.sub(r"_\d+$", "", self.name)  # "parquet_0", "stage_1": one entry per pool
            with _lock:
                _seconds[name] += time.thread_time()
                _runq(name)
                _faults(name)

    threading.Thread.run = _counted_run  # type: ignore[method-assign]

    @atexit.register
    def _write() -> None:
        with _lock:
            _seconds["MainThread"] += time.thread_time()
            _runq("MainThread")
            _faults("MainThread")
            with open(_OUT, "w") as f:
                json.dump(dict(_seconds), f)

# Diagnostics for what a thread waits on (bench/README.md, "Where the time goes"):
# BENCH_WAITS=1 adds, per thread, the wall seconds spent blocked in a queue's get or put (the
# read-ahead hand-over) and in a future's result (row groups, uploads, the finisher) as
# "wait get|put|result <thread>"; BENCH_SWITCH_INTERVAL sets the interpreter's switch interval.
if _OUT and os.environ.get("BENCH_WAITS"):
    import concurrent.futures
    import queue
    from collections.abc import Callable
    from typing import Any

    def _timed(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                key = f"wait {kind} {re.sub(r'_[0-9]+$', '', threading.current_thread().name)}"
                with _lock:
                    _seconds[key] += time.perf_counter() - start

        return timed

    queue.Queue.get = _timed("get", queue.Queue.get)  # type: ignore[method-assign]
    queue.Queue.put = _timed("put", queue.Queue.put)  # type: ignore[method-assign]
    concurrent.futures.Future.result = _timed("result", concurrent.futures.Future.result)  # type: ignore[method-assign]

_SWITCH = os.environ.get("BENCH_SWITCH_INTERVAL")
if _SWITCH:
    import sys

    sys.setswitchinterval(float(_SWITCH))

# Scheduling experiments (bench/README.md, Follow-up 4), never the exporter's own settings:
# BENCH_NICE="screen=3,parquet=3" gives each named thread that nice level as it starts;
# BENCH_PIN=main keeps the main thread on CPU 0 (the rest anywhere), BENCH_PIN=split also keeps
# every other thread on CPU 1.
_NICE = os.environ.get("BENCH_NICE")
_PIN = os.environ.get("BENCH_PIN")
if _OUT and (_NICE or _PIN):
    _levels = {k: int(v) for k, v in (kv.split("=") for kv in _NICE.split(","))} if _NICE else {}
    _run_scheduled = threading.Thread.run
    if _PIN:
        os.sched_setaffinity(0, {0})  # the main thread; each thread started later sets its own

    def _scheduled_run(self: threading.Thread) -> None:
        me = threading.get_native_id()
        if _PIN:
            os.sched_setaffinity(me, {1} if _PIN == "split" else set(range(os.cpu_count() or 1)))
        level = _levels.get(re.sub(r"_\d+$", "", self.name))
        if level:
            os.setpriority(os.PRIO_PROCESS, me, level)
        _run_scheduled(self)

    threading.Thread.run = _scheduled_run  # type: ignore[method-assign]
