"""The Functions entry point: a timer function on EXPORT_SCHEDULE (its default when unset), whose
body runs the same export as the CLI against Azurite and the emulator (EXPORT_MODE=inline, the
default) and fails the invocation when the run fails; and a queue trigger on %EXPORT_QUEUE%
(tests/test_work_queue.py runs its body)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.functions.decorators.core import BindingDirection
from azure.functions.timer import TimerRequest

from function_app import app
from shared.errors import SettingsError
from shared.settings import DEFAULT_SCHEDULE
from shared.summary import RunFailed
from shared.windows import WINDOW, format_rfc3339, latest_due_end
from tests.support.calls import make_window_calls


@functools.cache
def _functions():
    # The worker indexes the app once; azure-functions refuses a second get_functions() call
    # (it sees its own function names again), so the tests index it once too.
    return app.get_functions()


def _the_function():
    """The timer function."""
    (function,) = [f for f in _functions() if f.get_function_name() == "export_calls"]
    return function


ROOT = Path(__file__).resolve().parent.parent
#: What the Python worker does when the host loads the app: import function_app, index it.
INDEX_APP = (
    "import json, function_app\n"
    "(function,) = [f for f in function_app.app.get_functions() if f.get_function_name() == 'export_calls']\n"
    "print(json.dumps([b.get_dict_repr()['schedule'] for b in function.get_bindings()]))\n"
)


def index_app(**settings: str) -> subprocess.CompletedProcess[str]:
    """Load the app in a fresh interpreter with the given app settings (EXPORT_SCHEDULE unset
    unless given), as the Functions host would."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("EXPORT_SCHEDULE", "APPLICATIONINSIGHTS_CONNECTION_STRING")}
    env.update(settings)
    return subprocess.run([sys.executable, "-c", INDEX_APP], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_app_has_a_timer_and_a_queue_trigger_on_the_export_queue_setting():
    assert sorted(f.get_function_name() for f in _functions()) == ["export_calls", "export_unit"]
    (queue,) = [f for f in _functions() if f.get_function_name() == "export_unit"]
    (binding,) = queue.get_bindings()
    spec = binding.get_dict_repr()
    assert binding.type == "queueTrigger"
    assert spec["queueName"] == "%EXPORT_QUEUE%" and spec["connection"] == "AzureWebJobsStorage"


def test_the_timer_is_on_the_export_schedule_setting():
    function = _the_function()
    bindings = function.get_bindings()
    assert len(bindings) == 1
    (binding,) = bindings
    assert binding.type == "timerTrigger"
    spec = binding.get_dict_repr()
    # Bound to the setting's value as the app loaded (a "%EXPORT_SCHEDULE%" expression would leave
    # an app without the setting with no timer: the host cannot resolve it).
    assert spec["schedule"] == (os.environ.get("EXPORT_SCHEDULE", "").strip() or DEFAULT_SCHEDULE)
    assert "%" not in spec["schedule"]
    assert spec["runOnStartup"] is False
    assert spec["direction"] == BindingDirection.IN
    assert function.get_function_name() == "export_calls"


def test_an_app_without_export_schedule_runs_on_the_documented_default():
    loaded = index_app()
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1]) == [DEFAULT_SCHEDULE] == ["0 */10 * * * *"]
    loaded = index_app(EXPORT_SCHEDULE="   ")  # blank is unset
    assert json.loads(loaded.stdout.splitlines()[-1]) == [DEFAULT_SCHEDULE]


def test_an_app_with_export_schedule_runs_on_it():
    loaded = index_app(EXPORT_SCHEDULE=" 30 */5 * * * MON-FRI ")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.splitlines()[-1]) == ["30 */5 * * * MON-FRI"]


@pytest.mark.parametrize("schedule", ["0 */10 * * *", "*/10 minutes", "0 */10 * * * * *", "0 60 * * * *",
                                      "%EXPORT_SCHEDULE%"])
def test_a_malformed_export_schedule_stops_the_app_loading_with_one_line_naming_the_setting(schedule):
    loaded = index_app(EXPORT_SCHEDULE=schedule)
    assert loaded.returncode != 0
    last = loaded.stderr.strip().splitlines()[-1]
    assert last.startswith("shared.errors.SettingsError: EXPORT_SCHEDULE=")
    assert "six fields" in last and DEFAULT_SCHEDULE in last


@pytest.fixture
def app_env(harness, monkeypatch):
    """The app settings as the Functions host would set them, starting at the latest due window."""
    start = latest_due_end(datetime.now(UTC), 60) - WINDOW
    for name, value in {**harness.env, "EXPORT_START": format_rfc3339(start)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    return start


def test_a_tick_exports_the_due_window_into_the_container(harness, app_env):
    calls = make_window_calls(app_env, per_type={"track": 5, "identify": 2})
    harness.source.add(calls)
    user_function = _the_function().get_user_function()
    user_function(TimerRequest(past_due=False))
    blobs = harness.data_blobs()
    assert set(blobs) == {"exports/segment/2184.13699.1.track.csv",
                          "exports/segment/2184.13699.1.identify.csv"}
    assert blobs["exports/segment/2184.13699.1.track.csv"].metadata["rows"] == "5"
    assert blobs["exports/segment/2184.13699.1.track.csv"].metadata["window_start"] == format_rfc3339(app_env)


def test_a_past_due_tick_exports_too(harness, app_env):
    harness.source.add(make_window_calls(app_env, per_type={"page": 1}))
    _the_function().get_user_function()(TimerRequest(past_due=True))
    assert set(harness.data_blobs()) == {"exports/segment/2184.13699.1.page.csv"}


def test_a_failed_run_fails_the_invocation(harness, app_env, monkeypatch):
    monkeypatch.setenv("ETL_API_TOKEN", "a-wrong-token-123456")
    with pytest.raises(RunFailed) as failed:
        _the_function().get_user_function()(TimerRequest(past_due=False))
    assert "ETL_API_TOKEN" in str(failed.value)
    assert "a-wrong-token-123456" not in str(failed.value)
    assert harness.blobs() == {}


def test_bad_settings_fail_the_invocation_naming_the_setting(harness, app_env, monkeypatch):
    monkeypatch.setenv("EXPORT_FORMAT", "xml")
    with pytest.raises(SettingsError, match="EXPORT_FORMAT"):
        _the_function().get_user_function()(TimerRequest(past_due=False))
