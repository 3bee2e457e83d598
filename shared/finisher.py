"""The overlap of a unit's tail with the next unit: one tail at a time, on its own thread.

While the run claims and streams the next unit, :class:`Finisher` commits the previous unit's
last file, dead letters and state (:meth:`shared.unit.Unit.finish`), so the network and storage
waits of one unit hide behind the work of the next. One unit finishes at a time, in order; the
run waits for a type's tail before that type's next window (it needs the state the tail commits).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from shared.unit import Step, Unit


class Finisher:
    """Submit a streamed unit, wait for a type's tail, drain at the end.

    ``land`` receives each finished unit's :class:`~shared.unit.Step` on the run's thread. Used
    as a context manager: on an error, the tail in flight lands (or fails, quietly: the first
    error is the one reported) before the error goes up, and the thread always stops.
    """

    def __init__(self, land: Callable[[Step], None]) -> None:
        self._land = land
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="finish")
        self._in_flight: tuple[Unit, Future[Step]] | None = None

    def submit(self, unit: Unit) -> None:
        """Finish ``unit`` on the finisher thread (after :meth:`wait`: one tail at a time)."""
        assert self._in_flight is None, "wait() for the tail in flight first"
        self._in_flight = (unit, self._pool.submit(contextvars.copy_context().run, unit.finish))

    def wait(self, call_type: str | None = None) -> None:
        """Let the tail in flight land (only if it is of ``call_type``, when given)."""
        if self._in_flight is None:
            return
        unit, future = self._in_flight
        if call_type is not None and unit.call_type != call_type:
            return
        self._in_flight = None
        self._land(future.result())

    def __enter__(self) -> Finisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is not None:
                with contextlib.suppress(BaseException):
                    self.wait()
        finally:
            self._pool.shutdown(wait=True)
