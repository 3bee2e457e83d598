"""Run the export in-process with misbehaving transports (the harness's ``run`` cannot take them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.clients import build_clients, close_clients
from shared.etl_client import RetryPolicy
from shared.export import run_export
from shared.state_store import StateStore, TypeState, make_table_service
from shared.summary import RunSummary

FAST_ETL = {"retry": RetryPolicy(attempts=3, backoff_base=0.01, backoff_max=0.05)}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def run_with(harness: Any, now: str | datetime, *, blob_transport: Any = None, table_transport: Any = None,
             etl_kwargs: dict[str, Any] | None = None, blob_kwargs: dict[str, Any] | None = None,
             **overrides: str) -> RunSummary:
    settings = harness.settings(**overrides)
    moment = now if isinstance(now, datetime) else at(now)
    bk = dict(blob_kwargs or {})
    if blob_transport is not None:
        bk["transport"] = blob_transport
    tk = {"transport": table_transport} if table_transport is not None else {}
    clients = build_clients(settings, blob_kwargs=bk, table_kwargs=tk,
                            etl_kwargs={**FAST_ETL, **(etl_kwargs or {})})
    try:
        return run_export(settings, clients, moment.astimezone(UTC))
    finally:
        close_clients(clients)


def state_rows(harness: Any, dest_key: str = "2184.13699") -> dict[str, TypeState]:
    """Every state row of the destination, by type (no etag: for comparing before/after)."""
    from dataclasses import replace

    from shared.calltypes import CALL_TYPES

    store = StateStore(make_table_service(harness.azurite.connection_string), harness.table)
    out = {}
    try:
        for t in CALL_TYPES:
            row = store.get(dest_key, t)
            if row is not None:
                out[t] = replace(row, etag="")
    except Exception:  # the table does not exist yet
        return {}
    finally:
        store.service.close()
    return out


def committed(rows: dict[str, TypeState]) -> dict[str, tuple[int, datetime]]:
    """What a run must never move past data that did not land: (position, window end) per type."""
    return {t: (r.position, r.window_end) for t, r in rows.items()}
