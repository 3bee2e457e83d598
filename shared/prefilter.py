"""Which lines of a batch need the reference parser: one exact regex screen in C++.

The fast parser keeps nested objects as their raw JSON text and lets msgspec skip over values
it does not convert. That is only right when the text is compact and when nothing in it breaks a
rule that only a full decode checks (UTF-8, nesting depth, numbers out of range, the size cap):
msgspec's skipping checks the JSON grammar and string escapes (lone surrogates included), but
not UTF-8 inside strings nor the range of numbers. One RE2 pass and one UTF-8 validation
(pyarrow, no Python per line) flag every line that *might* break one of those rules; a flagged
line simply takes the slower reference path, so a false alarm costs time, never correctness.

A line that is not flagged is guaranteed: at most ``max_call_bytes`` long, valid UTF-8, one
object whose ``{``/``[`` outside strings balance and nest at most ``max_depth`` levels, no number
with 16+ integer digits (so no integer outside 64 bits) nor an exponent of 3 or more digits (so no
float overflow), and no white space outside strings (so its raw text is compact JSON).

The pass follows the nesting level by level, so it is exact: a line that keeps every rule is never
flagged, however many objects it holds (a big order: a ``products`` array of 20 objects has more
openers than levels). Arrow compiles the pattern for every batch and its size grows with the
levels, so the pass follows the first 12 levels (as cheap as the opener count it replaced); only
when a batch has flagged lines and the cap is deeper does a second pass follow all the levels,
on those lines alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.limits import Limits
from shared.lines import LineBlock

#: Levels the first pass follows (the pattern grows, and compiles slower, with each level).
FIRST_PASS_LEVELS = 12

# Anchored at both ends and string-aware: ``_STRING`` walks over a whole JSON string (escapes
# included), so only bytes outside strings are judged, and RE2 matches binary arrays byte by byte
# (Latin-1), so multi-byte UTF-8 characters are never mistaken for any ASCII character named here.
# Outside strings a compact line holds only: strings, lower-case words (true, false, null), numbers
# each followed by "," / ":" or the end of their container (so no two of them can split one long
# number), separators, and containers.
_STRING = r'"(?:[^"\\]|\\.)*"'
_NUMBER = r"-?\d{1,15}(?:\.\d+)?(?:[eE][+-]?\d{1,2})?"


@lru_cache(maxsize=16)
def _compact_object(levels: int) -> str:
    """Matches a whole line that is one compact object nested at most ``levels`` levels (the
    object itself is level 1) whose numbers are safe. ``{`` and ``[`` are not told apart: a
    mismatched pair fails the decode anyway. Linear in the levels (about 150 bytes each)."""
    inner = rf"(?:{_STRING}|[a-z]+|{_NUMBER}[,:]|[,:])*(?:{_NUMBER})?"
    for _ in range(levels - 1):
        inner = rf"(?:{_STRING}|[a-z]+|[{{\[]{inner}[}}\]]|{_NUMBER}[,:]|[,:])*(?:{_NUMBER})?"
    return rf"^\{{{inner}\}}\n?$"


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
    # Each value keeps its trailing "\n" (the pattern allows it at the very end).
    block = lines if isinstance(lines, LineBlock) else LineBlock.from_lines(lines)
    lengths = block.lengths
    array = block.binary_array()
    first = min(limits.max_depth, FIRST_PASS_LEVELS)
    flags = ~pc.match_substring_regex(array, _compact_object(first)).to_numpy(zero_copy_only=False)
    flagged = np.flatnonzero(flags)
    if first < limits.max_depth and len(flagged):  # maybe only deeper than the first pass looks
        deep = pc.match_substring_regex(array.take(pa.array(flagged)), _compact_object(limits.max_depth))
        flags[flagged] = ~deep.to_numpy(zero_copy_only=False)
    flags |= lengths > limits.max_call_bytes
    flags |= _not_utf8(lines, array)
    return flags
