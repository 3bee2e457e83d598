"""``Settings.from_env``: every required setting, every malformed value, the defaults, secrets
kept out of repr/str and messages, and local.settings.json under the environment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import SettingsError
from shared.records import Limits
from shared.settings import DEFAULT_SCHEDULE, Settings, export_schedule, load_local_settings

TOKEN = "tok-secret-0123456789"
SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
SAS = f"https://acct.blob.core.windows.net/exports?sv=2024-05-04&sp=rcwl&se=2030-01-01T00:00:00Z&sig={SIG}"
VALID = {
    "ETL_API_ENDPOINT": "https://etl.example.com/",
    "ETL_API_TOKEN": TOKEN,
    "EXPORT_FORMAT": "parquet",
    "BLOB_SAS_URL": SAS,
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def settings(**overrides: str) -> Settings:
    env = {**VALID, **overrides}
    return Settings.from_env({k: v for k, v in env.items() if v is not None})


def error(**overrides: str) -> str:
    with pytest.raises(SettingsError) as raised:
        settings(**overrides)
    message = str(raised.value)
    assert TOKEN not in message and "c2VjcmV0" not in message  # never the secrets
    assert "\n" not in message  # one line
    return message


@pytest.mark.parametrize("name", ["ETL_API_ENDPOINT", "ETL_API_TOKEN", "EXPORT_FORMAT", "BLOB_SAS_URL",
                                  "AzureWebJobsStorage"])
@pytest.mark.parametrize("how", ["absent", "empty", "blank"])
def test_each_required_setting_missing_is_an_error_naming_it(name, how):
    env = dict(VALID)
    if how == "absent":
        del env[name]
    else:
        env[name] = "" if how == "empty" else "   "
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert str(raised.value).startswith(f"{name} is not set")


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"EXPORT_FORMAT": "xml"}, "EXPORT_FORMAT='xml' is not supported: use one of csv, json, parquet"),
    ({"ETL_API_ENDPOINT": "etl.example.com"}, "ETL_API_ENDPOINT='etl.example.com' is not an http(s) URL"),
    ({"ETL_API_ENDPOINT": "http://etl.example.com"}, "ETL_API_ENDPOINT must use https"),
    ({"SETTLE_SECONDS": "sixty"}, "SETTLE_SECONDS='sixty' is not a whole number"),
    ({"SETTLE_SECONDS": "-1"}, "SETTLE_SECONDS=-1 is out of range: use 0..86400"),
    ({"SETTLE_SECONDS": "86401"}, "SETTLE_SECONDS=86401 is out of range"),
    ({"MAX_WINDOWS_PER_RUN": "0"}, "MAX_WINDOWS_PER_RUN=0 is out of range: use 1..10000"),
    ({"RUN_BUDGET_SECONDS": "5"}, "RUN_BUDGET_SECONDS=5 is out of range"),
    ({"MAX_FILE_BYTES": "1.5"}, "MAX_FILE_BYTES='1.5' is not a whole number"),
    ({"MAX_FILE_ROWS": "0"}, "MAX_FILE_ROWS=0 is out of range"),
    ({"MAX_CALL_BYTES": "10"}, "MAX_CALL_BYTES=10 is out of range"),
    ({"CSV_ESCAPE_FORMULAS": "maybe"}, "CSV_ESCAPE_FORMULAS='maybe' is not a boolean: use true or false"),
    ({"EXPORT_START": "yesterday"}, "EXPORT_START='yesterday' is not an RFC 3339 time"),
    ({"EXPORT_START": "2026-13-01T00:00:00Z"}, "EXPORT_START='2026-13-01T00:00:00Z' is not an RFC 3339 time"),
    ({"EXPORT_COMPRESSION": "zip"}, "EXPORT_COMPRESSION='zip' is not supported"),
    ({"EXPORT_COMPRESSION": "gzip"}, "EXPORT_COMPRESSION=gzip applies to csv and json"),
    ({"PARQUET_COMPRESSION": "lz4"}, "PARQUET_COMPRESSION='lz4' is not supported"),
    ({"STATE_TABLE": "1table"}, "STATE_TABLE='1table' is not a valid table name"),
    ({"STATE_TABLE": "my-table"}, "STATE_TABLE='my-table' is not a valid table name"),
    ({"BLOB_PATH": "a//b"}, "BLOB_PATH='a//b' has an empty, '.' or '..' segment"),
    ({"BLOB_PATH": "a/../b"}, "BLOB_PATH='a/../b' has an empty, '.' or '..' segment"),
    ({"AzureWebJobsStorage": "not a connection string"}, "AzureWebJobsStorage is not a storage connection string"),
])
def test_a_malformed_value_is_an_error_naming_the_setting_and_the_fix(overrides, expected):
    assert error(**overrides).startswith(expected)


def test_a_sas_url_without_a_signature_is_refused():
    message = error(BLOB_SAS_URL="https://acct.blob.core.windows.net/exports?sv=2024-05-04&sp=rcwl")
    assert message.startswith("BLOB_SAS_URL has no SAS token (no 'sig=')")


@pytest.mark.parametrize("url", [
    f"https://acct.blob.core.windows.net/exports/folder/file.csv?sp=rcwl&sig={SIG}",  # a blob
    f"https://acct.blob.core.windows.net/?sp=rcwl&sig={SIG}",  # the account
    f"http://127.0.0.1:10000/devstoreaccount1/exports/file.csv?sp=rcwl&sig={SIG}",  # Azurite blob
])
def test_a_sas_url_must_point_at_a_container(url):
    assert error(BLOB_SAS_URL=url).startswith("BLOB_SAS_URL must point at a container")


def test_a_plain_http_sas_url_is_refused_off_loopback_and_keeps_its_signature_out_of_the_message():
    message = error(BLOB_SAS_URL=SAS.replace("https://", "http://"))
    assert message.startswith("BLOB_SAS_URL must use https")
    message = error(BLOB_SAS_URL=SAS.replace("https://", "ftp://"))
    assert "is not an http(s) URL" in message and "sig=REDACTED" in message


def test_plain_http_is_allowed_on_loopback_for_local_runs():
    s = settings(ETL_API_ENDPOINT="http://127.0.0.1:7071",
                 BLOB_SAS_URL=f"http://127.0.0.1:10000/devstoreaccount1/exports?sp=rcwl&sig={SIG}")
    assert s.etl_api_endpoint == "http://127.0.0.1:7071"


@pytest.mark.parametrize("name", ["ETL_API_TOKEN", "BLOB_SAS_URL", "ETL_API_ENDPOINT", "EXPORT_FORMAT"])
def test_an_unresolved_key_vault_reference_is_an_error_naming_the_setting(name):
    ref = "@Microsoft.KeyVault(VaultName=kv-abc;SecretName=etl-api-token)"
    message = error(**{name: ref})
    assert message.startswith(f"{name}: the Key Vault reference did not resolve")
    assert "Key Vault Secrets User" in message


def test_the_destination_is_a_sas_url_or_an_account_and_container_not_both():
    assert error(BLOB_ACCOUNT_URL="https://acct.blob.core.windows.net").startswith(
        "set either BLOB_SAS_URL or BLOB_ACCOUNT_URL + BLOB_CONTAINER")
    assert error(BLOB_SAS_URL="", BLOB_ACCOUNT_URL="https://acct.blob.core.windows.net").startswith(
        "BLOB_CONTAINER is not set")
    s = settings(BLOB_SAS_URL="", BLOB_ACCOUNT_URL="https://acct.blob.core.windows.net/",
                 BLOB_CONTAINER="exports")
    assert s.destination_label == "https://acct.blob.core.windows.net/exports"


def test_an_account_url_must_use_https_even_on_loopback():
    # The managed identity's token is never sent over http: the SDK would fail every run with a raw
    # ValueError, so the setting is refused up front.
    message = error(BLOB_SAS_URL="", BLOB_ACCOUNT_URL="http://127.0.0.1:10000/devstoreaccount1",
                    BLOB_CONTAINER="exports")
    assert message.startswith("BLOB_ACCOUNT_URL must use https")
    s = settings(BLOB_SAS_URL="", BLOB_ACCOUNT_URL="https://127.0.0.1:10000/devstoreaccount1",
                 BLOB_CONTAINER="exports")
    assert s.blob_account_url == "https://127.0.0.1:10000/devstoreaccount1"


# (Random-looking: a registered secret's 8-character pieces are redacted everywhere in this process.)
@pytest.mark.parametrize("token", ["k7Qz\n9zLw-41xP", "k7Qz 9zLw-41xP", "k7Qz-\u20ac-9zLw41xP", "k7Qz\x009zLw-41xP"])
def test_a_token_that_cannot_be_a_header_is_refused_without_showing_it(token):
    # Sent as a header it fails inside http.client with the value in the message (a raw error).
    message = error(ETL_API_TOKEN=token)
    assert message.startswith("ETL_API_TOKEN holds a space, a line break, a control or a non-ASCII")
    assert "9zLw" not in message and "k7Qz" not in message


def test_an_endpoint_with_credentials_is_shown_without_them():
    s = settings(ETL_API_ENDPOINT="https://user:Pw8-qZ71x0Lk@etl.example.com")
    assert "Pw8-qZ71x0Lk" not in repr(s) and "user:REDACTED@etl.example.com" in repr(s)


def test_the_defaults():
    s = settings()
    assert s.etl_api_endpoint == "https://etl.example.com"  # trailing "/" dropped
    assert s.export_format == "parquet"
    assert s.blob_path == ""
    assert s.state_table == "exporterpositions"
    assert s.export_start is None
    assert s.settle_seconds == 60
    assert s.max_windows_per_run == 36
    assert s.run_budget_seconds == 480
    assert s.max_file_bytes == 256 * 1024 * 1024
    assert s.max_file_rows == 1_000_000
    assert s.gzip is False
    assert s.parquet_compression == "snappy"
    assert s.csv_escape_formulas is False
    assert s.max_call_bytes == 65536 == Limits().max_call_bytes  # one default, two places
    assert s.appinsights_connection_string == ""


def test_values_are_trimmed_normalised_and_parsed():
    s = settings(EXPORT_FORMAT=" CSV ", EXPORT_COMPRESSION="gzip", CSV_ESCAPE_FORMULAS="Yes",
                 BLOB_PATH="/exports/segment/", EXPORT_START="2026-01-01T00:07:30+01:00",
                 SETTLE_SECONDS="0", MAX_WINDOWS_PER_RUN="10000")
    assert (s.export_format, s.gzip, s.csv_escape_formulas) == ("csv", True, True)
    assert s.blob_path == "exports/segment"
    assert s.export_start == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # floored to its window
    assert (s.settle_seconds, s.max_windows_per_run) == (0, 10000)


def test_identity_based_storage_settings_give_the_table_endpoint():
    s = settings(AzureWebJobsStorage=None, AzureWebJobsStorage__accountName="stabc")
    assert s.table_service_uri == "https://stabc.table.core.windows.net"
    assert s.storage_connection == ""
    s = settings(AzureWebJobsStorage=None,
                 AzureWebJobsStorage__tableServiceUri="https://stabc.table.core.windows.net/")
    assert s.table_service_uri == "https://stabc.table.core.windows.net/"


@pytest.mark.parametrize("show", [repr, str])
def test_repr_and_str_hide_the_token_the_sas_signature_and_the_storage_key(show):
    conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=S3cretKey==;EndpointSuffix=core.windows.net"
    text = show(settings(AzureWebJobsStorage=conn,
                         APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=ikey-123"))
    assert TOKEN not in text
    assert SIG not in text and "c2VjcmV0" not in text
    assert "S3cretKey" not in text and "ikey-123" not in text
    assert "token='***'" in text and "sig=REDACTED" in text
    assert "format='parquet'" in text


def test_local_settings_values_are_read_under_the_environment(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "ETL_API_TOKEN": "from-file", "EXPORT_FORMAT": "json", "SETTLE_SECONDS": 30}}))
    merged = load_local_settings(path, {"EXPORT_FORMAT": "csv", "BLOB_PATH": "x"})
    assert merged == {"ETL_API_TOKEN": "from-file", "EXPORT_FORMAT": "csv", "SETTLE_SECONDS": "30",
                      "BLOB_PATH": "x"}


def test_no_local_settings_file_means_the_environment_only(tmp_path):
    assert load_local_settings(tmp_path / "absent.json", {"A": "1"}) == {"A": "1"}


def test_a_local_settings_file_that_is_not_json_is_a_settings_error(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text("{ not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_local_settings(path, {})


def test_the_etl_limits_have_defaults_that_fit_the_run_budget_and_the_function_timeout():
    s = settings()
    assert s.max_page_bytes == 64 * 1024 * 1024
    assert s.etl_page_timeout_seconds == 60
    assert s.unit_budget_seconds == 100
    assert s.max_pages_per_window == 10_000
    # A unit may start just before the run budget ends; it must still end before host.json's
    # functionTimeout (10 minutes), with time left to commit its last file and its state.
    host = json.loads((Path(__file__).resolve().parent.parent / "host.json").read_text())
    minutes, seconds = host["functionTimeout"].split(":")[1:]
    assert s.run_budget_seconds + s.unit_budget_seconds + 15 <= int(minutes) * 60 + int(seconds)
    assert s.etl_page_timeout_seconds < s.unit_budget_seconds


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"MAX_PAGE_BYTES": "1000"}, "MAX_PAGE_BYTES=1000 is out of range: use 1048576..1073741824"),
    ({"ETL_PAGE_TIMEOUT_SECONDS": "0"}, "ETL_PAGE_TIMEOUT_SECONDS=0 is out of range: use 1..3600"),
    ({"UNIT_BUDGET_SECONDS": "0"}, "UNIT_BUDGET_SECONDS=0 is out of range: use 1..86400"),
    ({"MAX_PAGES_PER_WINDOW": "many"}, "MAX_PAGES_PER_WINDOW='many' is not a whole number"),
])
def test_a_malformed_etl_limit_is_an_error_naming_the_setting(overrides, expected):
    assert error(**overrides).startswith(expected)


def test_the_schedule_defaults_to_every_ten_minutes_and_is_checked_as_ncrontab():
    assert settings().export_schedule == DEFAULT_SCHEDULE == "0 */10 * * * *"
    assert export_schedule({}) == DEFAULT_SCHEDULE
    for good in ("0 */5 * * * *", "0 0,10,20,30,40,50 * * * *", "15 */10 6-22 * JAN-DEC mon-fri",
                 "0 0 12 1 */2 0", "0 5/10 * * * SUN"):
        assert settings(EXPORT_SCHEDULE=good).export_schedule == good
    for bad in ("0 */10 * * *", "0 */0 * * * *", "0 61 * * * *", "0 10-5 * * * *", "0 \u0665 * * * *",
                "0 */10 * * * 7", "0 */10 * 0 * *", "@every 10m", "%EXPORT_SCHEDULE%", "00:10:00"):
        assert error(EXPORT_SCHEDULE=bad).startswith(f"EXPORT_SCHEDULE={bad!r}")


@given(st.text(alphabet="0123456789*/,- abcdefghijklmnopqrstuvwxyzMONFRIJAN\u0665\t", max_size=40))
def test_any_export_schedule_is_accepted_as_six_fields_or_refused_in_one_line(raw):
    try:
        value = export_schedule({"EXPORT_SCHEDULE": raw})
    except SettingsError as exc:
        message = str(exc)
        assert message.startswith("EXPORT_SCHEDULE=") and "\n" not in message
        assert DEFAULT_SCHEDULE in message  # says what a valid one looks like
        return
    assert value == (" ".join(raw.split()) or DEFAULT_SCHEDULE)
    assert len(value.split()) == 6


def test_an_account_url_carrying_a_sas_is_shown_without_its_signature():
    account = f"https://acct.blob.core.windows.net/?sv=2024-05-04&sp=rcwl&sig={SIG}"
    s = settings(BLOB_SAS_URL="", BLOB_ACCOUNT_URL=account, BLOB_CONTAINER="exports")
    for text in (s.destination_label, repr(s), str(s)):
        assert "c2VjcmV0" not in text and "sig=REDACTED" in text


_SECRET = st.text("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789", min_size=12, max_size=30)


@given(secret=_SECRET, key=st.sampled_from(["auth", "x-api-key", "apiKey", "access", "sv"]),
       where=st.sampled_from(["query", "user", "fragment"]))
def test_the_check_settings_line_never_shows_a_credential_put_in_a_url(secret, key, where):
    """``check``'s one line names the ETL API and the container by scheme, host and path only: a
    credential under any query key, as a URL's user name or in its fragment never reaches it."""
    def put(url: str) -> str:
        scheme, rest = url.split("://", 1)
        if where == "user":
            return f"{scheme}://{secret}@{rest}"
        return f"{url}?{key}={secret}" if where == "query" else f"{url}#{key}={secret}"

    for line in (settings(ETL_API_ENDPOINT=put("https://etl.example.com/v1")).summary(),
                 settings(BLOB_SAS_URL="", BLOB_ACCOUNT_URL=put("https://acct.blob.core.windows.net"),
                          BLOB_CONTAINER="exports").summary()):
        assert secret not in line, line
        assert "from https://etl.example.com/v1;" in line or "from https://etl.example.com;" in line, line
        assert "acct.blob.core.windows.net/exports" in line, line


_BAD_PORTS = st.one_of(st.integers(65536, 10**12).map(str), st.just("0"), st.just("00"),
                       st.text("abcxyz-+_.~!$", min_size=1, max_size=8))


@given(port=_BAD_PORTS, name=st.sampled_from(["ETL_API_ENDPOINT", "BLOB_SAS_URL", "BLOB_ACCOUNT_URL"]))
def test_a_url_whose_port_is_not_1_to_65535_is_a_settings_error_not_a_crash_at_check(port, name):
    """urlsplit reads the port only when asked: a URL with port 99999 or :abc was accepted, then
    ``check``'s settings line and every run's recipe raised a bare ValueError."""
    urls = {"ETL_API_ENDPOINT": f"https://etl.example.com:{port}/v1",
            "BLOB_SAS_URL": f"https://acct.blob.core.windows.net:{port}/exports?sv=1&sp=rcwl&sig={SIG}",
            "BLOB_ACCOUNT_URL": f"https://acct.blob.core.windows.net:{port}"}
    extra = {"BLOB_SAS_URL": "", "BLOB_CONTAINER": "exports"} if name == "BLOB_ACCOUNT_URL" else {}
    assert error(**extra, **{name: urls[name]}).startswith(f"{name} has a port that is not a number from 1 to 65535")


@given(port=st.integers(1, 65535))
def test_any_port_from_1_to_65535_is_kept_in_the_check_line_unless_it_is_the_default(port):
    s = settings(BLOB_SAS_URL=f"https://acct.blob.core.windows.net:{port}/exports?sv=1&sp=rcwl&sig={SIG}")
    shown = "" if port == 443 else f":{port}"
    assert f"files to https://acct.blob.core.windows.net{shown}/exports," in s.summary()
