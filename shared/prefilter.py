"""Which lines of a batch need the reference parser: one conservative regex screen in C++.

The fast parser keeps nested objects as their raw JSON text and lets msgspec skip over values
it does not convert. That is only right when the text is compact and when nothing in it breaks a
rule that only a full decode checks (UTF-8, nesting depth, numbers out of range, the size cap):
msgspec's skipping checks the JSON grammar and string escapes (lone surrogates included), but
not UTF-8 inside strings nor the range of numbers. One RE2 pass and one UTF-8 validation
(pyarrow, no Python per line) flag every line that *might* break one of those rules; a flagged
line simply takes the slower reference path, so a false alarm costs time, never correctness.

A line that is not flagged is guaranteed: at most ``max_call_bytes`` long, valid UTF-8, at most
``max_depth`` openers ``{``/``[`` outside strings (so it cannot nest deeper), no number starting
with 16+ digits (so no integer outside 64 bits), no exponent of 3 or more digits (so no float
overflow), and no white space outside strings (so its raw text is compact JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.lines import LineBlock

if TYPE_CHECKING:
    from shared.records import Limits

# One left-to-right pass, anchored at the start of the line and string-aware: ``_STRING`` walks
# over a whole JSON string (escapes included), so only bytes outside strings can trip it.
# Alternatives: white space outside strings; a number starting with 16+ digits; a number with an
# exponent of 3+ digits; more openers ``{``/``[`` outside strings than the depth cap. Both
# alternatives follow the same string structure, so RE2 runs them as one small DFA (about 30%
# cheaper than the unanchored alternatives this replaced). RE2 matches binary arrays byte by byte
# (Latin-1), so multi-byte UTF-8 characters are never mistaken for any ASCII character named here.
_STRING = r'"(?:[^"\\]|\\.)*"'
_PATTERN = (
    rf"^(?:[^\"]|{_STRING})*(?:[ \t\r]|[:,\[]-?\d{{16}}|\d[eE][+-]?\d{{3}})"
    rf"|^(?:[^\"{{\[]|{_STRING})*(?:[{{\[](?:[^\"{{\[]|{_STRING})*){{%d}}"
)


@lru_cache(maxsize=8)
def _pattern(max_depth: int) -> str:
    return _PATTERN % (max_depth + 1)


def _not_utf8(lines: Sequence[bytes], array: pa.LargeBinaryArray) -> np.ndarray:
    """True where a line is not valid UTF-8; Python only looks when Arrow found a bad line."""
    try:
        array.view(pa.large_string()).validate(full=True)
    except pa.ArrowInvalid:
        pass
    else:
        return np.zeros(len(lines), dtype=bool)
    flags = np.zeros(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        try:
            bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            flags[i] = True
    return flags


def needs_reference_path(lines: Sequence[bytes], limits: Limits) -> np.ndarray:
    """Return a bool array: True where ``lines[i]`` must take the reference path."""
    n = len(lines)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # A page's LineBlock is screened in place (zero-copy); a plain list is joined into one first.
    # Each value keeps its trailing "\n", which no alternative can match on.
    block = lines if isinstance(lines, LineBlock) else LineBlock.from_lines(lines)
    lengths = block.lengths
    array = block.binary_array()
    matched = pc.match_substring_regex(array, _pattern(limits.max_depth))
    flags = matched.to_numpy(zero_copy_only=False).astype(bool, copy=True)
    flags |= lengths > limits.max_call_bytes
    flags |= _not_utf8(lines, array)
    return flags
