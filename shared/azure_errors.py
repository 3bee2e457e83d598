"""Azure SDK errors -> the exporter's errors, in one place for blob and table storage.

The rule (docs/guarantees.md, "Permanent errors"):

* conditional-write outcomes pass through unchanged, the caller decides what they mean:
  ``ResourceExistsError`` (409, the name is taken), ``ResourceModifiedError`` (412, the ETag moved)
  and ``ResourceNotFoundError`` (404) for a missing blob or entity;
* a 404 for the *parent* (``ContainerNotFound``, ``TableNotFound`` on a write) is a
  :class:`StorageConfigError`: the container or table is not there, no run can succeed;
* 401/403 is a :class:`StoragePermissionError` worded by the caller (which permission, which SAS);
* any other 4xx except 408 and 429 (400 above all) is a :class:`StorageConfigError`: a setting or a
  name is wrong, and it must not look like an outage;
* 408, 429, 5xx, a block refused because its bytes do not match the MD5 sent with them
  (``Md5Mismatch``: damaged on the way) and transport failures are a transient
  :class:`StorageError`, after the SDK's own retries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import StorageConfigError, StorageError, StoragePermissionError
from shared.redact import redact_text

_T = TypeVar("_T")

#: 4xx statuses that heal by themselves (a slow request, throttling).
TRANSIENT_4XX = frozenset({408, 429})
#: Error codes of bytes damaged on the way: sent again, they go through.
DAMAGED_IN_TRANSIT = frozenset({"Md5Mismatch", "Crc64Mismatch"})

CONTAINER_MISSING = (
    "the destination container does not exist: create it, or fix BLOB_SAS_URL "
    "(or BLOB_ACCOUNT_URL/BLOB_CONTAINER)"
)


def error_code(exc: BaseException) -> str:
    """The storage error code (``x-ms-error-code``) as plain text, '' when there is none."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def storage_call(
    fn: Callable[[], _T],
    *,
    service: str,
    denied: Callable[[HttpResponseError], StoragePermissionError],
    missing: Mapping[str, str],
) -> _T:
    """Run one SDK call and map its failure by the rule above.

    ``service`` names the store in messages ("blob", "table"); ``denied`` words a 401/403;
    ``missing`` maps the error codes of a missing parent (container, table) to their message.
    """
    try:
        return fn()
    except ResourceNotFoundError as exc:
        message = missing.get(error_code(exc))
        if message is not None:
            raise StorageConfigError(message) from None
        raise
    except (ResourceExistsError, ResourceModifiedError):
        raise
    except ClientAuthenticationError as exc:
        raise denied(exc) from None
    except HttpResponseError as exc:
        raise classify(exc, service, denied, missing) from None
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageError(f"{service} storage unreachable: {redact_text(str(exc))[:200]}") from None


def classify(
    exc: HttpResponseError,
    service: str,
    denied: Callable[[HttpResponseError], StoragePermissionError],
    missing: Mapping[str, str],
) -> StorageError | StorageConfigError | StoragePermissionError:
    """Our error for an HTTP failure that is not a conditional-write outcome (pure)."""
    status = exc.status_code
    code = error_code(exc)
    if status in (401, 403):
        return denied(exc)
    if code in missing:
        return StorageConfigError(missing[code])
    if code in DAMAGED_IN_TRANSIT:
        return StorageError(
            f"{service} storage refused bytes damaged on the way (HTTP {status} {code}); nothing "
            "was committed and the next run sends them again"
        )
    if status is not None and 400 <= status < 500 and status not in TRANSIENT_4XX:
        return StorageConfigError(
            f"{service} storage rejected a request: HTTP {status} {code}".rstrip()
            + ": a setting or a name is wrong (not an outage; retrying cannot help); "
            "run `python -m shared.cli check` and see docs/operations.md"
        )
    return StorageError(f"{service} storage failed: HTTP {status} {code}".strip())
