"""``python -m shared.cli`` as an operator runs it: a subprocess against Azurite and the emulator,
checking exit codes exactly and that errors are one line, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.calls import make_window_calls

W0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
START = {"EXPORT_START": "2026-11-28T12:00:00Z"}
AFTER_ONE = "2026-11-28T12:11:01Z"  # the 12:00 window is closed and settled
AFTER_TWO = "2026-11-28T12:21:01Z"


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _assert_clean_exit(result, code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Fatal Python error" not in result.stderr


def _table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def test_run_prints_window_type_rows_blob_and_bytes_and_exits_0(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 6, "alias": 2}))
    result = harness.cli("run", "--now", AFTER_ONE, extra_env=START)
    _assert_clean_exit(result, 0)
    rows = _table(result.stdout)
    assert rows[0] == ["window", "type", "rows", "blob", "bytes"]
    blobs = harness.data_blobs()
    track = next(r for r in rows if r[1] == "track")
    assert track[0] == "2026-11-28T12:00:00Z"
    assert track[2] == "6"
    assert track[3] == "exports/segment/2184.13699.1.track.csv"
    assert track[4] == str(len(blobs[track[3]].data))
    alias = next(r for r in rows if r[1] == "alias")
    assert alias[2:4] == ["2", "exports/segment/2184.13699.1.alias.csv"]
    assert ["2026-11-28T12:00:00Z", "page", "0", "-", "(no", "calls)"] in rows
    assert result.stdout.splitlines()[-1] == "2 file(s), 8 call(s), 0 rejected, 1 window(s)"
    assert not _error_lines(result.stderr)


def test_a_second_run_with_nothing_due_prints_the_summary_only(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 1}))
    _assert_clean_exit(harness.cli("run", "--now", AFTER_ONE, extra_env=START), 0)
    result = harness.cli("run", "--now", AFTER_ONE, extra_env=START)
    _assert_clean_exit(result, 0)
    assert result.stdout.splitlines() == ["0 file(s), 0 call(s), 0 rejected, 0 window(s)"]


def test_a_settings_error_is_one_line_on_stderr_and_exit_2(harness):
    result = harness.cli("run", extra_env={"EXPORT_FORMAT": "xml"})
    _assert_clean_exit(result, 2)
    assert result.stderr.splitlines() == [
        "error: EXPORT_FORMAT='xml' is not supported: use one of csv, json, parquet"]
    assert result.stdout == ""


def test_a_missing_setting_is_one_line_on_stderr_and_exit_2_for_status_too(harness):
    result = harness.cli("status", extra_env={"ETL_API_ENDPOINT": ""})
    _assert_clean_exit(result, 2)
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ETL_API_ENDPOINT is not set")


def test_a_bad_now_is_a_usage_error(harness):
    result = harness.cli("run", "--now", "yesterday")
    _assert_clean_exit(result, 2)
    assert _error_lines(result.stderr) == ["error: --now 'yesterday' is not an RFC 3339 time"]


def test_a_failed_run_is_one_error_line_and_exit_1(harness):
    result = harness.cli("run", "--now", AFTER_ONE, extra_env={**START, "ETL_API_TOKEN": "wrong-token-12345"})
    _assert_clean_exit(result, 1)
    (line,) = _error_lines(result.stderr)
    assert line.startswith("error: the ETL API rejected the token: check ETL_API_TOKEN")
    assert "wrong-token-12345" not in result.stdout + result.stderr


def test_a_run_refused_by_storage_is_one_error_line_and_exit_1(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 2}))
    expired = harness.azurite.sas_url(harness.container, expiry=datetime.now(UTC) - timedelta(hours=1))
    result = harness.cli("run", "--now", AFTER_ONE, extra_env={**START, "BLOB_SAS_URL": expired})
    _assert_clean_exit(result, 1)
    (line,) = _error_lines(result.stderr)
    assert "expired" in line and "issue a new SAS" in line
    sig = expired.split("sig=")[1].split("&")[0]
    assert sig not in result.stdout + result.stderr


def test_an_unreachable_etl_api_fails_the_run_with_exit_1(harness):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = harness.cli("run", "--now", AFTER_ONE,
                         extra_env={**START, "ETL_API_ENDPOINT": f"http://127.0.0.1:{port}",
                                    "RUN_BUDGET_SECONDS": "10"})
    _assert_clean_exit(result, 1)
    assert len(_error_lines(result.stderr)) == 1


def test_status_still_shows_where_a_destination_stands_when_its_etl_api_refuses_the_token(harness):
    """The destination that most needs watching (a token revoked) must not vanish from ``status``:
    its rows are read with the ids pinned at its first run, the folder is named, and the command
    still fails with the ETL API's error (never the token)."""
    harness.source.add(make_window_calls(W0, per_type={"track": 3}))
    _assert_clean_exit(harness.cli("run", "--now", AFTER_ONE, extra_env=START), 0)
    wrong = "a-revoked-token-0123456789abcdef"
    result = harness.cli("status", extra_env={"ETL_API_TOKEN": wrong})
    _assert_clean_exit(result, 1)
    assert result.stdout.splitlines()[0].endswith("(folder exports/segment)"), result.stdout
    rows = {r[0]: r for r in _table(result.stdout)[1:] if r and r[0] in ("track", "page")}
    assert rows["track"][1:3] == ["1", "2026-11-28T12:00:00Z/2026-11-28T12:10:00Z"], result.stdout
    assert "the rows above are of the pinned ids 2184.13699" in result.stdout
    assert len(_error_lines(result.stderr)) == 1 and "token" in result.stderr
    assert wrong not in result.stdout + result.stderr



def test_status_of_a_destination_whose_etl_api_names_other_ids_fails_with_that_error(harness):
    """The ETL API answers, but with another destination's ids, so every run stops: ``status``
    shows the pinned destination's rows (never the other ids'), says the ETL API names other ids
    (not "not reached") and fails with that error (it exited 0, where an outage exits 1)."""
    harness.source.add(make_window_calls(W0, per_type={"track": 3}))
    _assert_clean_exit(harness.cli("run", "--now", AFTER_ONE, extra_env=START), 0)
    harness.etl.integration_id = "9999"
    result = harness.cli("status")
    _assert_clean_exit(result, 1)
    rows = {r[0]: r for r in _table(result.stdout)[1:] if r and r[0] == "track"}
    assert rows["track"][1] == "1", result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("destination "))
    assert header.startswith("destination 2184.13699 -> "), result.stdout
    assert "not reached" not in result.stdout, result.stdout
    assert "returns 9999.13699 but the state is pinned to 2184.13699" in result.stdout
    assert len(_error_lines(result.stderr)) == 1 and "now returns 9999.13699" in result.stderr

def test_status_prints_each_types_last_position_and_last_window(harness):
    harness.source.add(make_window_calls(W0, per_type={"track": 3}))
    harness.source.add(make_window_calls(W0 + timedelta(minutes=10), per_type={"track": 2, "group": 1}, seed=3))
    _assert_clean_exit(harness.cli("run", "--now", AFTER_TWO, extra_env=START), 0)
    result = harness.cli("status")
    _assert_clean_exit(result, 0)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("destination 2184.13699 -> http://127.0.0.1:")
    assert "sig=REDACTED" in lines[0]
    rows = {r[0]: r for r in _table(result.stdout)[1:] if r and r[0] in (
        "identify", "track", "page", "screen", "alias", "group")}
    assert set(rows) == {"identify", "track", "page", "screen", "alias", "group"}
    window = "2026-11-28T12:10:00Z/2026-11-28T12:20:00Z"
    assert rows["track"][1:3] == ["2", window]
    assert rows["group"][1:3] == ["1", window]
    assert rows["page"][1:3] == ["0", window]
    assert lines[-1].startswith("SAS expires ")


def test_status_before_any_run_says_not_started(harness):
    result = harness.cli("status")
    _assert_clean_exit(result, 0)
    assert "- (not started)" in result.stdout


# --- which settings file is read --------------------------------------------------------------

def _cli_in(cwd, *args: str, env: dict[str, str] | None = None):
    """The CLI run from ``cwd`` (where ./local.settings.json is looked for), no setting in the
    environment but ``env``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from shared.settings import ALL_SETTINGS

    root = Path(__file__).resolve().parent.parent
    base = {k: v for k, v in os.environ.items() if k not in ALL_SETTINGS and not k.startswith("EXPORTER_")}
    base["PYTHONPATH"] = str(root)
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def test_an_explicit_settings_path_that_does_not_exist_is_a_one_line_usage_error(tmp_path):
    missing = tmp_path / "nonexist.json"
    for command in ("check", "run", "status"):
        result = _cli_in(tmp_path, "--settings", str(missing), command)
        _assert_clean_exit(result, 2)
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"error: --settings {missing}: no such file (leave --settings out to read ./local.settings.json, "
            "or --no-settings for the environment only)"]


def test_without_local_settings_json_a_missing_setting_says_to_copy_the_sample(tmp_path):
    hint = "(no local.settings.json here: copy local.settings.sample.json and fill it in)"
    result = _cli_in(tmp_path, "run")
    _assert_clean_exit(result, 2)
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ETL_API_ENDPOINT is not set")
    assert result.stderr.rstrip().endswith(hint)
    check = _cli_in(tmp_path, "check")
    _assert_clean_exit(check, 1)
    assert len(check.stdout.splitlines()) == 1 and hint in check.stdout

    # with the file there (and the setting still unset) the hint would mislead: it is left out
    (tmp_path / "local.settings.json").write_text('{"Values": {"ETL_API_TOKEN": "from-the-file"}}')
    result = _cli_in(tmp_path, "run")
    _assert_clean_exit(result, 2)
    assert result.stderr.startswith("error: ETL_API_ENDPOINT is not set") and hint not in result.stderr
    # --no-settings reads the environment only (not the file's token); no hint either
    result = _cli_in(tmp_path, "--no-settings", "run", env={"ETL_API_ENDPOINT": "http://127.0.0.1:9"})
    _assert_clean_exit(result, 2)
    assert result.stderr.startswith("error: ETL_API_TOKEN is not set") and hint not in result.stderr


def test_an_unreachable_etl_api_names_the_endpoint_and_the_fix(harness):
    import socket

    with socket.socket() as s:  # nothing listens on it once closed
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = harness.cli("status", extra_env={"ETL_API_ENDPOINT": endpoint})
    _assert_clean_exit(result, 1)
    assert _error_lines(result.stderr) == [
        f"error: ETL API /v1/destination kept failing: connection failed: NewConnectionError ({endpoint}): "
        "check ETL_API_ENDPOINT and that the API is reachable"]
