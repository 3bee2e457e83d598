"""Cells -> Arrow: the one place CSV and Parquet turn record columns into a RecordBatch."""

from __future__ import annotations

import pyarrow as pa

from shared.calltypes import COLUMNS
from shared.records import Cell, ParsedBatch

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def schema_for(call_type: str) -> pa.Schema:
    """Every column is a nullable string (objects as JSON text): readers never guess a type."""
    return pa.schema([pa.field(name, pa.string(), nullable=True) for name in COLUMNS[call_type]])


def escape_formula(cell: Cell) -> Cell:
    """OWASP CSV-injection guard (opt-in): prefix ``'`` to a cell a spreadsheet would evaluate."""
    if cell and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def record_batch(batch: ParsedBatch, schema: pa.Schema, escape_formulas: bool = False) -> pa.RecordBatch:
    columns = batch.columns
    if escape_formulas:
        columns = [[escape_formula(c) for c in col] for col in columns]
    arrays = [pa.array(col, pa.string()) for col in columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
