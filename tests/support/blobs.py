"""Read a container back: names, bytes, metadata; parse the files of each format."""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from azure.storage.blob import BlobServiceClient


@dataclass
class StoredBlob:
    name: str
    data: bytes
    metadata: dict[str, str]
    etag: str
    last_modified: Any


def read_container(service: BlobServiceClient, container: str) -> dict[str, StoredBlob]:
    client = service.get_container_client(container)
    out = {}
    for props in client.list_blobs(include=["metadata"]):
        data = client.download_blob(props.name).readall()
        out[props.name] = StoredBlob(props.name, data, dict(props.metadata or {}), props.etag,
                                     props.last_modified)
    return out


def rows_of(name: str, data: bytes) -> list[dict[str, Any]]:
    """The rows of a data file as dicts (CSV via Python's csv module, empty cell -> None)."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name[:-3]
    if name.endswith(".json"):
        text = data.decode("utf-8")
        assert text.endswith("\n")
        return [json.loads(line) for line in text.split("\n")[:-1]]
    if name.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    raise AssertionError(f"unknown file type: {name}")


def csv_rows_via_arrow(data: bytes, columns: list[str]) -> list[dict[str, Any]]:
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(column_types={c: "string" for c in columns},
                                             strings_can_be_null=True, quoted_strings_can_be_null=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
    )
    return table.to_pylist()
