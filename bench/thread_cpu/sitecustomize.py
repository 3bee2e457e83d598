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

    def _counted_run(self: threading.Thread) -> None:
        try:
            _run(self)
        finally:
            name = re.sub(r"_\d+$", "", self.name)  # "parquet_0", "stage_1": one entry per pool
            with _lock:
                _seconds[name] += time.thread_time()

    threading.Thread.run = _counted_run  # type: ignore[method-assign]

    @atexit.register
    def _write() -> None:
        with _lock:
            _seconds["MainThread"] += time.thread_time()
            with open(_OUT, "w") as f:
                json.dump(dict(_seconds), f)
