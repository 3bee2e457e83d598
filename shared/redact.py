"""Keep secrets out of everything that leaves the process: logs, exception messages, span status
and attributes, CLI output.

Secrets are registered once, when the settings are parsed (:func:`register_secret`,
:func:`register_url`, :func:`register_connection_string`): the ETL API token, the SAS ``sig`` (of
``BLOB_SAS_URL`` and of a query on ``BLOB_ACCOUNT_URL``), a URL's password, the storage
connection string's ``AccountKey``. Each exit then scrubs through :func:`redact_text`.

The rule (what :func:`redact_text` guarantees, tests/test_redact.py checks it with hypothesis):

- a secret is found as sent, percent-encoded (either hex case, ``quote``/``quote_plus``),
  JSON-escaped (with ``\\/`` or ``\\u`` escapes) and ``repr``-escaped;
- no run of :data:`FRAGMENT` or more consecutive characters of any of those forms survives, so a
  secret that a server echoed truncated, or that a cut split, leaves nothing usable (a secret
  shorter than :data:`FRAGMENT` is only matched whole);
- ``sig=``, ``AccountKey=``, ``SharedAccessKey=`` values, a URL's password and a long
  ``Bearer`` token are removed even when they were never registered.

Text from a remote server is untrusted: :func:`untrusted` strips its control characters, cuts it
to a short prefix *first*, then redacts; a cut that leaves the first
:data:`TAIL_FRAGMENT`..``FRAGMENT - 1`` characters of a secret at the end removes them too.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
#: A run of this many characters of a secret is redacted wherever it appears.
FRAGMENT = 8
#: A cut may not leave this many (or more) leading characters of a secret at its end.
TAIL_FRAGMENT = 4
#: How much of a remote server's text is kept (characters).
UNTRUSTED_LIMIT = 200
#: Query parameters whose values are credentials (a SAS signature, API keys).
SECRET_QUERY_KEYS = frozenset({
    "sig", "signature", "code", "key", "apikey", "api_key", "api-key", "token", "access_token",
    "password", "secret", "client_secret",
})

_PATTERNS = (
    (re.compile(r"(?i)(sig(?:=|%3D))[^&\s'\"<>]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)((?:AccountKey|SharedAccessKey)=)[^;\s'\"]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{12,}=*"), r"\1" + REDACTED),
    (re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(@)"), r"\1" + REDACTED + r"\2"),
)
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def secret_forms(secret: str) -> set[str]:
    """The ways ``secret`` is written in URLs, JSON and Python reprs."""
    forms = {secret}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms.add(encoded)
        forms.add(_HEX_ESCAPE.sub(lambda m: m.group().lower(), encoded))
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.update((escaped, escaped.replace("/", "\\/")))
    forms.add(repr(secret)[1:-1])
    return {f for f in forms if f}


class Redactor:
    """A set of registered secrets and the scrubbing that goes with it. The process has one
    (:data:`default`, behind the module's functions); tests make their own.

    Thread-safe: the lookup sets only grow, under a lock; a reader tests membership without it,
    which CPython keeps safe while another thread adds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: set[str] = set()
        self._grams: list[tuple[int, set[str]]] = []  # (length, runs of that length), by length
        self._tails: set[str] = set()  # leading TAIL_FRAGMENT..FRAGMENT-1 characters of each form
        self._max_tail = 0

    # --- registering ------------------------------------------------------------------------
    def register_secret(self, *values: str | None) -> None:
        """Remember secret values (a token, a key) so that nothing leaving the process carries them.

        For a URL use :meth:`register_url`, for a connection string
        :meth:`register_connection_string`: they register the credentials in it, not the whole
        text (whose pieces, a host name or ``AccountName=``, are not secret and worth reading).
        """
        for value in values:
            if value:
                self._register(value)

    def register_url(self, url: str | None) -> None:
        """A URL's credentials: its password and the values of :data:`SECRET_QUERY_KEYS` (as
        decoded and as written), not the rest (the host and other SAS fields are useful to read)."""
        if not url:
            return
        parts = urlsplit(url)
        if parts.password:
            self._register(parts.password)
        for item in parts.query.split("&"):
            key, _, raw = item.partition("=")
            if key.lower() in SECRET_QUERY_KEYS and raw:
                self._register(raw)
        for key, value in parse_qsl(parts.query):
            if key.lower() in SECRET_QUERY_KEYS:
                self._register(value)

    def register_connection_string(self, conn: str | None) -> None:
        """A storage connection string's ``AccountKey`` and its ``SharedAccessSignature``'s sig."""
        for part in (conn or "").split(";"):
            key, _, value = part.partition("=")
            key = key.strip().lower()
            if key in ("accountkey", "sharedaccesskey") and value:
                self._register(value.strip())
            elif key == "sharedaccesssignature" and value:
                self.register_url("https://x/?" + value.strip())

    def _register(self, secret: str) -> None:
        with self._lock:
            if secret in self._registered:
                return
            self._registered.add(secret)
            by_length = dict(self._grams)
            for form in secret_forms(secret):
                k = min(FRAGMENT, len(form))
                if k not in by_length:
                    by_length[k] = set()
                    self._grams = sorted(by_length.items())  # a new list: readers keep the old one
                by_length[k].update(form[i:i + k] for i in range(len(form) - k + 1))
                tails = [form[:n] for n in range(TAIL_FRAGMENT, min(FRAGMENT, len(form)))]
                self._tails.update(tails)
                self._max_tail = max([self._max_tail, *map(len, tails)])

    # --- scrubbing ----------------------------------------------------------------------------
    def redact_text(self, text: str, *, cut: bool = False) -> str:
        """``text`` without any registered secret (nor a fragment of one) and without unregistered
        ``sig=``/``AccountKey=``/password/Bearer values. ``cut``: the text was cut at its end, so
        a secret's first characters there go too."""
        if not text:
            return text
        n = len(text)
        marks: list[list[int]] = []
        for k, grams in self._grams:
            last: list[int] | None = None
            for i in range(n - k + 1):
                if text[i:i + k] in grams:
                    if last is not None and i <= last[1]:
                        last[1] = i + k
                    else:
                        last = [i, i + k]
                        marks.append(last)
        if cut and self._max_tail:
            for size in range(min(self._max_tail, n), TAIL_FRAGMENT - 1, -1):
                if text[n - size:] in self._tails:
                    marks.append([n - size, n])
                    break
        if marks:
            marks.sort()
            out, at = [], 0
            for start, end in marks:
                if end <= at:
                    continue
                if start >= at:
                    out.append(text[at:start])
                    out.append(REDACTED)
                at = end
            out.append(text[at:])
            text = "".join(out)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def untrusted(self, text: str | bytes, limit: int = UNTRUSTED_LIMIT) -> str:
        """Text from outside (a server's error body, a header) made safe to show: control
        characters out (tabs and line ends become spaces), cut to ``limit`` characters, then
        redacted (:meth:`redact_text` with ``cut``). A cut text ends with ``...``."""
        if isinstance(text, bytes):
            text = text[: limit * 4 + 64].decode("utf-8", errors="replace")
        head = text[: limit * 2 + 64]
        kept = []
        for ch in head:
            if ch in "\t\n\r":
                kept.append(" ")
            elif not _is_control(ch):
                kept.append(ch)
        clean = "".join(kept)
        cut = len(clean) > limit or len(head) < len(text)
        out = self.redact_text(clean[:limit], cut=cut)
        return out + "..." if cut else out


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls (ESC, NEL, CSI ...); Cf: format (bidi overrides); Zl/Zp: line and
    # paragraph separators; Cs: lone surrogates.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs")


#: The process's secrets: the settings register them, every exit scrubs with them.
default = Redactor()
register_secret = default.register_secret
register_url = default.register_url
register_connection_string = default.register_connection_string
redact_text = default.redact_text
untrusted = default.untrusted


def redact_url(url: str) -> str:
    """The URL with its password and secret query values (the SAS ``sig``) replaced; the other
    SAS fields are useful to read."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@", 1)
    if not parts.query:
        return urlunsplit(parts._replace(netloc=netloc)) if netloc != parts.netloc else url
    query = [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/:")))


class RedactingWriter(io.TextIOBase):
    """A text stream that scrubs everything written through it (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:  # type: ignore[override]
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs the formatted message and exception text of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            clean_exc = redact_text(text)
            if clean_exc != text:
                record.exc_info, record.exc_text = None, clean_exc
        return True


_factory_lock = threading.Lock()
_factory_installed = False


def install_log_redaction() -> None:
    """Scrub every log record at creation, whichever logger or handler it goes to."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()
    scrub = RedactingFilter()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub.filter(record)
        return record

    logging.setLogRecordFactory(factory)
