"""Whether a host is this machine (pure): plain http and no compression only make sense there."""

from __future__ import annotations

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str | None) -> bool:
    """Whether a host name is this machine (where plain http and no compression make sense)."""
    return (host or "") in _LOOPBACK or (host or "").startswith("127.")
