"""Network locations (pure): whether a host is this machine (plain http and no compression only
make sense there), and where a container is, with no secret."""

from __future__ import annotations

from urllib.parse import urlsplit

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str | None) -> bool:
    """Whether a host name is this machine (where plain http and no compression make sense)."""
    return (host or "") in _LOOPBACK or (host or "").startswith("127.")


def container_location(*, sas_url: str = "", account_url: str = "", container: str = "") -> str:
    """Where the container is, with no secret and no query: ``https://acct.blob.core.windows.net/c``.

    A SAS URL and an account URL + container name for the same container give the same text, so
    a switch between the two (or a SAS rotation) is not a change of place.
    """
    if sas_url:
        parts = urlsplit(sas_url)
        path = parts.path.rstrip("/")
    else:
        parts = urlsplit(account_url)
        path = f"{parts.path.rstrip('/')}/{container.strip('/')}"
    host = (parts.hostname or "").lower()
    default_port = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme.lower()}://{host}{port}{path}"
