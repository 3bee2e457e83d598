"""Cells -> Arrow: the one place CSV and Parquet turn record columns into a RecordBatch."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from shared.calltypes import COLUMNS
from shared.records import Cell, ParsedBatch

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_PATTERN = r"^[=+\-@\t\r]"


def schema_for(call_type: str) -> pa.Schema:
    """Every column is a nullable string (objects as JSON text): readers never guess a type."""
    return pa.schema([pa.field(name, pa.string(), nullable=True) for name in COLUMNS[call_type]])


def escape_formula(cell: Cell) -> Cell:
    """OWASP CSV-injection guard (opt-in): prefix ``'`` to a cell a spreadsheet would evaluate."""
    if cell and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def escape_formula_array(array: pa.Array) -> pa.Array:
    """:func:`escape_formula` on a whole string array, in C++."""
    risky = pc.match_substring_regex(array, _FORMULA_PATTERN)
    return pc.if_else(risky, pc.binary_join_element_wise("'", array, ""), array)


def record_batch(batch: ParsedBatch, schema: pa.Schema, escape_formulas: bool = False) -> pa.RecordBatch:
    """The batch's cells as a RecordBatch of ``schema`` (``batch.arrow`` as is, when set)."""
    if batch.arrow is not None:
        rb = batch.arrow
        if not rb.schema.equals(schema):
            raise ValueError(f"a {batch.call_type} batch does not have the {batch.call_type} columns")
        arrays = list(rb.columns)
    else:
        arrays = [pa.array(col, pa.string()) for col in batch.columns]
    if escape_formulas:
        arrays = [escape_formula_array(a) for a in arrays]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
