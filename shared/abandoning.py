"""A context manager that drops what it holds when its block raises (no ``except: abandon()``)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AbandonedOnError:
    """``with thing: ...``: if the block raises, ``thing.abandon()`` runs and the error goes on.

    For what holds uploads that must never be committed after an error (a file, a dead-letter
    file, a started unit). ``abandon`` must be safe to call at any time, more than once.
    """

    def abandon(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abandon()
