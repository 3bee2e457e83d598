"""The work queue (EXPORT_QUEUE) and its poison queue, in the app's storage account.

Messages are base64-encoded text, as the Functions queue trigger reads them by default
(``extensions.queues.messageEncoding`` is ``base64``), so items sent by ``plan`` or by a worker
are read by the queue-triggered function and by ``work`` alike. The poison queue is
``<EXPORT_QUEUE>-poison``, the name the Functions host moves a message to once its dequeue count
passed ``maxDequeueCount`` (host.json; :data:`MAX_DEQUEUE_COUNT` here, kept equal by a test).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    QueueServiceClient,
    TextBase64EncodePolicy,
)

from shared.azure_errors import error_code, refused_by_app_storage, storage_call
from shared.errors import ExportError, SettingsError, StoragePermissionError
from shared.settings import Settings
from shared.state_store import AZURITE_CONNECTION_STRING, CONNECTION_TIMEOUT, READ_TIMEOUT, RETRY_TOTAL

log = logging.getLogger(__name__)

#: host.json ``extensions.queues.maxDequeueCount``: the delivery after this many goes to poison.
MAX_DEQUEUE_COUNT = 5
POISON_SUFFIX = "-poison"


class LeaseLapsed(ExportError):
    """The pop receipt we hold is stale: the message became visible and was taken again."""

    transient = True


@dataclass(frozen=True)
class QueueDepth:
    """What the planner records as gauges, and ``status`` shows."""

    queue: str
    messages: int  # approximate count, visible and invisible
    oldest_age_seconds: float  # of the oldest visible message; 0 when none is visible
    poison: int


def make_queue_service(settings: Settings, credential: Any = None, **kwargs: Any) -> QueueServiceClient:
    options: dict[str, Any] = {"connection_timeout": CONNECTION_TIMEOUT, "read_timeout": READ_TIMEOUT,
                               "retry_total": RETRY_TOTAL}
    options.update(kwargs)
    conn = settings.storage_connection
    if conn:
        if conn.strip() == "UseDevelopmentStorage=true":
            conn = AZURITE_CONNECTION_STRING
        return QueueServiceClient.from_connection_string(conn, **options)
    if not settings.queue_service_uri:
        raise SettingsError(
            "AzureWebJobsStorage__queueServiceUri is not set: with an identity-based AzureWebJobsStorage, set "
            "it (or AzureWebJobsStorage__accountName) so the exporter finds the work queue"
        )
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return QueueServiceClient(settings.queue_service_uri, credential=credential, **options)


class WorkQueue:
    """Send, receive, renew, delete and poison work items: the queue and its poison queue."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        self.service = service
        self.name = name
        self.poison_name = name + POISON_SUFFIX
        # Sent base64-encoded; read raw and decoded here (:func:`decode`), since the SDK's decode
        # policy raises on a message someone put without base64, which would stop every reader.
        policies = {"message_encode_policy": TextBase64EncodePolicy()}
        self.queue: QueueClient = service.get_queue_client(name, **policies)
        self.poison: QueueClient = service.get_queue_client(self.poison_name, **policies)

    @classmethod
    def of(cls, settings: Settings, **kwargs: Any) -> WorkQueue:
        return cls(make_queue_service(settings, **kwargs), settings.export_queue)

    def ensure(self) -> None:
        """Create both queues if absent (a plan does it first)."""
        for client in (self.queue, self.poison):
            with contextlib.suppress(ResourceExistsError):
                self._call(client.create_queue)

    def send(self, text: str, *, delay_seconds: int = 0) -> None:
        self._call(lambda: self.queue.send_message(text, visibility_timeout=delay_seconds or None))

    def receive(self, lease_seconds: int) -> QueueMessage | None:
        """One visible message, now invisible for ``lease_seconds`` (its dequeue count counted), its
        content decoded; see :func:`decode` for one that is not base64."""
        got = self._call(lambda: list(self.queue.receive_messages(
            max_messages=1, visibility_timeout=lease_seconds)))
        return decode(got[0]) if got else None

    def renew(self, message: QueueMessage, lease_seconds: int) -> QueueMessage:
        """Keep ``message`` invisible for another ``lease_seconds``; the returned message holds the new
        pop receipt (the old one no longer deletes it). :class:`LeaseLapsed` when it is not ours any more."""
        return self._call(lambda: self._raw(lambda: self.queue.update_message(
            message, visibility_timeout=lease_seconds)))

    @staticmethod
    def _raw(fn: Any) -> Any:
        try:
            return fn()
        except HttpResponseError as exc:
            if error_code(exc) == "PopReceiptMismatch":
                raise LeaseLapsed("the message's lease lapsed and another worker took it") from None
            raise

    def delete(self, message: QueueMessage) -> bool:
        """Delete a message we hold; False when it is not ours any more (its lease lapsed and another
        worker took it, or it is gone): that worker's handling is the one that counts."""
        try:
            self._call(lambda: self._raw(lambda: self.queue.delete_message(message)))
        except (ResourceNotFoundError, LeaseLapsed):
            log.warning("work item %s: its lease lapsed before it was deleted; another delivery handles it",
                        message.id)
            return False
        return True

    def to_poison(self, message: QueueMessage) -> None:
        """What the Functions host does after ``maxDequeueCount``: copy to the poison queue, delete."""
        self._call(lambda: self.poison.send_message(str(message.content)))
        self.delete(message)

    def poison_messages(self, limit: int = 32) -> Iterator[QueueMessage]:
        for message in self._call(lambda: list(self.poison.peek_messages(max_messages=min(limit, 32)))):
            yield decode(message)

    def depth(self, now: datetime | None = None) -> QueueDepth:
        now = now or datetime.now(UTC)
        messages = self._count(self.queue)
        oldest = 0.0
        if messages:
            peeked = self._call(lambda: list(self.queue.peek_messages(max_messages=1)))
            if peeked and peeked[0].inserted_on is not None:
                oldest = max(0.0, (now - peeked[0].inserted_on).total_seconds())
        return QueueDepth(self.name, messages, oldest, self._count(self.poison))

    def close(self) -> None:
        self.queue.close()
        self.poison.close()
        self.service.close()

    def _count(self, client: QueueClient) -> int:
        try:
            props = self._call(client.get_queue_properties)
        except ResourceNotFoundError:
            return 0
        return int(props.approximate_message_count or 0)

    def _call(self, fn: Any) -> Any:
        return storage_call(fn, service="queue", denied=_denied, missing={}, url=self.service.url)


def decode(message: QueueMessage) -> QueueMessage:
    """``message`` with its base64 content decoded to text. A message that is not base64 UTF-8 text
    (put by hand without encoding) keeps its raw content and gets ``undecodable`` True: its handler
    fails it, so it ends in the poison queue like any unreadable item."""
    raw = message.content
    text = None
    if isinstance(raw, str):
        with contextlib.suppress(binascii.Error, UnicodeError, ValueError):
            text = base64.b64decode(raw.encode("ascii"), validate=True).decode("utf-8")
    message.undecodable = text is None  # type: ignore[attr-defined]
    message.content = text if text is not None else raw
    return message


def _denied(exc: HttpResponseError) -> StoragePermissionError:
    return refused_by_app_storage(
        exc, "the work queue", "'Storage Queue Data Contributor' on the app's storage account")
