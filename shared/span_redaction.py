"""Scrub secrets from every span before it is exported: status, attributes, events (exceptions).

One OpenTelemetry span processor, added to the tracer provider when telemetry is configured
(:func:`shared.telemetry.configure_azure_monitor`). When a span starts, the processor routes the
span's writers (``set_attribute``, ``set_attributes``, ``add_event`` and so ``record_exception``,
``set_status``) through :func:`shared.redact.redact_text`, so whatever sets them (the export, the
Azure SDK's own spans, an exception recorded on the way out) cannot put a token or a SAS
signature on a span. A span's exported form is built from what was set, so there is nothing
left to scrub afterwards.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor
from opentelemetry.trace import Status

from shared.redact import redact_text

log = logging.getLogger(__name__)


def scrub_value(value: Any) -> Any:
    """An attribute value with its text scrubbed (strings and sequences of strings)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_text(v) if isinstance(v, str) else v for v in value)
    return value


def scrub_attributes(attributes: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not attributes:
        return attributes
    return {key: scrub_value(value) for key, value in attributes.items()}


class RedactingSpanProcessor(SpanProcessor):
    """Makes every span it sees start scrub what is written to it."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            _guard(span)
        except Exception:  # a processor must never break the traced code
            log.debug("could not guard a span against secrets", exc_info=True)


def _guard(span: Span) -> None:
    set_attribute, set_attributes = span.set_attribute, span.set_attributes
    add_event, set_status = span.add_event, span.set_status

    def guarded_set_attribute(key: str, value: Any) -> None:
        set_attribute(key, scrub_value(value))

    def guarded_set_attributes(attributes: Mapping[str, Any]) -> None:
        set_attributes(scrub_attributes(attributes) or {})

    def guarded_add_event(name: str, attributes: Mapping[str, Any] | None = None,
                          timestamp: int | None = None) -> None:
        add_event(name, scrub_attributes(attributes), timestamp)

    def guarded_set_status(status: Any, description: str | None = None) -> None:
        if isinstance(status, Status) and status.description:
            status = Status(status.status_code, redact_text(status.description))
        elif description:
            description = redact_text(description)
        set_status(status, description)

    # Instance attributes win over the class's methods, for callers and for the span's own
    # record_exception (which adds its event through self.add_event).
    span.set_attribute = guarded_set_attribute  # type: ignore[method-assign]
    span.set_attributes = guarded_set_attributes  # type: ignore[method-assign]
    span.add_event = guarded_add_event  # type: ignore[method-assign]
    span.set_status = guarded_set_status  # type: ignore[method-assign]
    given = span.attributes or {}  # the attributes the span was started with
    dirty = {key: clean for key, value in given.items() if (clean := scrub_value(value)) != value}
    if dirty:
        set_attributes(dirty)


_installed: weakref.WeakSet[Any] = weakref.WeakSet()


def install_span_redaction(provider: Any) -> bool:
    """Add the processor to an SDK tracer provider (once). False when ``provider`` is not one
    (no SDK configured: spans are not recorded at all then)."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    if provider not in _installed:
        add(RedactingSpanProcessor())
        _installed.add(provider)
    return True
