"""The daily verify timer: in the app only when VERIFY_SCHEDULE is set (off by default), on that
schedule; a malformed one stops the app loading with one line naming it. Its body is the
``verify`` command's audit (tests/test_verify.py; its telemetry: tests/test_telemetry.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INDEX_APP = (
    "import json, function_app\n"
    "print(json.dumps({f.get_function_name(): [b.get_dict_repr().get('schedule') for b in f.get_bindings()]\n"
    "                  for f in function_app.app.get_functions()}))\n"
)


def _index(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("EXPORT_SCHEDULE", "VERIFY_SCHEDULE", "APPLICATIONINSIGHTS_CONNECTION_STRING")}
    env.update(settings)
    return subprocess.run([sys.executable, "-c", INDEX_APP], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_without_verify_schedule_the_app_has_no_verify_timer():
    loaded = _index()
    assert loaded.returncode == 0, loaded.stderr
    functions = json.loads(loaded.stdout.splitlines()[-1])
    assert functions["export_calls"] == ["0 */10 * * * *"] and "verify_destination" not in functions


def test_with_verify_schedule_the_app_has_a_second_timer_on_it():
    loaded = _index(VERIFY_SCHEDULE=" 0 30 3 * * * ")
    assert loaded.returncode == 0, loaded.stderr
    functions = json.loads(loaded.stdout.splitlines()[-1])
    assert functions["export_calls"] == ["0 */10 * * * *"] and functions["verify_destination"] == ["0 30 3 * * *"]
    assert set(functions) - {"verify_destination"} == set(json.loads(_index().stdout.splitlines()[-1]))


@pytest.mark.parametrize("schedule", ["daily", "0 30 3 * *", "0 30 25 * * *"])
def test_a_malformed_verify_schedule_stops_the_app_loading_with_one_line_naming_it(schedule):
    loaded = _index(VERIFY_SCHEDULE=schedule)
    assert loaded.returncode != 0
    last = loaded.stderr.strip().splitlines()[-1]
    assert last.startswith("shared.errors.SettingsError: VERIFY_SCHEDULE=") and "0 30 3 * * *" in last
