"""Where a new destination's export starts, and the check that the run's clock is not far ahead.

A type row is created once, at the destination's start: ``EXPORT_START`` when set, else the start
recorded in the destination's pin (:mod:`shared.pinning`), else, for a new destination, the window
due at the run's clock. That last one is asked of the ETL API before anything records it: if the
ETL API says that window closes more than :data:`CLOCK_AHEAD_LIMIT` from now, the run's clock is
ahead (a host with a bad clock, ``cli run --now`` in the future) and recording it would skip every
window in between for good; the run then records nothing and reports the window as not closed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.calltypes import CALL_TYPES
from shared.errors import ExportError, WindowNotClosed
from shared.etl_client import EtlClient
from shared.settings import Settings
from shared.windows import WINDOW, Window, format_rfc3339, latest_due_end

log = logging.getLogger(__name__)

#: A first window the ETL API closes later than this is not taken as the start (the clock is ahead).
CLOCK_AHEAD_LIMIT = timedelta(days=1)


def first_start(settings: Settings, etl: EtlClient, now: datetime) -> datetime:
    """The start of a new destination's export: ``EXPORT_START``, or the window due at ``now``
    once the ETL API confirms it is (nearly) closed.

    Raises :class:`WindowNotClosed` when the ETL API says that window closes more than
    :data:`CLOCK_AHEAD_LIMIT` after ``now`` (or does not say when): nothing may be recorded.
    """
    if settings.export_start is not None:
        return settings.export_start
    window = Window.starting(latest_due_end(now, settings.settle_seconds) - WINDOW)
    call_type = CALL_TYPES[0]
    pages = etl.pages(call_type, window.start, window.end)
    try:
        next(pages, None)  # one page, read and dropped: the unit reads the window again
    except WindowNotClosed as exc:
        if exc.retry_after is not None and exc.retry_after <= CLOCK_AHEAD_LIMIT.total_seconds():
            return window.start  # it closes soon: the clock is about right, the unit waits for it
        closes = (f"closes in {timedelta(seconds=round(exc.retry_after))}" if exc.retry_after is not None
                  else "is not closed (and it does not say when it closes)")
        raise WindowNotClosed(
            f"the ETL API says the first window {window.label()} {closes}: this run's clock "
            f"({format_rfc3339(now)}) is ahead of it, so the export is not started there (it would skip "
            "every window before); nothing was recorded: fix the host's clock (or the `--now` given), "
            "or set EXPORT_START",
            retry_after=exc.retry_after, window=window, call_type=call_type,
        ) from None
    except ExportError as exc:  # not about the clock: the window's unit meets it and reports it
        log.info("the first window %s could not be read ahead (%s); starting the export there",
                 window.label(), exc)
    finally:
        close = getattr(pages, "close", None)  # a generator: its open response goes back now
        if close is not None:
            close()
    return window.start
