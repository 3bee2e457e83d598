"""What a run talks to (:class:`Clients`), built from the settings here and nowhere else."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shared.blob_store import BlobStore, make_container_client
from shared.etl_client import EtlClient
from shared.settings import Settings
from shared.state_store import StateStore, make_table_service


@dataclass
class Clients:
    """The ETL API, the destination container and the state table of one run."""

    etl: EtlClient
    blobs: BlobStore
    state: StateStore


def build_clients(
    settings: Settings,
    *,
    blob_kwargs: dict[str, Any] | None = None,
    table_kwargs: dict[str, Any] | None = None,
    etl_kwargs: dict[str, Any] | None = None,
) -> Clients:
    """Clients for one run. The ``*_kwargs`` reach the SDK/HTTP clients (tests use them to plug
    in a misbehaving transport or faster retries)."""
    started = time.monotonic()
    etl_options: dict[str, Any] = {
        "deadline": lambda: started + settings.run_budget_seconds,
        "page_timeout": float(settings.etl_page_timeout_seconds),
        "max_pages": settings.max_pages_per_window,
        "max_page_bytes": settings.max_page_bytes,
    }
    etl_options.update(etl_kwargs or {})
    etl = EtlClient(settings.etl_api_endpoint, settings.etl_api_token, **etl_options)
    container = make_container_client(
        sas_url=settings.blob_sas_url,
        account_url=settings.blob_account_url,
        container=settings.blob_container,
        **(blob_kwargs or {}),
    )
    blobs = BlobStore(container, settings.blob_path, sas_url=settings.blob_sas_url)
    service = make_table_service(
        settings.storage_connection, settings.table_service_uri, **(table_kwargs or {})
    )
    return Clients(etl=etl, blobs=blobs, state=StateStore(service, settings.state_table))


def close_clients(clients: Clients) -> None:
    clients.etl.close()
    clients.blobs.close()
    clients.blobs.container.close()
    clients.state.service.close()
