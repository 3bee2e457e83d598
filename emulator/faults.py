"""Injectable faults for the emulator (see :meth:`EmulatorServer.add_fault`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["FAULT_KINDS", "Fault", "FaultSet"]

FAULT_KINDS = frozenset(
    {
        "status", "reset", "delay", "truncate", "no_final_newline", "html", "loop_cursor", "bad_gzip",
        "bad_cursor", "drip",
    }
)


@dataclass
class Fault:
    """Applies to the next ``times`` requests whose path equals ``path`` (``None`` = any path) and, if
    ``call_type`` is given, whose ``type`` query parameter equals it, after skipping the first ``after``
    such requests. Then it is used up.

    kinds: "status" (respond ``status`` with ``{"error": "injected"}`` and optional Retry-After),
    "reset" (drop the connection without a response), "delay" (sleep ``delay`` s, then answer normally),
    "truncate" (announce the full Content-Length, send part of the body, close), "no_final_newline",
    "html" (200 text/html error page), "loop_cursor" (X-Next-Cursor = the request's own cursor),
    "bad_gzip" (Content-Encoding: gzip with a corrupted body), "bad_cursor" (the normal page with
    ``X-Next-Cursor: <cursor>``, by default empty, also on the last page), "drip" (the normal answer
    with the first ``drip_bytes`` bytes of its body sent one at a time, ``delay`` s apart).
    """

    kind: str
    path: str | None = "/v1/calls"
    call_type: str | None = None
    times: int = 1
    after: int = 0
    status: int = 503
    retry_after: int | float | str | None = None
    delay: float = 0.0
    cursor: str = ""
    drip_bytes: int = 64
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")

    @property
    def used_up(self) -> bool:
        return self.fired >= self.times

    def matches(self, path: str, query: dict[str, str]) -> bool:
        if self.path is not None and path != self.path:
            return False
        return not (self.call_type is not None and query.get("type") != self.call_type)


class FaultSet:
    """Thread-safe list of pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.used_up]

    def take(self, path: str, query: dict[str, str]) -> Fault | None:
        """Count this request against every matching fault; return the first one that fires."""
        chosen = None
        with self._lock:
            for f in self._faults:
                if f.used_up or not f.matches(path, query):
                    continue
                f.seen += 1
                if chosen is None and f.seen > f.after:
                    f.fired += 1
                    chosen = f
                elif f.seen > f.after:
                    f.seen -= 1  # not fired this time: keep it armed for the next matching request
            self._faults = [f for f in self._faults if not f.used_up]
        return chosen
