"""Is any piece of a secret in a text? Stated independently of shared/redact.py: a secret leaks
when 8 consecutive characters of it appear, as sent or in any encoding a message might carry
(percent-encoded either hex case, form-encoded, JSON-escaped with or without ``\\/``, repr)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

FRAGMENT = 8


def encodings(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             repr(secret)[1:-1]}
    forms |= {f.replace("/", "\\/") for f in list(forms)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in list(forms)}
    return {f for f in forms if f}


def fragments(secret: str, size: int = FRAGMENT) -> set[str]:
    out: set[str] = set()
    for form in encodings(secret):
        k = min(size, len(form))
        out.update(form[i:i + k] for i in range(len(form) - k + 1))
    return out


#: The padding tests/support/echoing_etl.py puts before a secret it places across the cut.
PADDING = "x" * 6


def leak(texts: Iterable[str], secrets: Iterable[str]) -> str | None:
    """The first text holding a fragment of a secret (with the fragment), else None.

    Right after the padding of a secret placed across the cut, even its first 4 characters count.
    """
    pieces = set().union(*(fragments(s) for s in secrets if s))
    pieces |= {PADDING + form[:4] for s in secrets if s for form in encodings(s)}
    for text in texts:
        for piece in pieces:
            if piece in text:
                at = text.index(piece)
                return f"{piece!r} in ...{text[max(0, at - 80):at + 80]!r}..."
    return None


def assert_no_leak(texts: Iterable[str], secrets: Iterable[str]) -> None:
    found = leak(list(texts), list(secrets))
    assert found is None, f"a secret leaked: {found}"
