"""Azure SDK errors -> the exporter's errors, in one place for blob and table storage (and the
Key Vault reads of secret references, :func:`vault_call`).

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
  :class:`StorageError`, after the SDK's own retries; a transport failure names the host
  (nothing else of the URL: a SAS is in it) and the setting to check (:data:`UNREACHABLE_FIX`),
  never the SDK's urllib3 text;
* on a read, a 404 whose code names the thing read (``BlobNotFound``) means "none"
  (:func:`absent`); any other 404 there is a :class:`StorageConfigError`.

Nothing else in the code maps an SDK error (tests/test_imports.py checks that only this module
and the stores import ``azure.core.exceptions``, and the stores only to see conditional-write
outcomes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.errors import SecretUnresolved, StorageConfigError, StorageError, StoragePermissionError

_T = TypeVar("_T")

#: 4xx statuses that heal by themselves (a slow request, throttling).
TRANSIENT_4XX = frozenset({408, 429})
#: Error codes of bytes damaged on the way: sent again, they go through.
DAMAGED_IN_TRANSIT = frozenset({"Md5Mismatch", "Crc64Mismatch"})

CONTAINER_MISSING = (
    "the destination container does not exist: create it, or fix BLOB_SAS_URL "
    "(or BLOB_ACCOUNT_URL/BLOB_CONTAINER)"
)


#: What to check when a store cannot be reached, by ``service``.
UNREACHABLE_FIX = {
    "table": "check AzureWebJobsStorage (locally: is Azurite running? npm run azurite)",
    "blob": "check BLOB_SAS_URL (or BLOB_ACCOUNT_URL) (locally: is Azurite running? npm run azurite)",
}


def host_of(url: str) -> str:
    """``host[:port]`` of a URL and nothing else (no user, path or query: no secret)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else (host or "?")


def unreachable(service: str, url: str) -> StorageError:
    """The transient error for a store that could not be reached (or broke off its answer)."""
    fix = UNREACHABLE_FIX.get(service, "check the storage settings")
    return StorageError(f"{service} storage unreachable at {host_of(url)}: {fix}")


def error_code(exc: BaseException) -> str:
    """The storage error code (``x-ms-error-code``) as plain text, '' when there is none."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def refused_by_app_storage(exc: HttpResponseError, what: str, role: str) -> StoragePermissionError:
    """A refusal by a store in AzureWebJobsStorage (``what``: "the state table"...), naming the
    role the app's identity needs there."""
    code = error_code(exc) or (f"HTTP {exc.status_code}" if exc.status_code else "AuthorizationFailure")
    return StoragePermissionError(
        f"{what} refused access ({code}): check AzureWebJobsStorage and that the app's identity has {role}"
    )


def storage_call(
    fn: Callable[[], _T],
    *,
    service: str,
    denied: Callable[[HttpResponseError], StoragePermissionError],
    missing: Mapping[str, str],
    url: str = "",
) -> _T:
    """Run one SDK call and map its failure by the rule above.

    ``service`` names the store in messages ("blob", "table"); ``denied`` words a 401/403;
    ``missing`` maps the error codes of a missing parent (container, table) to their message;
    ``url`` is the client's (only its host is shown).
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
    except (ServiceRequestError, ServiceResponseError):
        raise unreachable(service, url) from None


def absent(exc: ResourceNotFoundError, codes: frozenset[str], otherwise: str) -> None:
    """A 404 on a read: returns (the thing is absent) when its code is one of ``codes`` (or none
    is given); raises :class:`StorageConfigError` with ``otherwise`` for any other 404 (a missing
    parent, a wrong name), so a wrong setting is never read as "nothing there"."""
    if error_code(exc) in codes or not error_code(exc):
        return
    raise StorageConfigError(otherwise.format(code=error_code(exc))) from None


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


def vault_call(fn: Callable[[], _T], *, reference: str) -> _T:
    """One Key Vault read of the secret ``reference`` (``@kv:NAME``); a failure is one line naming
    the reference and the fix (:class:`SecretUnresolved`), never the SDK's text (it may quote a URL)."""
    try:
        return fn()
    except ResourceNotFoundError:
        raise SecretUnresolved(f"{reference}: no such secret in the Key Vault (KEY_VAULT_URL): create it or "
                               "fix the reference") from None
    except ClientAuthenticationError:
        raise SecretUnresolved(f"{reference}: the app could not sign in to the Key Vault: check its managed "
                               "identity") from None
    except HttpResponseError as exc:
        raise SecretUnresolved(f"{reference}: the Key Vault answered HTTP {exc.status_code or '?'}: check that the "
                               "app's identity has 'Key Vault Secrets User' on the vault") from None
    except Exception as exc:  # unreachable vault, TLS
        raise SecretUnresolved(f"{reference}: the Key Vault could not be read ({type(exc).__name__}): check "
                               "KEY_VAULT_URL and that the vault is reachable") from None
