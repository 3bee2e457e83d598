"""The benchmark's ``real`` data profile (emulator/realistic.py): deterministic, ordered, valid
for the exporter, and shaped like what the real SDKs send."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.realistic import generate_real, write_ndjson_real
from emulator.sources import FileSource
from shared.calltypes import CALL_TYPES, KNOWN_FIELDS
from shared.columnar import parser_for
from shared.lines import LineBlock

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 20_000
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
ORDER_EVENTS = {"Order Completed", "Order Updated", "Order Refunded", "Order Cancelled", "Checkout Started",
                "Cart Viewed", "Product List Viewed", "注文完了"}


@pytest.fixture(scope="module")
def sample() -> tuple[bytes, tuple[dict[str, Any], ...]]:
    """N calls of seed 1 over one 10-minute window: the bytes and the decoded calls."""
    out = io.BytesIO()
    write_ndjson_real(out, N, T0)
    data = out.getvalue()
    return data, tuple(orjson.loads(line) for line in data.splitlines())


def library(call: dict[str, Any]) -> str:
    """The library a call came from ("http": the in-house back end, which may send no context)."""
    if "request_id" in call:
        return "http"
    return call["context"]["library"]["name"]


def shape(text: str) -> str:
    """A timestamp's format: every digit as 9."""
    return re.sub(r"\d", "9", text)


# ------------------------------------------------------------------------------------------------
# Determinism and order


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, c = io.BytesIO(), io.BytesIO(), io.BytesIO()
    write_ndjson_real(a, 3000, T0, seed=7)
    write_ndjson_real(b, 3000, T0, seed=7)
    write_ndjson_real(c, 3000, T0, seed=8)
    assert a.getvalue() == b.getvalue()
    assert a.getvalue() != c.getvalue()
    assert [orjson.loads(line) for line in a.getvalue().splitlines()] == list(generate_real(3000, T0, seed=7))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(0, 600), minutes=st.floats(0.01, 30), offset_ms=st.integers(0, 10**12),
       seed=st.integers(0, 2**32))
def test_any_window_gives_count_calls_in_order_inside_it(count, minutes, offset_ms, seed):
    start = T0 + timedelta(milliseconds=offset_ms)
    out = io.BytesIO()
    written = write_ndjson_real(out, count, start, minutes, seed)
    data = out.getvalue()
    assert written == len(data)
    lines = data.splitlines()
    assert len(lines) == count
    calls = [orjson.loads(line) for line in lines]
    keys = [(datetime.fromisoformat(c["receivedAt"]), c["messageId"]) for c in calls]
    assert keys == sorted(keys)
    assert len({c["messageId"] for c in calls}) == count
    for received, _ in keys:
        assert start - timedelta(milliseconds=1) < received < start + timedelta(minutes=minutes)
    assert all(c["type"] in CALL_TYPES for c in calls)


def test_cli_generate_real_profile_writes_the_same_calls(tmp_path):
    path = tmp_path / "real.ndjson"
    subprocess.run([sys.executable, "-m", "emulator", "generate", "--profile", "real", "--count", "2000",
                    "--start", "2026-01-01T00:00:00Z", "--minutes", "10", "--seed", "3", "--out", str(path)],
                   cwd=ROOT, check=True, capture_output=True)
    expected = io.BytesIO()
    write_ndjson_real(expected, 2000, T0, 10, 3)
    assert path.read_bytes() == expected.getvalue()
    src = FileSource(path)
    assert (src.count, src.skipped) == (2000, 0)
    assert sum(len(src.query(t, T0, T0 + timedelta(minutes=10))) for t in CALL_TYPES) == 2000


# ------------------------------------------------------------------------------------------------
# Valid calls for the exporter


@pytest.mark.parametrize("mode", ["columns", "json"])
def test_every_call_is_accepted_by_the_exporter(mode, sample):
    data, calls = sample
    lines = data.splitlines()
    assert max(map(len, lines)) < 32_768  # the exporter's default cap on a call
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for line, call in zip(lines, calls, strict=True):
        by_type[call["type"]].append(line)
    for call_type in CALL_TYPES:
        parsed = parser_for(call_type, mode).parse(LineBlock.from_lines(by_type[call_type]))
        assert parsed.rejected == []
        assert parsed.count == len(by_type[call_type])


# ------------------------------------------------------------------------------------------------
# Shapes


def test_mix_of_types_sizes_and_fields_outside_the_columns(sample):
    data, calls = sample
    types = Counter(c["type"] for c in calls)
    share = {t: types[t] / N for t in CALL_TYPES}
    assert 0.45 < share["track"] < 0.65 and 0.12 < share["page"] < 0.22 and 0.08 < share["identify"] < 0.16
    assert 0.04 < share["screen"] < 0.12 and 0.02 < share["group"] < 0.07 and 0.01 < share["alias"] < 0.05
    assert 1300 < len(data) / N < 1700  # about 1.5 KB a call
    extra = sum(1 for c in calls if set(c) - KNOWN_FIELDS[c["type"]])
    assert extra / N > 0.95  # real calls carry channel, _metadata, projectId, ... beside the columns


def test_each_library_has_its_own_shape(sample):
    _, calls = sample
    channel = {"analytics.js": "client", "analytics-swift": "mobile", "analytics-kotlin": "mobile",
               "analytics-android": "mobile", "@segment/analytics-node": "server", "analytics-python": "server",
               "analytics-go": "server", "http": "server"}
    message_id = {"@segment/analytics-node": rf"node-next-\d{{13}}-{UUID4}",
                  "analytics-swift": UUID4.upper(),
                  "analytics-kotlin": UUID4, "analytics-android": UUID4, "analytics-python": UUID4,
                  "analytics-go": UUID4, "http": r"evt_[0-9a-f]{26}"}
    seen: Counter[str] = Counter()
    for c in calls:
        lib = library(c)
        seen[lib] += 1
        assert c["channel"] == channel[lib]
        if lib == "analytics.js":
            assert re.fullmatch(rf"ajs-next-\d{{13}}-{UUID4}|ajs-[0-9a-f]{{32}}", c["messageId"])
            assert c["writeKey"] and {"bundled", "unbundled"} <= set(c["_metadata"])
            assert {"page", "userAgent", "locale", "ip"} <= set(c["context"])
        else:
            assert "writeKey" not in c
            assert re.fullmatch(message_id[lib], c["messageId"]), (lib, c["messageId"])
        if c["channel"] == "mobile":
            assert {"app", "device", "os", "network", "screen", "ip", "timezone"} <= set(c["context"])
        if lib == "@segment/analytics-node":
            assert c["_metadata"]["jsRuntime"] == "node"
    assert set(seen) == set(channel)
    assert min(seen.values()) > N * 0.02


def test_order_events_carry_products_arrays_of_1_to_20_items(sample):
    _, calls = sample
    sizes = [len(c["properties"]["products"]) for c in calls
             if c["type"] == "track" and c["event"] in ORDER_EVENTS]
    assert len(sizes) > 500
    assert min(sizes) == 1 and max(sizes) == 20
    assert 2.5 < sum(sizes) / len(sizes) < 5
    assert sum(1 for s in sizes if s >= 10) > 10


def test_ids_ips_urls_and_user_agents_have_a_realistic_cardinality(sample):
    _, calls = sample
    anon = {c["anonymousId"] for c in calls if c.get("anonymousId")}
    users = {c["userId"] for c in calls if c.get("userId")}
    ips = [c["context"]["ip"] for c in calls if "ip" in (c["context"] or {})]
    urls = {c["context"]["page"]["url"] for c in calls if "page" in (c["context"] or {})}
    agents = {c["context"]["userAgent"] for c in calls if "userAgent" in (c["context"] or {})}
    assert len(anon) > N / 10 and len(users) > N / 10
    assert len(set(ips)) > N / 10
    assert 0.1 < sum(1 for ip in ips if ":" in ip) / len(ips) < 0.4  # IPv6
    assert len(urls) > N / 20
    assert len(agents) > 300


def test_text_in_several_scripts_and_emoji(sample):
    data, _ = sample
    text = data.decode("utf-8")
    scripts = [("Latin with diacritics", "[À-ɏ]"), ("CJK", "[\u4e00-\u9fff]"), ("kana", "[\u3040-\u30ff]"),
               ("Hangul", "[\uac00-\ud7af]"), ("Cyrillic", "[\u0400-\u04ff]"), ("Arabic", "[\u0600-\u06ff]"),
               ("Hebrew", "[\u0590-\u05ff]"), ("Greek", "[\u0370-\u03ff]"), ("Devanagari", "[\u0900-\u097f]"),
               ("emoji", "[\U0001f300-\U0001faff]")]
    for name, pattern in scripts:
        assert len(re.findall(pattern, text)) > 50, name


# ------------------------------------------------------------------------------------------------
# Against payloads captured from the real Python SDKs (devtools/capture_sdk_payloads.py)


def captured() -> dict[str, list[dict[str, Any]]]:
    data = json.loads((ROOT / "tests" / "support" / "sdk_payloads.json").read_text(encoding="utf-8"))
    return {sdk["package"]: sdk["calls"] for sdk in data["sdks"]}


def kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null", bool: "boolean"}.get(
        type(value), "number")


@pytest.mark.parametrize(("package", "rudder"), [("segment-analytics-python", False), ("rudder-sdk-python", True)])
def test_every_field_a_python_sdk_sends_is_in_the_generated_calls(package, rudder, sample):
    """Every top-level key the SDK sends for a type is on every generated call of that SDK and
    type, with the same kinds of value (null or not), the same timestamp formats and ids."""
    _, calls = sample
    mine = [c for c in calls if library(c) == "analytics-python" and ("rudderId" in c) == rudder]
    assert len(mine) > 500
    all_keys = {k for c in calls for k in c}
    for entry in captured()[package]:
        sent, envelope = entry["message"], entry["envelope"]
        call_type = sent["type"]
        of_type = [c for c in mine if c["type"] == call_type]
        assert of_type, call_type
        for c in of_type:
            assert set(sent) | {"sentAt"} <= set(c), (call_type, set(sent) - set(c))
            assert c["context"]["library"]["name"] == sent["context"]["library"]["name"]
            assert re.fullmatch(UUID4, c["messageId"])
            assert shape(c["originalTimestamp"]) == shape(sent["timestamp"])  # the SDK's timestamp
            assert shape(c["sentAt"]) == shape(envelope["sentAt"])
        for key, value in sent.items():
            assert kind(value) in {kind(c[key]) for c in of_type}, (call_type, key, value)
        assert set(envelope) <= all_keys  # writeKey: on analytics.js calls
        if rudder and call_type == "identify":
            assert all("traits" not in c and "traits" in c["context"] for c in of_type)
