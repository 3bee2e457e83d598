"""The whole-container invariant check (docs/design.md, "Invariants"), reusable by every fault test.

:func:`check_container` reads what is in the container and asserts:

* every messageId expected appears in exactly one data file, and nothing else does;
* data file names are ``{blob_path}/{dest}.{position}.{type}.{ext}`` and positions are 1..N per
  type with no gap; positions follow the windows (a later position never holds an earlier window);
* each data file's metadata matches its name and content (type, position, rows, SHA-256, window)
  and each row is of that type with ``receivedAt`` inside the file's window;
* no blob present in an earlier snapshot was modified (etag and last_modified unchanged);
* ``_rejected/`` files are named by window and type, every line has a reason and the original
  line (or, over the line cap, its SHA-256), and their count is what the test expects;
* ``_manifests/`` form one chain (each names the SHA-256 of the one before, windows back to back,
  the first with no previous), each lists exactly the data and dead-letter files of its window with
  their rows, bytes and SHA-256 and each type's positions continuing the previous manifest's, and
  (``manifest_windows``) there is one for exactly the windows the test expects.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.windows import parse_rfc3339
from tests.support.blobs import StoredBlob, rows_of

Snapshot = dict[str, tuple[str, Any]]


@dataclass
class ContainerReport:
    files: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # type -> [(pos, window)]
    ids: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=dict)
    manifest_windows: list[datetime] = field(default_factory=list)


def snapshot(blobs: dict[str, StoredBlob]) -> Snapshot:
    return {n: (b.etag, b.last_modified) for n, b in blobs.items()}


def check_container(
    blobs: dict[str, StoredBlob],
    *,
    expected_ids: set[str] | None,
    blob_path: str = "exports/segment",
    dest_key: str = "2184.13699",
    expected_rejected: int | None = None,
    before: Snapshot | None = None,
    manifest_windows: list[datetime] | None = None,
) -> ContainerReport:
    report = ContainerReport(snapshot=snapshot(blobs))
    prefix = f"{blob_path}/" if blob_path else ""
    data_re = re.compile(
        re.escape(prefix) + re.escape(dest_key) + r"\.([1-9][0-9]*)\.([a-z]+)\.(csv|json|parquet|csv\.gz|json\.gz)\Z"
    )
    rejected_re = re.compile(
        re.escape(prefix) + r"_rejected/" + re.escape(dest_key) + r"\.(\d{8}T\d{4}Z)\.([a-z]+)\.ndjson\Z"
    )
    problems: list[str] = []
    positions: dict[str, dict[int, datetime]] = defaultdict(dict)
    manifests_prefix = f"{prefix}_manifests/"
    problems += _check_manifests({n: b for n, b in blobs.items() if n.startswith(manifests_prefix)},
                                 {n: b for n, b in blobs.items() if not n.startswith(manifests_prefix)},
                                 manifests_prefix, dest_key, manifest_windows, report)
    for name, blob in sorted(blobs.items()):
        if name.startswith(manifests_prefix):
            continue
        md = {k.lower(): v for k, v in blob.metadata.items()}
        if md.get("sha256") != hashlib.sha256(blob.data).hexdigest():
            problems.append(f"{name}: sha256 metadata does not match the content")
        if m := rejected_re.match(name):
            stamp, call_type = m.groups()
            start = datetime.strptime(stamp, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
            recorded = parse_rfc3339(md.get("window_start", "1970-01-01T00:00:00Z"))
            if md.get("call_type") != call_type or recorded != start or md.get("kind") != "rejected":
                problems.append(f"{name}: metadata {md} does not match the name")
            lines = blob.data.decode("utf-8").split("\n")
            if lines[-1] != "":
                problems.append(f"{name}: does not end with a newline")
            entries = [json.loads(ln) for ln in lines[:-1]]
            if md.get("rows") != str(len(entries)):
                problems.append(f"{name}: rows metadata {md.get('rows')} != {len(entries)} lines")
            for e in entries:
                if not e.get("reason") or not ("line" in e or "line_base64" in e or "line_sha256" in e):
                    problems.append(f"{name}: entry without reason or line: {e}")
                report.rejected.append(e)
            continue
        m = data_re.match(name)
        if not m:
            problems.append(f"{name}: not a data or _rejected file name of this destination")
            continue
        position, call_type = int(m.group(1)), m.group(2)
        try:
            start = parse_rfc3339(md["window_start"])
            end = parse_rfc3339(md["window_end"])
        except (KeyError, ValueError):
            problems.append(f"{name}: no window in metadata {md}")
            continue
        if md.get("call_type") != call_type or md.get("position") != str(position) or md.get("kind") != "data":
            problems.append(f"{name}: metadata {md} does not match the name")
        if end - start != timedelta(minutes=10):
            problems.append(f"{name}: window {start}..{end} is not 10 minutes")
        rows = rows_of(name, blob.data)
        if md.get("rows") != str(len(rows)):
            problems.append(f"{name}: rows metadata {md.get('rows')} != {len(rows)} rows")
        if not rows:
            problems.append(f"{name}: an empty data file")
        for row in rows:
            report.ids[row["messageId"]] += 1
            if row.get("type") != call_type:
                problems.append(f"{name}: a {row.get('type')} call in a {call_type} file")
            received = parse_rfc3339(row["receivedAt"])
            if not start <= received < end:
                problems.append(f"{name}: {row['messageId']} received {received} outside {start}..{end}")
        positions[call_type][position] = start
        report.files.setdefault(call_type, []).append((position, md["window_start"]))
    for call_type, by_pos in positions.items():
        got = sorted(by_pos)
        if got != list(range(1, len(got) + 1)):
            problems.append(f"{call_type}: positions {got} are not 1..{len(got)}")
        windows = [by_pos[p] for p in got]
        if windows != sorted(windows):
            problems.append(f"{call_type}: positions do not follow the windows: {windows}")
    dupes = {i: n for i, n in report.ids.items() if n > 1}
    if dupes:
        problems.append(f"{len(dupes)} call(s) in more than one place, e.g. {list(dupes)[:3]}")
    if expected_ids is not None:
        missing = expected_ids - set(report.ids)
        extra = set(report.ids) - expected_ids
        if missing:
            problems.append(f"{len(missing)} call(s) lost, e.g. {sorted(missing)[:3]}")
        if extra:
            problems.append(f"{len(extra)} unexpected call(s), e.g. {sorted(extra)[:3]}")
    if expected_rejected is not None and len(report.rejected) != expected_rejected:
        problems.append(f"{len(report.rejected)} rejected line(s), expected {expected_rejected}")
    for name, stamp in (before or {}).items():
        if name not in report.snapshot:
            problems.append(f"{name}: was committed earlier and is gone")
        elif report.snapshot[name] != stamp:
            problems.append(f"{name}: was modified after its commit ({stamp} -> {report.snapshot[name]})")
    assert not problems, "container invariants broken:\n  " + "\n  ".join(problems)
    return report


def _check_manifests(manifests: dict[str, StoredBlob], others: dict[str, StoredBlob], prefix: str,
                     dest_key: str, expected: list[datetime] | None, report: ContainerReport) -> list[str]:
    """The manifest chain, against the data and dead-letter files it lists (module docstring)."""
    from shared.manifest import ManifestError, parse

    problems: list[str] = []
    previous: tuple[str, bytes] | None = None
    last_positions: dict[str, int] | None = None
    listed: set[str] = set()
    windows: list[datetime] = []
    for name in sorted(manifests):
        blob = manifests[name]
        stamp = name[len(prefix):]
        try:
            m = parse(blob.data)
        except ManifestError as exc:
            problems.append(f"{name}: unreadable manifest: {exc}")
            continue
        if stamp != f"{dest_key}.{m.window.start.strftime('%Y%m%dT%H%MZ')}.json" or m.key != dest_key:
            problems.append(f"{name}: name does not match its window {m.window} or ids {m.key}")
        if not blob.data.endswith(b"\n") or json.dumps(json.loads(blob.data), sort_keys=True,
                                                         separators=(",", ":"), ensure_ascii=False) + "\n" \
                != blob.data.decode("utf-8"):
            problems.append(f"{name}: not canonical JSON")
        if previous is None:
            if m.previous_name is not None:
                problems.append(f"{name}: the first manifest names a previous one ({m.previous_name})")
        else:
            prev_name, prev_data = previous
            if m.previous_name != prev_name or m.previous_sha256 != hashlib.sha256(prev_data).hexdigest():
                problems.append(f"{name}: previous {m.previous_name} {m.previous_sha256} is not {prev_name}")
            if windows and m.window.start != windows[-1] + timedelta(minutes=10):
                problems.append(f"{name}: does not follow the window {windows[-1]}")
        windows.append(m.window.start)
        for t, outcome in m.types.items():
            want_first = (last_positions[t] + 1) if last_positions is not None else None
            got = [f.position for f in outcome.files]
            if want_first is not None and got and got[0] != want_first:
                problems.append(f"{name}: {t} files start at {got[0]}, not {want_first}")
            if got != list(range(got[0], got[0] + len(got))) if got else False:
                problems.append(f"{name}: {t} positions {got} are not consecutive")
            if outcome.last_position != (got[-1] if got else (last_positions or {}).get(t, outcome.last_position)):
                problems.append(f"{name}: {t} last_position {outcome.last_position} does not follow its files")
            for f in [*outcome.files, *([outcome.rejected] if outcome.rejected else [])]:
                listed.add(f.name)
                stored = others.get(f.name)
                if stored is None:
                    problems.append(f"{name}: lists {f.name}, which is not there")
                    continue
                md = {k.lower(): v for k, v in stored.metadata.items()}
                if (f.sha256, str(f.rows), f.bytes) != (md.get("sha256"), md.get("rows"), len(stored.data)) \
                        or md.get("window_start") != m.as_json()["window"]["start"]:
                    problems.append(f"{name}: {f.name} is listed as {f} but is {md} ({len(stored.data)} bytes)")
        last_positions = {t: o.last_position for t, o in m.types.items()}
        previous = (name, blob.data)
    if windows:
        first, end = windows[0], windows[-1] + timedelta(minutes=10)
        for n, b in others.items():
            md = {k.lower(): v for k, v in b.metadata.items()}
            start = md.get("window_start")
            if start and first <= parse_rfc3339(start) < end and n not in listed:
                problems.append(f"{n}: of a manifested window but in no manifest")
    if expected is not None and windows != expected:
        problems.append(f"manifests for windows {windows}, expected {expected}")
    report.manifest_windows = windows
    return problems


def ids_of(calls: list[dict[str, Any]]) -> set[str]:
    return {c["messageId"] for c in calls}
