"""Keep secrets out of logs, errors and output: the SAS signature and the ETL API token."""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
_SAS_SECRET_KEYS = {"sig"}
_SIG_IN_TEXT = re.compile(r"(?i)(sig=)[^&\s'\"]+")

_lock = threading.Lock()
_secrets: set[str] = set()


def redact_url(url: str) -> str:
    """The URL with its SAS signature replaced (the other SAS fields are useful to read)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, REDACTED if k.lower() in _SAS_SECRET_KEYS else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="/:")))


def redact_text(text: str) -> str:
    """Remove every registered secret and any ``sig=...`` from free text."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return _SIG_IN_TEXT.sub(r"\1" + REDACTED, text)


def register_secret(*values: str | None) -> None:
    """Remember secret values (and a SAS URL's signature) so log records never carry them."""
    with _lock:
        for value in values:
            if not value:
                continue
            _secrets.add(value)
            for key, v in parse_qsl(urlsplit(value).query):
                if key.lower() in _SAS_SECRET_KEYS and v:
                    _secrets.add(v)


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


_factory_installed = False


def install_log_redaction() -> None:
    """Scrub every log record at creation, whichever logger or handler it goes to."""
    global _factory_installed
    with _lock:
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
