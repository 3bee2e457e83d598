"""The exporter's errors, and the one place that decides transient vs permanent.

Permanent errors need a person (a bad token, a SAS without a permission, a blob that is not
ours in the way): retrying cannot help, so the run stops with a message that says what to fix.
Transient errors heal by themselves (rate limits, 5xx, dropped connections): the clients retry
them within the run's time budget, and the next run retries whatever is left. In both cases
nothing advances past data that did not land.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.redact import redact_text

if TYPE_CHECKING:
    from shared.windows import Window


class ExportError(Exception):
    """Base class. ``transient`` says whether a later run may succeed without a change.

    The message is scrubbed of secrets when the error is made and again when it is shown
    (:func:`shared.redact.redact_text`): whatever a message quotes (a server's answer, a
    setting's value), no token or SAS signature leaves the process in it.

    The fields it is about are attributes too, for code that handles it (None when unknown):
    ``window`` (:class:`~shared.windows.Window`), ``call_type``, ``blob`` (a blob's name).
    """

    transient = False

    def __init__(
        self,
        *args: object,
        window: Window | None = None,
        call_type: str | None = None,
        blob: str | None = None,
    ) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))
        self.window = window
        self.call_type = call_type
        self.blob = blob

    def __str__(self) -> str:
        return redact_text(super().__str__())


class SettingsError(ExportError):
    """A setting is missing or malformed. The message names the setting and the fix."""


class SecretUnresolved(SettingsError):
    """A destination's secret reference (``@env:``/``@kv:``) did not resolve: the message names the
    reference and the fix, never a value (shared/secret_refs.py)."""


class EtlApiError(ExportError):
    """The ETL API refused a request for good (400, 401, 403) or broke its contract."""

    def __init__(self, message: str, status: int | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.status = status


class EtlApiUnavailable(EtlApiError):
    """The ETL API kept failing transiently (429, 5xx, resets, timeouts, broken pages)."""

    transient = True


class WindowNotClosed(EtlApiError):
    """409: the ETL API says the window is not closed yet; the next run asks again."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None, **fields: Any) -> None:
        super().__init__(message, status=409, **fields)
        self.retry_after = retry_after


class UnitBudgetExceeded(ExportError):
    """One (window, type) took longer than UNIT_BUDGET_SECONDS; the next run resumes it."""

    transient = True


class StorageError(ExportError):
    """Blob or Table storage failed transiently beyond the SDK's own retries."""

    transient = True


class StoragePermissionError(ExportError):
    """403 from storage: SAS expired, tampered, or missing a permission; the message says which."""


class BlobConflictError(ExportError):
    """A blob with our name exists but was not written by this export for this data.

    The exporter never overwrites a file; a person has to look (see docs/guarantees.md).
    """


class StorageConfigError(ExportError):
    """Storage refused a request as invalid (HTTP 400 and other 4xx, a missing container).

    A setting or a name is wrong: retrying cannot help, so it must not look like an outage.
    """


class StateConflictError(ExportError):
    """The stored state does not fit what the exporter sees now.

    The ETL API names another destination than the one the state is pinned to, or a pending
    window was started in a container the settings no longer reach. A person decides.
    """


class ClaimLost(ExportError):
    """Another run took over this (window, type) while we were writing it: we stop, it finishes."""

    transient = True


class UnexpectedError(ExportError):
    """Anything else that stopped a run (a bug, an unforeseen fault), as the timer reports it to
    the Functions host: one scrubbed line; the traceback, scrubbed too, is in the log."""
