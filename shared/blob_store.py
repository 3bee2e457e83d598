"""The destination container: file names, staged create-only uploads, and verifying our own blobs.

Every data file is written once: blocks are staged as the writer fills them (block ids unique to
the upload attempt, so two writers of one name never mix blocks) and the block list is committed
with ``If-None-Match: *`` together with the file's metadata (window, type, position, rows, SHA-256
of the content), after the writer checked that it still holds its claim. A blob is never
overwritten, appended or touched after that commit. When a commit finds the name taken (409/412),
the blob is ours only if its metadata records the same window, type and content hash: then the
write already happened (a lost response, a crashed run, a concurrent identical run) and counts as
done; anything else is a BlobConflictError for a person to look at. Storage failures are mapped to
our errors in shared/azure_errors.py.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings, ExponentialRetry

from shared.azure_errors import CONTAINER_MISSING, absent, error_code, storage_call
from shared.errors import BlobConflictError, StorageError, StoragePermissionError
from shared.windows import Window, format_rfc3339

log = logging.getLogger(__name__)

# Transport settings, spelled out (the SDK defaults are tuned for interactive use).
# Staged block size; also the single-shot upload threshold. 16 MiB, not 8: half the Put Block
# requests, and Azurite's CPU per 1M real Parquet calls 3.6-4.3 -> 3.1-3.3 s (bench/README.md).
BLOCK_SIZE = 16 * 1024 * 1024
UPLOAD_CONCURRENCY = 2  # blocks in flight per file: 32 MiB of buffers at most
CONNECTION_TIMEOUT = 20  # seconds
READ_TIMEOUT = 120  # seconds; a block of 16 MiB takes well under that on a slow link
RETRY_TOTAL = 5  # the SDK's exponential retry on 408/429/5xx/connection errors
# The blob SDK ignores ``retry_backoff_factor``: its ExponentialRetry waits initial_backoff
# (default 15 s) + increment_base ** n, +/- jitter. Spelled out here: 2, 4, 6, 10, 18 s.
RETRY_BACKOFF = 2  # seconds before the first retry
RETRY_INCREMENT_BASE = 2  # added as RETRY_INCREMENT_BASE ** n before the n-th further retry
RETRY_JITTER = 1  # seconds either side
#: Each staged block, and a small file's single request, carries its MD5 (``Content-MD5``), which
#: storage checks before it takes the bytes: a block damaged on the way is refused (and retried),
#: never committed. It costs an MD5 of the bytes on the upload threads (0.4 CPU-s per 354 MB); on
#: Azurite it also replaces the CRC-64 Azurite computes for every block that has no MD5, in
#: JavaScript byte by byte (half of Azurite's CPU in bench/run.py).
CONTENT_MD5 = True

_T = TypeVar("_T")


@dataclass(frozen=True)
class FileIdentity:
    """What a data file is: recorded in its metadata when it is committed."""

    window_start: datetime
    window_end: datetime
    call_type: str
    position: int  # 0 for a dead-letter file
    kind: str = "data"  # data | rejected

    @property
    def window(self) -> Window:
        return Window(self.window_start, self.window_end)

    def metadata(self, rows: int, sha256: str) -> dict[str, str]:
        return {
            "exporter": "cdp-blob-exporter",
            "kind": self.kind,
            "window_start": format_rfc3339(self.window_start),
            "window_end": format_rfc3339(self.window_end),
            "call_type": self.call_type,
            "position": str(self.position),
            "rows": str(rows),
            "sha256": sha256,
        }

    def matches(self, metadata: Mapping[str, str]) -> bool:
        md = {k.lower(): v for k, v in metadata.items()}
        return (
            md.get("window_start") == format_rfc3339(self.window_start)
            and md.get("window_end") == format_rfc3339(self.window_end)
            and md.get("call_type") == self.call_type
            and md.get("position") == str(self.position)
            and md.get("kind", "data") == self.kind
        )


@dataclass(frozen=True)
class ListedBlob:
    """A blob as a listing or a properties read shows it: name, size, metadata (keys lower case)."""

    name: str
    size: int
    metadata: dict[str, str]


def _listed(props: Any) -> ListedBlob:
    return ListedBlob(props.name, int(props.size), {k.lower(): v for k, v in (props.metadata or {}).items()})


@dataclass(frozen=True)
class CommitResult:
    name: str
    size: int
    sha256: str
    created: bool  # False: the identical blob was already there (resumed or lost response)


def make_container_client(
    *,
    sas_url: str = "",
    account_url: str = "",
    container: str = "",
    credential: Any = None,
    **client_kwargs: Any,
) -> ContainerClient:
    """Build the destination client with explicit timeouts, retries and block sizes.

    ``client_kwargs`` go to the SDK (tests pass a ``transport`` that misbehaves).
    """
    # ``retry_total`` (check asks for 1) shapes our retry policy; the SDK ignores it beside one.
    retry_total = client_kwargs.pop("retry_total", RETRY_TOTAL)
    kwargs: dict[str, Any] = {
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retry_policy": ExponentialRetry(
            initial_backoff=RETRY_BACKOFF,
            increment_base=RETRY_INCREMENT_BASE,
            retry_total=retry_total,
            random_jitter_range=RETRY_JITTER,
        ),
        "max_block_size": BLOCK_SIZE,
        "max_single_put_size": BLOCK_SIZE,
    }
    kwargs.update(client_kwargs)
    if sas_url:
        return ContainerClient.from_container_url(sas_url, **kwargs)
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return ContainerClient(account_url, container, credential=credential, **kwargs)


def sas_permissions(sas_url: str) -> str:
    return parse_qs(urlsplit(sas_url).query).get("sp", [""])[0]


def sas_expiry(sas_url: str) -> datetime | None:
    raw = parse_qs(urlsplit(sas_url).query).get("se", [""])[0]
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def container_location(*, sas_url: str = "", account_url: str = "", container: str = "") -> str:
    """Where the container is, with no secret and no query: ``https://acct.blob.core.windows.net/c``.

    A SAS URL and an account URL + container name for the same container give the same text, so
    a switch between the two (or a SAS rotation) is not a change of place.
    """
    if sas_url:
        parts = urlsplit(sas_url)
        path = parts.path.rstrip("/")
    else:
        parts = urlsplit(account_url)
        path = f"{parts.path.rstrip('/')}/{container.strip('/')}"
    host = (parts.hostname or "").lower()
    default_port = {"https": 443, "http": 80}.get(parts.scheme.lower())
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme.lower()}://{host}{port}{path}"


class BlobStore:
    """Files in the destination container under the optional folder."""

    def __init__(
        self, container: ContainerClient, blob_path: str = "", sas_url: str = "", *, block_size: int = BLOCK_SIZE
    ) -> None:
        self.container = container
        self.blob_path = blob_path.strip("/")
        self.block_size = block_size
        self._sas_url = sas_url
        # A SAS that says it grants no read (not one whose permissions are a stored policy's):
        # found before a fresh claim's first upload, which reads nothing (see open).
        granted = sas_permissions(sas_url) if sas_url else ""
        self._sas_lacks_read = bool(granted) and "r" not in granted
        self._pool = ThreadPoolExecutor(UPLOAD_CONCURRENCY, thread_name_prefix="stage")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def at_path(self, blob_path: str) -> BlobStore:
        """The same container (client, upload threads) under another folder; close only ``self``."""
        if blob_path.strip("/") == self.blob_path:
            return self
        view = object.__new__(BlobStore)
        view.__dict__.update(self.__dict__)
        view.blob_path = blob_path.strip("/")
        return view

    def name(self, leaf: str) -> str:
        return f"{self.blob_path}/{leaf}" if self.blob_path else leaf

    def data_file_name(self, dest_key: str, position: int, call_type: str, extension: str) -> str:
        return self.name(f"{dest_key}.{position}.{call_type}.{extension}")

    def rejected_file_name(self, dest_key: str, window_start: datetime, call_type: str) -> str:
        stamp = window_start.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
        return self.name(f"_rejected/{dest_key}.{stamp}.{call_type}.ndjson")

    def metadata_of(self, name: str) -> dict[str, str] | None:
        """The metadata of a committed blob, or None when there is none by that name.

        Only a 404 that says the *blob* is missing means "none" (a missing container is a
        StorageConfigError from :meth:`call`; any other 404 is not read as an empty name either).
        """
        try:
            props = self.call("r", lambda: self.container.get_blob_client(name).get_blob_properties())
        except ResourceNotFoundError as exc:
            absent(exc, frozenset({"BlobNotFound"}),
                   f"blob storage answered 404 {{code}} for {name}: check BLOB_SAS_URL "
                   "(or BLOB_ACCOUNT_URL/BLOB_CONTAINER) and BLOB_PATH")
            return None
        return dict(props.metadata or {})

    # -- reading back (manifests, verify) -------------------------------------------------------
    def listing(self, prefix: str) -> Iterator[ListedBlob]:
        """The blobs whose names start with ``prefix`` (from the container root), in name order,
        with their metadata; fetched a page at a time."""
        pages = self.call("l", lambda: self.container.list_blobs(name_starts_with=prefix,
                                                                  include=["metadata"]).by_page())
        while True:
            page = self.call("l", lambda: next(pages, None))
            if page is None:
                return
            items: list[Any] = self.call("l", functools.partial(list, page))
            yield from (_listed(p) for p in items)

    def properties(self, name: str) -> ListedBlob | None:
        """The blob's size and metadata, or None when there is none by that name."""
        try:
            props = self.call("r", lambda: self.container.get_blob_client(name).get_blob_properties())
        except ResourceNotFoundError as exc:
            absent(exc, frozenset({"BlobNotFound"}), f"blob storage answered 404 {{code}} for {name}")
            return None
        return ListedBlob(name, int(props.size), {k.lower(): v for k, v in (props.metadata or {}).items()})

    def download(self, name: str) -> bytes | None:
        """The blob's bytes (a small one: a manifest), or None when there is none by that name."""
        try:
            return self.call("r", lambda: self.container.download_blob(name).readall())
        except ResourceNotFoundError as exc:
            absent(exc, frozenset({"BlobNotFound"}), f"blob storage answered 404 {{code}} for {name}")
            return None

    def chunks(self, name: str) -> Iterator[bytes] | None:
        """The blob's bytes as they arrive (a data file, streamed), or None when it is not there."""
        try:
            downloader = self.call("r", lambda: self.container.download_blob(name))
        except ResourceNotFoundError as exc:
            absent(exc, frozenset({"BlobNotFound"}), f"blob storage answered 404 {{code}} for {name}")
            return None

        def stream() -> Iterator[bytes]:
            chunks = downloader.chunks()
            while (chunk := self.call("r", lambda: next(chunks, None))) is not None:
                yield chunk

        return stream()

    def create_small(self, name: str, data: bytes, content_type: str, metadata: dict[str, str]) -> bool:
        """Create a small blob in one create-only request; False when the name is taken."""
        try:
            self.call("cw", lambda: self.container.get_blob_client(name).upload_blob(
                data, length=len(data), overwrite=False, content_settings=ContentSettings(content_type=content_type),
                metadata=metadata, validate_content=CONTENT_MD5,
            ))
            return True
        except (ResourceExistsError, ResourceModifiedError):
            return False

    def open(
        self, name: str, identity: FileIdentity, content_type: str, *, guard: Callable[[], None] | None = None,
        look_first: bool = True,
    ) -> StagedUpload:
        """Start a file. If our identical blob is already there, nothing is uploaded again.

        ``guard`` runs right before the create-only commit and raises to stop it (the writer lost
        its claim): a writer never commits a file after another run took its window over.
        ``look_first=False`` skips the read of the name (where no file is expected): the bytes are
        uploaded and the create-only commit sorts out a name that is taken (ours: not created
        again; another: :class:`BlobConflictError`), as it does for a racing twin.
        """
        if not look_first and self._sas_lacks_read:
            # The read a resumed window makes first would be refused: say so now, before any
            # upload, not at the first crash (when a window must be resumed and cannot be).
            raise StoragePermissionError(
                "the BLOB_SAS_URL token lacks the read permission: the exporter reads its own files "
                "back to resume a window after a crash; issue a SAS with sp=rcwl")
        existing = self.metadata_of(name) if look_first else None
        if existing is not None and not identity.matches(existing):
            if guard is not None:
                guard()  # a writer that lost its claim does not judge the new owner's names
            raise _conflict(name, identity, existing)
        return StagedUpload(self, name, identity, content_type, verify_only=existing is not None, guard=guard)

    def probe_access(self) -> None:
        """Read and write as the exporter does, without writing anything (``check``): the properties
        of a blob that is not there (404 when reading is allowed), a Put Blob (a small file) and a
        Put Block List (a file of blocks, over :data:`BLOCK_SIZE`) that can never succeed (If-Match
        an ETag no blob has: 404 or 412 when writing is allowed). The block list is asked apart:
        the create permission alone allows a new blob's Put Blob but not its blocks (write), so a
        small file lands and the first big one is refused. No block is staged (it would stay,
        uncommitted). :class:`StoragePermissionError` names a permission that is refused: a managed
        identity's role or a stored access policy is only known by asking."""
        blob = self.container.get_blob_client(self.name(f"_check/{os.urandom(8).hex()}"))
        with contextlib.suppress(ResourceNotFoundError):
            self.call("r", blob.get_blob_properties)
        never: dict[str, Any] = {"etag": _NO_SUCH_ETAG, "match_condition": MatchConditions.IfNotModified}
        for permission, write in (("cw", lambda: blob.upload_blob(b"", overwrite=True, **never)),
                                  ("w", lambda: blob.commit_block_list([], **never))):
            try:
                self.call(permission, write)
            except (ResourceNotFoundError, ResourceModifiedError):
                continue
            raise StorageError(f"{blob.blob_name}: a write conditional on an ETag no blob has succeeded: the "
                               "store does not honour conditional writes, which exactly-once depends on")

    def call(self, permission: str, fn: Callable[[], _T]) -> _T:
        """Run one SDK call, mapping its failures to our errors (shared/azure_errors.py)."""
        return storage_call(
            fn, service="blob", denied=lambda exc: self._permission_error(permission, exc),
            missing={"ContainerNotFound": CONTAINER_MISSING}, url=self.container.url,
        )

    def _permission_error(self, permission: str, exc: HttpResponseError) -> StoragePermissionError:
        code = error_code(exc) or "AuthorizationFailure"
        names = {"r": "read", "c": "create", "w": "write", "l": "list"}
        need = "".join(p for p in permission if p in names) or permission
        message = (
            f"blob storage refused the request ({code}): the exporter needs the "
            f"{' + '.join(names.get(p, p) for p in need)} permission"
        )
        if self._sas_url:
            granted = sas_permissions(self._sas_url)
            missing = [names[p] for p in need if p in names and p not in granted]
            expiry = sas_expiry(self._sas_url)
            policy = parse_qs(urlsplit(self._sas_url).query).get("si", [""])[0]
            if not granted and policy:  # the permissions (and maybe the expiry) are the policy's
                message = (f"the stored access policy {policy!r} of the BLOB_SAS_URL token does not grant "
                           f"{' + '.join(names.get(p, p) for p in need)} ({code}), or it expired or was "
                           "removed: the exporter needs a policy with rcwl")
            elif expiry and expiry <= datetime.now(UTC):
                message = f"the BLOB_SAS_URL token expired at {format_rfc3339(expiry)} ({code}): issue a new SAS"
            elif missing:
                message = (
                    f"the BLOB_SAS_URL token lacks the {' and '.join(missing)} permission ({code}): "
                    "issue a SAS with sp=rcwl"
                )
            else:
                message += "; the SAS may be tampered with, revoked or for another container"
        return StoragePermissionError(message)


#: An ETag no blob has (Azure's are ``"0x8D..."`` of the blob's last write): a write conditional on it never lands.
_NO_SUCH_ETAG = '"0x0000000000000000"'


def _conflict(name: str, identity: FileIdentity, existing: Mapping[str, str]) -> BlobConflictError:
    return BlobConflictError(
        f"{name} already exists and was not written by this export for {identity.call_type} "
        f"{format_rfc3339(identity.window_start)} (its metadata: window_start={existing.get('window_start')}, "
        f"call_type={existing.get('call_type')}); the exporter never overwrites a file: move it away "
        "or point the export at an empty folder (docs/guarantees.md)",
        blob=name, window=identity.window, call_type=identity.call_type,
    )


def _block_id(attempt: bytes, index: int) -> str:
    """A block id unique to one upload attempt: 12 random bytes of the attempt + the block index.

    Every writer of a blob name stages blocks under its own ids, so a commit can only ever list
    the committing writer's blocks (never another writer's block 0 beside its own block 1). The
    id is 16 bytes before base64, as the ids of earlier versions were ("block-" + 10 digits): the
    service wants every block id of a blob, committed or not, to have one length.
    """
    return base64.b64encode(attempt + index.to_bytes(4, "big")).decode()


class StagedUpload:
    """A ByteSink that stages fixed-size blocks as they fill and commits them create-only.

    With ``verify_only`` (our blob is already there), bytes are only hashed: :meth:`commit`
    then checks the hash against the blob's metadata instead of uploading.
    """

    def __init__(
        self,
        store: BlobStore,
        name: str,
        identity: FileIdentity,
        content_type: str,
        *,
        verify_only: bool = False,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.identity = identity
        self.content_type = content_type
        self.verify_only = verify_only
        self._guard = guard
        self._attempt = os.urandom(12)
        self._block_size = store.block_size
        self._client: BlobClient = store.container.get_blob_client(name)
        self._parts: deque[bytes | memoryview] = deque()  # written, not yet staged (read-only bytes)
        self._buffered = 0
        self._hash = hashlib.sha256()
        self._size = 0
        self._blocks: list[str] = []
        self._inflight: list[Future[Any]] = []
        self._abandoned = False

    def write(self, data: bytes | memoryview) -> int:
        if self._abandoned:
            # Bytes after abandon() go nowhere: Arrow flushes a dropped Parquet writer's buffer
            # and footer when it is garbage collected (on whatever thread collects it), and an
            # encoder thread may still be writing; none of it is staged, hashed or kept.
            return len(data)
        self._hash.update(data)
        self._size += len(data)
        if self.verify_only:
            return len(data)
        # Kept as written (a bytes object is immutable: no copy; a view is copied once, its
        # buffer may be reused), then joined once per block: each byte is copied once on its way
        # to a block, not appended to a buffer and cut off it again.
        self._parts.append(data if isinstance(data, bytes) else bytes(data))
        self._buffered += len(data)
        while self._buffered >= self._block_size:
            self._stage(self._take(self._block_size))
        return len(data)

    def _take(self, size: int) -> bytes:
        """The first ``size`` written bytes not yet staged (all of them with ``size=-1``)."""
        size = self._buffered if size < 0 else size
        out: list[bytes | memoryview] = []
        need = size
        while need:
            part = self._parts.popleft()
            if len(part) > need:
                view = memoryview(part)
                self._parts.appendleft(view[need:])
                part = view[:need]
            out.append(part)
            need -= len(part)
        self._buffered -= size
        return out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)

    def _stage(self, block: bytes) -> None:
        block_id = _block_id(self._attempt, len(self._blocks))
        self._blocks.append(block_id)
        while len(self._inflight) >= UPLOAD_CONCURRENCY:
            self._inflight.pop(0).result()
        client = self._client
        self._inflight.append(
            self.store._pool.submit(
                self.store.call, "w",
                lambda: client.stage_block(block_id, block, length=len(block), validate_content=CONTENT_MD5),
            )
        )

    def commit(self, rows: int) -> CommitResult:
        """Commit create-only with metadata. Raises BlobConflictError if another file is there.

        The guard (is the claim still ours?) runs last thing before the commit, and again before a
        difference or a foreign blob is reported: a writer that lost its claim neither commits nor
        judges the file the new owner put there (its guard raises instead).
        """
        if self._abandoned:
            raise RuntimeError(f"{self.name}: this upload was abandoned and dropped its bytes; it is never committed")
        digest = self._hash.hexdigest()
        metadata = self.identity.metadata(rows, digest)
        if not self.verify_only:
            if self._blocks and self._buffered:
                self._stage(self._take(-1))
            for fut in self._inflight:
                fut.result()
            self._inflight.clear()
        self._check_claim()
        if not self.verify_only:
            try:
                self._put(metadata)
                return CommitResult(self.name, self._size, digest, created=True)
            except (ResourceExistsError, ResourceModifiedError):
                pass  # taken: ours (a lost response, a racing twin) or someone else's; look
            if not self._blocks and self.store.metadata_of(self.name) is None:
                # Nothing committed, yet a create-only Put Blob was refused: another writer's
                # uncommitted blocks hold the name (Azurite refuses then). A block list commits.
                self._stage(self._take(-1))
                self._inflight.pop().result()
                try:
                    self._put(metadata)
                    return CommitResult(self.name, self._size, digest, created=True)
                except (ResourceExistsError, ResourceModifiedError):
                    pass
        existing = self.store.metadata_of(self.name)
        if existing is None:
            raise StorageError(f"{self.name}: the create-only commit was refused but no blob is there",
                               blob=self.name, window=self.identity.window, call_type=self.identity.call_type)
        if not self.identity.matches(existing):
            self._check_claim()  # taken over: the name may hold the new owner's file of its next window
            raise _conflict(self.name, self.identity, existing)
        if existing.get("sha256") != digest:
            self._check_claim()  # taken over between our check and our commit: the new owner's file
            raise BlobConflictError(
                f"{self.name} exists for the same window and type but with different content "
                f"(sha256 {existing.get('sha256')} != {digest}): either the ETL API returned different "
                "calls for a closed window, or this folder holds files written with other settings under "
                "another STATE_TABLE (a new state table needs a new BLOB_PATH); the file is left as it is "
                "(docs/guarantees.md)",
                blob=self.name, window=self.identity.window, call_type=self.identity.call_type,
            )
        return CommitResult(self.name, self._size, digest, created=False)

    def _put(self, metadata: dict[str, str]) -> None:
        """The create-only commit: the staged block list, or a small file in one request."""
        settings = ContentSettings(content_type=self.content_type)
        if self._blocks:
            blocks = [BlobBlock(block_id=b) for b in self._blocks]
            self.store.call("cw", lambda: self._client.commit_block_list(
                blocks, content_settings=settings, metadata=metadata, match_condition=MatchConditions.IfMissing,
            ))
        else:
            data = self._take(-1)
            self._parts.append(data)  # kept until the commit is done: a refused one stages it
            self._buffered = len(data)
            self.store.call("cw", lambda: self._client.upload_blob(
                data, length=len(data), overwrite=False, content_settings=settings, metadata=metadata,
                validate_content=CONTENT_MD5,
            ))

    def _check_claim(self) -> None:
        if self._guard is not None:
            self._guard()  # raises when our claim is gone: another run finishes this window

    def abandon(self) -> None:
        """Drop the buffers; staged blocks that are never committed expire in the service. From
        now on, writes are dropped and :meth:`commit` refuses."""
        self._abandoned = True
        for fut in self._inflight:
            fut.cancel()
        self._inflight.clear()
        self._parts.clear()
        self._buffered = 0
