"""Streaming helpers: fixed-size batches independent of the API's paging, and read-ahead."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from shared.lines import LineBlock
from shared.page_reader import OversizedLine, Page
from shared.records import RejectedCall

T = TypeVar("T")

#: Lines per parse batch. Batch boundaries decide where a file may be split by the size cap, so
#: they depend only on the order of the calls, never on how the ETL API paged them.
BATCH_LINES = 2000


def rebatch(pages: Iterable[Sequence[bytes]], size: int = BATCH_LINES) -> Iterator[LineBlock]:
    """Regroup pages of lines into batches of exactly ``size`` lines (the last may be shorter)."""
    pending: list[LineBlock] = []
    count = 0
    for page in pages:
        block = page if isinstance(page, LineBlock) else LineBlock.from_lines(page)
        if not pending and len(block) == size:
            yield block
            continue
        offset = 0
        while offset < len(block):
            take = min(size - count, len(block) - offset)
            pending.append(block[offset : offset + take])
            count += take
            offset += take
            if count == size:
                yield LineBlock.concat(pending)
                pending, count = [], 0
    if pending:
        yield LineBlock.concat(pending)


def rebatch_pages(
    pages: Iterable[Page], size: int = BATCH_LINES
) -> Iterator[tuple[LineBlock, list[OversizedLine | RejectedCall]]]:
    """:func:`rebatch` for pages from the ETL client: each batch comes with the over-cap lines
    (``Page.set_aside``) that stood right before one of its lines, or, for the last batch, after
    its last line. So where they land depends only on the order of the lines, never on the
    paging. The last batch may hold no lines, only over-cap ones."""
    pending: list[LineBlock] = []
    count = 0
    extras: list[OversizedLine | RejectedCall] = []
    for page in pages:
        block, marks = page.lines, page.set_aside
        m = 0
        offset = 0
        while offset < len(block):
            take = min(size - count, len(block) - offset)
            while m < len(marks) and marks[m][0] < offset + take:
                extras.append(marks[m][1])
                m += 1
            pending.append(block[offset : offset + take])
            count += take
            offset += take
            if count == size:
                yield LineBlock.concat(pending), extras
                pending, count, extras = [], 0, []
        extras.extend(line for _, line in marks[m:])
    if pending or extras:
        yield (LineBlock.concat(pending) if pending else LineBlock.from_body(b"")), extras


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` ahead (network overlaps parsing).
    ``name``: the thread's (what it does, for profiles and per-thread CPU figures).

    Exceptions are re-raised in the consumer at the position they happened. Closing the returned
    generator early stops the producer at its next item.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)

    # The producer runs in a copy of this context, so what it logs (an ETL retry, a repeated
    # call) carries the run's and the destination's ids like the rest of the run.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(produce,), name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)
