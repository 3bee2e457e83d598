"""One declaration of the settings (``shared.settings.SETTINGS``), four places that must agree: the
code that parses them, the README settings table, local.settings.sample.json and the Bicep
``exporterSettings``. Same names everywhere, each one really read, same defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.errors import SettingsError
from shared.settings import ALL_SETTINGS, DEFAULT_SCHEDULE, SETTING, Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "local.settings.sample.json"
BICEP = ROOT / "infra" / "app" / "function.bicep"
README = ROOT / "README.md"
#: Read by the Functions host/worker, not by the exporter.
PLATFORM_KEYS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags"}
#: A test hook (tests/…crash tests), never an app setting.
TEST_ONLY = {"EXPORTER_CRASH_AT"}
#: The smallest valid environment: every required setting, nothing else.
BASE = {
    "ETL_API_ENDPOINT": "https://etl.example.com",
    "ETL_API_TOKEN": "token-0123456789",
    "EXPORT_FORMAT": "csv",
    "BLOB_SAS_URL": "https://acct.blob.core.windows.net/exports?sp=rcwl&sig=abc",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def _canonical(name: str) -> str:
    """Identity-based AzureWebJobsStorage__accountName etc. are the AzureWebJobsStorage setting."""
    return "AzureWebJobsStorage" if name.startswith("AzureWebJobsStorage__") else name


def sample_values() -> dict[str, str]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]


def bicep_text() -> str:
    return BICEP.read_text(encoding="utf-8")


def bicep_settings() -> dict[str, str]:
    """``exporterSettings`` entry name -> its Bicep expression."""
    match = re.search(r"^var exporterSettings = \{\n(.*?)^\}", bicep_text(), re.M | re.S)
    assert match, "var exporterSettings = { ... } not found in infra/app/function.bicep"
    entries = re.findall(r"^\s*'([A-Za-z_]\w*)':\s*(.+?)\s*$", match.group(1), re.M)
    body_lines = [ln for ln in match.group(1).splitlines() if ln.strip() and not ln.strip().startswith("//")]
    assert len(entries) == len(body_lines), "every exporterSettings line must be 'NAME': value"
    return dict(entries)


def bicep_param_defaults() -> dict[str, str]:
    return dict(re.findall(r"^param (\w+) \w+ = (.+?)\s*$", bicep_text(), re.M))


def _bicep_literal(expression: str, params: dict[str, str]) -> str | None:
    """The value a Bicep expression has with the parameters' defaults; None if not a constant."""
    expression = expression.strip()
    if re.fullmatch(r"'[^'$]*'", expression):
        return expression[1:-1]
    if expression in params:
        return _bicep_literal(params[expression], params)
    ternary = re.fullmatch(r"(\w+) \? '([^']*)' : '([^']*)'", expression)
    if ternary and params.get(ternary.group(1)) in ("true", "false"):
        return ternary.group(2) if params[ternary.group(1)] == "true" else ternary.group(3)
    return None


def shared_source(without_all_settings: bool = True) -> str:
    text = ""
    for path in sorted((ROOT / "shared").rglob("*.py")):
        src = path.read_text(encoding="utf-8")
        if without_all_settings and path.name == "settings.py":
            # The declaration names every setting: what counts is the code that reads them.
            src, n = re.subn(r"SETTINGS: tuple\[Setting, \.\.\.\] = \(.*?\n\)\n", "", src, flags=re.S)
            assert n == 1, "the SETTINGS declaration was not found in shared/settings.py"
        text += src
    return text


def _differs_from_default(name: str, value: str) -> bool | None:
    """True when setting ``name`` to ``value`` gives other settings than leaving it unset;
    None when the setting has no default (it is required)."""
    without = {k: v for k, v in BASE.items() if k != name}
    try:
        default = Settings.from_env(without)
    except SettingsError:
        return None
    return Settings.from_env({**without, name: value}) != default


def test_the_sample_file_lists_exactly_the_settings_the_code_reads():
    names = set(sample_values()) - PLATFORM_KEYS
    assert names == set(ALL_SETTINGS), (
        f"missing from the sample: {sorted(set(ALL_SETTINGS) - names)}; "
        f"not read by the code: {sorted(names - set(ALL_SETTINGS))}")


def test_the_bicep_sets_exactly_the_settings_the_code_reads():
    names = {_canonical(n) for n in bicep_settings()}
    assert names == set(ALL_SETTINGS), (
        f"missing from exporterSettings: {sorted(set(ALL_SETTINGS) - names)}; "
        f"not read by the code: {sorted(names - set(ALL_SETTINGS))}")
    assert len(ALL_SETTINGS) == len(set(ALL_SETTINGS))


def test_the_bicep_identity_based_storage_keys_are_the_ones_the_code_understands():
    keys = {n for n in bicep_settings() if n.startswith("AzureWebJobsStorage__")}
    assert "AzureWebJobsStorage__accountName" in keys or "AzureWebJobsStorage__tableServiceUri" in keys
    src = shared_source()
    assert any(f'"{k}"' in src for k in keys)


@pytest.mark.parametrize("name", ALL_SETTINGS)
def test_the_code_reads_every_setting_it_lists(name):
    assert f'"{name}"' in shared_source() or f"%{name}%" in shared_source(), (
        f"{name} is in ALL_SETTINGS but nothing in shared/ reads it")


def test_the_code_reads_no_setting_it_does_not_list():
    src = shared_source()
    read = set(re.findall(r'\(env, "([A-Za-z_]\w*)"', src))
    read |= set(re.findall(r'(?:environ|env)\.get\("([A-Za-z_]\w*)"', src))
    read = {_canonical(n) for n in read} - TEST_ONLY
    assert read <= set(ALL_SETTINGS), f"read but not listed: {sorted(read - set(ALL_SETTINGS))}"


@pytest.mark.parametrize("name", sorted(ALL_SETTINGS))
def test_every_default_in_the_sample_file_is_the_code_default(name):
    value = sample_values()[name]
    if value == "":  # empty = unset: the code's default applies
        return
    differs = _differs_from_default(name, value)
    if differs is None:  # required: the sample holds a local example, not a default
        return
    assert not differs, f"local.settings.sample.json {name}={value!r} is not the code's default"


@pytest.mark.parametrize("name", sorted(ALL_SETTINGS))
def test_every_constant_default_in_the_bicep_is_the_code_default(name):
    params = bicep_param_defaults()
    entries = {n: e for n, e in bicep_settings().items() if _canonical(n) == name}
    if name == "AzureWebJobsStorage":
        return  # identity-based keys, filled from the storage account
    (expression,) = entries.values()
    value = _bicep_literal(expression, params)
    if value is None or value == "":
        return  # computed (a Key Vault reference, a resource property) or unset
    differs = _differs_from_default(name, value)
    if differs is None:
        return
    assert not differs, f"function.bicep {name}: {expression} = {value!r} is not the code's default"


def test_the_schedule_default_is_the_same_in_the_code_the_sample_and_the_bicep():
    assert sample_values()["EXPORT_SCHEDULE"] == DEFAULT_SCHEDULE
    expression = bicep_settings()["EXPORT_SCHEDULE"]
    assert _bicep_literal(expression, bicep_param_defaults()) == DEFAULT_SCHEDULE


def test_the_sample_file_holds_no_real_secret():
    values = sample_values()
    assert values["APPLICATIONINSIGHTS_CONNECTION_STRING"] == ""
    assert "sig=" not in values["BLOB_SAS_URL"]


def readme_settings() -> dict[str, tuple[str, str]]:
    """README settings table: name -> (required column, default column)."""
    section = README.read_text(encoding="utf-8").split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z_]\w*)` \|([^|]*)\|([^|]*)\|", section, re.M)
    return {name: (required.strip(), default.strip()) for name, required, default in rows}


def test_the_readme_lists_exactly_the_declared_settings():
    names = set(readme_settings())
    assert names == set(ALL_SETTINGS), (
        f"missing from the README table: {sorted(set(ALL_SETTINGS) - names)}; "
        f"not declared: {sorted(names - set(ALL_SETTINGS))}")


@pytest.mark.parametrize("name", ALL_SETTINGS)
def test_the_readme_shows_the_declared_default_and_requirement(name):
    required, default = readme_settings()[name]
    spec = SETTING[name]
    assert (required == "yes") == spec.required, f"README 'required' of {name} is {required!r}"
    declared = spec.default
    if isinstance(declared, bool):
        declared = str(declared).lower()
    if declared not in (None, ""):
        assert default == f"`{declared}`", f"README default of {name} is {default!r}, the code's is {declared!r}"
    else:
        assert not default.startswith("`"), f"README gives {name} a default {default!r}; the code has none"
