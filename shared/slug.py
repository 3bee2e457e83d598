"""The track ``event`` slug (docs/file-format.md, "`event` and `event_text`"): a pure function of the event name."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65536)
def slugify_event(name: str) -> str:
    """Return the slug of an event name.

    NFKD, combining marks dropped, lower-cased, every run of characters outside ``[a-z0-9]``
    becomes one ``_``, leading/trailing ``_`` trimmed. When nothing is left (a name in a
    non-Latin script, emoji only, empty), ``event_`` + the first 8 hex digits of the SHA-256 of
    the UTF-8 name. Event names repeat a lot, hence the cache.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    slug = _NON_ALNUM.sub("_", stripped).strip("_")
    if slug:
        return slug
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return "event_" + digest[:8]
