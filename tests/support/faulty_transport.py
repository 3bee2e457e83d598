"""Azure SDK transports that misbehave at the HTTP boundary, for fault tests.

* :class:`LosingTransport` sends the request (the service applies it), then drops the response by
  raising ``ServiceResponseError``: the SDK's retry policy resends the request, which now meets
  the state the first attempt created (409/412 for create-only and If-Match writes).
* :class:`FailingTransport` answers the first N matching requests itself with a synthetic 503 (or
  raises a connect timeout) without sending them, so the SDK's retry policy has to heal them.

Pass them as ``build_clients(settings, blob_kwargs={"transport": t}, table_kwargs={"transport": t})``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.pipeline.transport._requests_basic import RequestsTransportResponse

Matcher = Callable[[object], bool]


def _query(request: object) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)  # type: ignore[attr-defined]


def blob_name(request: object) -> str:
    """The blob path of a blob request (container and account stripped), '' for others."""
    parts = [p for p in urlsplit(request.url).path.split("/") if p]  # type: ignore[attr-defined]
    return unquote("/".join(parts[2:])) if len(parts) > 2 else ""


def is_blob_commit(request: object) -> bool:
    """PUT ...?comp=blocklist, or a Put Blob (single-shot upload) of a data file (not of a dead-letter
    file or a manifest)."""
    if request.method != "PUT":  # type: ignore[attr-defined]
        return False
    comp = _query(request).get("comp", [""])[0]
    if comp == "blocklist":
        return True
    return comp == "" and "/_rejected/" not in blob_name(request) and "/_manifests/" not in blob_name(request)


def is_manifest_commit(request: object) -> bool:
    return request.method == "PUT" and "/_manifests/" in blob_name(request)  # type: ignore[attr-defined]


def is_rejected_commit(request: object) -> bool:
    return request.method == "PUT" and "/_rejected/" in blob_name(request)  # type: ignore[attr-defined]


def is_table_conditional_write(request: object) -> bool:
    """A Table entity update with If-Match (the claim and the position commit)."""
    return (
        request.method in ("PUT", "MERGE", "PATCH")  # type: ignore[attr-defined]
        and "If-Match" in request.headers  # type: ignore[attr-defined]
    )


def is_any_write(request: object) -> bool:
    return request.method in ("PUT", "POST", "MERGE", "PATCH")  # type: ignore[attr-defined]


def is_any(request: object) -> bool:
    return True


@dataclass
class Hit:
    method: str
    url: str
    status: int | None


class _Counting(RequestsTransport):
    def __init__(self, match: Matcher, times: int = 1, after: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.match = match
        self.times = times
        self.after = after
        self.fired: list[Hit] = []
        self.seen = 0
        self._lock = threading.Lock()

    def _take(self, request: object) -> bool:
        if not self.match(request):
            return False
        with self._lock:
            self.seen += 1
            if self.seen > self.after and len(self.fired) < self.times:
                self.fired.append(Hit(request.method, request.url, None))  # type: ignore[attr-defined]
                return True
        return False


class LosingTransport(_Counting):
    """Lets the request through, then loses the response of the first ``times`` matching ones."""

    retried_statuses: list[int]

    def __init__(self, match: Matcher, times: int = 1, after: int = 0, **kwargs: object) -> None:
        super().__init__(match, times, after, **kwargs)
        self.retried_statuses = []
        self._after_loss: set[str] = set()

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        lose = self._take(request)
        response = super().send(request, **kwargs)
        key = f"{request.method} {request.url}"
        if lose:
            self.fired[-1].status = response.status_code
            with self._lock:
                self._after_loss.add(key)
            raise ServiceResponseError("injected: the connection dropped before the response arrived")
        with self._lock:
            if key in self._after_loss:
                self._after_loss.discard(key)
                self.retried_statuses.append(response.status_code)
        return response


class FailingTransport(_Counting):
    """Answers the first ``times`` matching requests with a synthetic ``status`` (not sent), or,
    with ``timeout=True``, raises a connect timeout (ServiceRequestError) for them."""

    def __init__(self, match: Matcher, times: int = 1, after: int = 0, status: int = 503,
                 timeout: bool = False, **kwargs: object) -> None:
        super().__init__(match, times, after, **kwargs)
        self.status = status
        self.timeout = timeout

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        if not self._take(request):
            return super().send(request, **kwargs)
        if self.timeout:
            raise ServiceRequestError("injected: connection timed out")
        raw = requests.Response()
        raw.status_code = self.status
        raw.reason = "Service Unavailable"
        raw._content = b'{"odata.error":{"code":"ServerBusy","message":{"value":"injected"}}}'
        raw.headers["Content-Type"] = "application/json"
        raw.headers["Content-Length"] = str(len(raw._content))
        raw.headers["x-ms-error-code"] = "ServerBusy"
        raw.url = request.url
        return RequestsTransportResponse(request, raw)


class CallbackTransport(RequestsTransport):
    """Runs ``callback`` once, just before the first request that ``match`` accepts is sent (then
    sends it for real): a test point to let another writer act at an exact moment of this one."""

    def __init__(self, match: Matcher, callback: Callable[[], None], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.match = match
        self.callback = callback
        self.fired = False
        self._lock = threading.Lock()

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        with self._lock:
            fire = not self.fired and self.match(request)
            self.fired = self.fired or fire
        if fire:
            self.callback()
        return super().send(request, **kwargs)


def is_stage_of(suffix: str) -> Matcher:
    """A Put Block of a blob whose name ends with ``suffix``."""
    return lambda r: (r.method == "PUT" and _query(r).get("comp", [""])[0] == "block"  # type: ignore[attr-defined]
                      and blob_name(r).endswith(suffix))


def is_commit_of(suffix: str) -> Matcher:
    """The create-only commit (Put Block List or a single-shot Put Blob) of a blob ending with ``suffix``."""
    return lambda r: is_blob_commit(r) and blob_name(r).endswith(suffix)
