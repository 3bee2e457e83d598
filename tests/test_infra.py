"""What can be checked of the deployment without a Bicep compiler or a subscription: the text of
infra/*.bicep, azure.yaml and host.json, and the azd hooks, which run here with sh as azd runs
them. docs/deploy.md section 9 ("How the templates were checked") says what each test stands for.

The app-settings names themselves are compared with the code in tests/test_settings_consistency.py;
this file reuses its parser of ``exporterSettings``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_settings_consistency import ALL_SETTINGS, _canonical, bicep_settings

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"


# --- a small reader of Bicep text -----------------------------------------------------------

def _strip_comments(text: str) -> str:
    """The text with // and /* */ comments blanked out (strings left alone), same length."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    interpolation = 0  # depth of ${ ... } inside a string
    stack: list[int] = []  # interpolation depths of the strings we are in
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\" and i + 1 < n:
                out.append(text[i:i + 2])
                i += 2
                continue
            if c == "$" and text.startswith("${", i):
                stack.append(interpolation)
                in_string = False
                interpolation = 1
                out.append("${")
                i += 2
                continue
            if c == "'":
                in_string = False
            out.append(c)
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        if c == "'":
            in_string = True
        elif stack and c == "{":
            interpolation += 1
        elif stack and c == "}":
            interpolation -= 1
            if interpolation == 0:
                interpolation = stack.pop()
                in_string = True
        out.append(c)
        i += 1
    return "".join(out)


def _matching(text: str, start: int) -> int:
    """Index just past the bracket that closes the one at ``start`` (strings skipped)."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    closing = []
    i, n = start, len(text)
    in_string = False
    string_depths: list[int] = []  # how many brackets were open when each interpolation began
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if text.startswith("${", i):
                string_depths.append(len(closing))
                closing.append("}")
                in_string = False
                i += 2
                continue
            if c == "'":
                in_string = False
            i += 1
            continue
        if c == "'":
            in_string = True
        elif c in pairs:
            closing.append(pairs[c])
        elif closing and c == closing[-1]:
            closing.pop()
            if string_depths and len(closing) == string_depths[-1]:
                string_depths.pop()
                in_string = True
            elif not closing:
                return i + 1
        i += 1
    raise AssertionError(f"unbalanced bracket at offset {start}")


@dataclass(frozen=True)
class Declaration:
    """One ``resource``/``module`` declaration: its symbolic name, type or path, condition, body."""

    kind: str  # resource | module
    name: str
    target: str  # 'Microsoft.X/y@version' or the module path
    existing: bool  # a reference to a resource this file does not deploy
    condition: str  # the text inside ``if ( ... )``, '' when unconditional
    body: str  # from the opening { to its closing }, comments removed


@dataclass(frozen=True)
class BicepFile:
    path: Path
    text: str  # comments removed

    @classmethod
    def load(cls, relative: str) -> BicepFile:
        path = INFRA / relative
        return cls(path, _strip_comments(path.read_text(encoding="utf-8")))

    def declarations(self, kind: str | None = None) -> list[Declaration]:
        found = []
        pattern = re.compile(r"^(resource|module) (\w+) '([^']+)'( existing)? = ", re.M)
        for match in pattern.finditer(self.text):
            if kind and match.group(1) != kind:
                continue
            i = match.end()
            condition = ""
            if self.text.startswith("if", i):
                open_paren = self.text.index("(", i)
                close = _matching(self.text, open_paren)
                condition = self.text[open_paren + 1:close - 1].strip()
                i = close
            while self.text[i] in " \t":
                i += 1
            if self.text[i] == "[":  # a loop: [for x in y: { ... }] or [for ...: if (c) { ... }]
                loop_end = _matching(self.text, i)
                inner = self.text[i:loop_end]
                cond = re.search(r":\s*if\s*\((.*?)\)\s*\{", inner, re.S)
                condition = cond.group(1).strip() if cond else ""
                i = self.text.index("{", i)
            body = self.text[i:_matching(self.text, i)]
            found.append(Declaration(match.group(1), match.group(2), match.group(3), bool(match.group(4)),
                                     condition, body))
        return found

    def declaration(self, name: str) -> Declaration:
        (found,) = [d for d in self.declarations() if d.name == name]
        return found

    def resources_of_type(self, resource_type: str) -> list[Declaration]:
        return [d for d in self.declarations("resource")
                if d.target.split("@")[0].lower() == resource_type.lower() and not d.existing]

    def params(self) -> dict[str, Param]:
        """``param`` name -> its type, default and decorators (the lines just above it)."""
        out = {}
        lines = self.text.splitlines()
        for index, line in enumerate(lines):
            match = re.match(r"^param (\w+) (\w+)(?: = (.*))?$", line.rstrip())
            if not match:
                continue
            decorators = []
            j = index - 1
            while j >= 0 and (lines[j].startswith(("@", "  ")) or lines[j].strip() in ("])", "})")):
                decorators.insert(0, lines[j])
                j -= 1
            default = (match.group(3) or "").strip()
            if default in ("[", "{"):  # a multi-line default: take the lines up to the closing bracket
                start = sum(len(ln) + 1 for ln in lines[:index]) + line.index(default)
                default = self.text[start:_matching(self.text, start)]
            out[match.group(1)] = Param(match.group(1), match.group(2), default, "\n".join(decorators))
        return out

    def var(self, name: str) -> str:
        match = re.search(rf"^var {name} = ", self.text, re.M)
        assert match, f"var {name} not found in {self.path.name}"
        i = match.end()
        if self.text[i] in "{[(":
            return self.text[i:_matching(self.text, i)]
        return _expression(self.text, i)

    def outputs(self) -> dict[str, str]:
        return dict(re.findall(r"^output (\w+) \w+ = (.+)$", self.text, re.M))


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str
    decorators: str

    def min_length(self) -> int:
        match = re.search(r"@minLength\((\d+)\)", self.decorators)
        return int(match.group(1)) if match else 0

    def allowed(self) -> list[str]:
        match = re.search(r"@allowed\(\[(.*?)\]\)", self.decorators, re.S)
        return re.findall(r"'([^']*)'", match.group(1)) if match else []


def prop(body: str, name: str) -> str:
    """The value of ``name:`` at the top level of an object body (nested objects skipped)."""
    depth = 0
    i, n = 1, len(body)
    in_string = False
    while i < n:
        c = body[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == "'":
                in_string = False
            i += 1
            continue
        if c == "'":
            in_string = True
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        elif depth == 0 and body.startswith(f"{name}:", i) and not (body[i - 1].isalnum() or body[i - 1] == "_"):
            j = i + len(name) + 1
            while body[j] == " ":
                j += 1
            if body[j] in "{[(":
                return body[j:_matching(body, j)]
            return _expression(body, j)
        i += 1
    raise AssertionError(f"property {name!r} not found")


def _expression(text: str, start: int) -> str:
    """The expression from ``start`` to the end of its line, brackets it opens included."""
    i = start
    while i < len(text) and text[i] != "\n":
        if text[i] == "'":
            i = _string_end(text, i)
        elif text[i] in "{[(":
            i = _matching(text, i) - 1
        i += 1
    return text[start:i].strip()


def _string_end(text: str, start: int) -> int:
    """Index of the quote that ends the string starting at ``start`` (interpolations skipped)."""
    i = start + 1
    while text[i] != "'":
        if text[i] == "\\":
            i += 1
        elif text.startswith("${", i):
            i = _matching(text, i + 1) - 1
        i += 1
    return i


def bicep_string(literal: str) -> str:
    """The value of a Bicep single-quoted string literal without interpolation."""
    assert literal.startswith("'") and literal.endswith("'"), literal
    inner = literal[1:-1]
    assert "${" not in inner, f"not a constant string: {literal}"
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), inner)


def all_bicep_files() -> list[BicepFile]:
    return [BicepFile.load(str(p.relative_to(INFRA))) for p in sorted(INFRA.rglob("*.bicep"))]


# --- the reader reads what it should -----------------------------------------------------------

def test_the_reader_skips_comments_and_strings_with_braces():
    text = _strip_comments("var a = '${x}{' // } comment\n/* { */ var b = { c: '}' }\n")
    assert "comment" not in text and "/*" not in text
    start = text.index("{ c")
    assert text[start:_matching(text, start)] == "{ c: '}' }"
    assert _strip_comments("var u = 'https://${name}.blob' // x") .startswith("var u = 'https://${name}.blob'")


# --- app settings -----------------------------------------------------------------------------

FUNCTION = "app/function.bicep"


def _object_entries(body: str) -> dict[str, str]:
    """``'NAME': value`` entries of a Bicep object literal (one per line)."""
    return dict(re.findall(r"^\s*'([A-Za-z_][\w]*)':\s*(.+?)\s*$", body, re.M))


def app_settings() -> dict[str, str]:
    """Every app setting the templates write on the function app: name -> Bicep expression."""
    bicep = BicepFile.load(FUNCTION)
    (config,) = [d for d in bicep.resources_of_type("Microsoft.Web/sites/config")
                 if bicep_string(prop(d.body, "name")) == "appsettings"]
    written = prop(config.body, "properties")
    assert written == "union(platformSettings, exporterSettings)", (
        f"the appsettings resource writes {written}, not the two setting objects")
    return {**_object_entries(bicep.var("platformSettings")), **_object_entries(bicep.var("exporterSettings"))}


def test_every_setting_the_code_reads_is_written_on_the_app():
    written = {_canonical(name) for name in app_settings()}
    assert set(ALL_SETTINGS) <= written, f"not set on the app: {sorted(set(ALL_SETTINGS) - written)}"
    # the object the consistency test reads is the one that is written
    assert set(bicep_settings()) <= set(app_settings())


def test_the_python_worker_reports_opentelemetry_so_logs_are_not_sent_twice():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    settings = app_settings()
    assert bicep_string(settings["PYTHON_ENABLE_OPENTELEMETRY"]) == "true"
    # a second Azure Monitor exporter in the worker, beside the one function_app.py configures
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in settings


def test_host_json_has_no_setting_that_is_dead_in_opentelemetry_mode():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert "applicationInsights" not in host.get("logging", {}), (
        "logging.applicationInsights (samplingSettings, ...) only applies to the Application Insights SDK mode")


def test_no_setting_flex_consumption_rejects():
    rejected = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"}
    assert not rejected & set(app_settings())


# --- Key Vault references ---------------------------------------------------------------------

KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def _module_params(module: Declaration) -> dict[str, str]:
    """``name: expression`` lines of a module's ``params`` object."""
    return dict(re.findall(r"^\s*(\w+): (.+?)\s*$", prop(module.body, "params"), re.M))


def test_key_vault_references_resolve_with_an_identity_granted_before_the_app_exists():
    main = BicepFile.load("main.bicep")
    identity_module = next(d for d in main.declarations("module") if d.target == "core/identity.bicep")
    vault_module = main.declaration("keyVault")
    app_module = main.declaration("exporterApp")

    # the vault module grants Key Vault Secrets User to that identity ...
    granted = _module_params(vault_module)["secretsUserPrincipalId"]
    assert granted == f"{identity_module.name}.outputs.principalId"
    vault = BicepFile.load("core/keyvault.bicep")
    grants = [d for d in vault.resources_of_type("Microsoft.Authorization/roleAssignments")
              if KEY_VAULT_SECRETS_USER in d.body or "keyVaultSecretsUser" in d.body]
    assert any("principalId: secretsUserPrincipalId" in d.body and not d.condition for d in grants)
    assert KEY_VAULT_SECRETS_USER in vault.var("keyVaultSecretsUser")

    # ... and the app module uses the vault module's outputs, so ARM deploys it after the grant
    app_params = _module_params(app_module)
    assert app_params["keyVaultName"].startswith(f"{vault_module.name}.outputs.")
    assert app_params["keyVaultReferenceIdentityId"] == f"{identity_module.name}.outputs.id"

    # the app resolves its references with that identity, which it carries
    function = BicepFile.load(FUNCTION)
    (app,) = function.resources_of_type("Microsoft.Web/sites")
    properties = prop(app.body, "properties")
    assert prop(properties, "keyVaultReferenceIdentity") == "keyVaultReferenceIdentityId"
    identity = prop(app.body, "identity")
    assert bicep_string(prop(identity, "type")) == "SystemAssigned, UserAssigned"
    assert "'${keyVaultReferenceIdentityId}': {}" in prop(identity, "userAssignedIdentities")


def test_every_key_vault_reference_names_a_secret_the_templates_create_in_that_vault():
    references = {name: expr for name, expr in app_settings().items() if "@Microsoft.KeyVault(" in expr}
    assert set(references) == {"ETL_API_TOKEN", "BLOB_SAS_URL"}
    created = set(secret_modules())
    for name, expr in references.items():
        match = re.search(r"@Microsoft\.KeyVault\(VaultName=\$\{keyVaultName\};SecretName=([\w-]+)\)", expr)
        assert match, f"{name}: {expr} is not a version-less VaultName/SecretName reference to keyVaultName"
        assert match.group(1) in created, f"{name} refers to {match.group(1)}, which no template creates"


def secret_modules() -> dict[str, Declaration]:
    """Secret name -> the main.bicep module that writes it (core/keyvault-secret.bicep)."""
    main = BicepFile.load("main.bicep")
    return {bicep_string(_module_params(d)["name"]): d for d in main.declarations("module")
            if d.target == "core/keyvault-secret.bicep"}


def test_the_system_assigned_identity_may_only_read_secrets_for_its_kv_references():
    """The app reads the @kv:NAME references of its destinations at run time with
    DefaultAzureCredential, which is its system-assigned identity: Key Vault Secrets User on the
    vault, never more (no Officer, no Administrator). The app settings' Key Vault references still
    resolve with the user-assigned identity granted before the app existed."""
    rbac = BicepFile.load("app/rbac.bicep")
    app_grants = [g for g in rbac.resources_of_type("Microsoft.Authorization/roleAssignments")
                  if "principalId: appPrincipalId" in g.body]
    vault_grants = [g for g in app_grants if prop(g.body, "scope") == "vault"]
    assert len(vault_grants) == 1
    (grant,) = vault_grants
    assert not grant.condition
    assert "roles.keyVaultSecretsUser" in prop(prop(grant.body, "properties"), "roleDefinitionId")
    assert KEY_VAULT_SECRETS_USER in rbac.var("roles")
    for other in app_grants:
        assert "keyVaultSecretsOfficer" not in other.body
    # ... and the app finds the vault through KEY_VAULT_URL, the vault's own URI
    settings = app_settings()
    assert settings["KEY_VAULT_URL"] == "keyVaultUri"
    main = BicepFile.load("main.bicep")
    assert _module_params(main.declaration("exporterApp"))["keyVaultUri"] == "keyVault.outputs.uri"
    assert BicepFile.load("core/keyvault.bicep").outputs()["uri"] == "vault.properties.vaultUri"


# --- azd hooks --------------------------------------------------------------------------------

def azure_yaml_hooks() -> dict[str, dict[str, str]]:
    """``hooks:`` of azure.yaml: hook name -> its keys (the flat form this repository uses)."""
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    block = re.search(r"^hooks:\n((?:[ #].*\n|\n)*)", text, re.M)
    assert block, "azure.yaml has no hooks"
    hooks: dict[str, dict[str, str]] = {}
    current = None
    for line in block.group(1).splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        if re.match(r"^  \w", line):
            current = line.strip().rstrip(":")
            hooks[current] = {}
        else:
            key, _, value = line.strip().partition(":")
            assert current, line
            hooks[current][key] = value.strip()
    return hooks


def run_hook(name: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a hook the way azd does (``sh <script>`` from the project root) with only ``env`` set;
    PATH is an empty folder, so no Azure CLI is found."""
    script = ROOT / azure_yaml_hooks()[name]["run"]
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return subprocess.run(["/bin/sh", str(script)], cwd=ROOT, env={"PATH": str(empty), **env},
                          capture_output=True, text=True, timeout=60)


def test_the_hooks_azure_yaml_names_exist_and_parse():
    hooks = azure_yaml_hooks()
    assert "postprovision" in hooks
    for name, hook in hooks.items():
        assert hook["shell"] == "sh", name
        assert hook.get("continueOnError", "false") == "false", name
        script = ROOT / hook["run"]
        assert script.is_file(), f"{name}: {script} does not exist"
        assert os.access(script, os.X_OK), f"{name}: {script} is not executable"
        result = subprocess.run(["/bin/sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_postprovision_without_the_azure_cli_prints_the_refresh_call_and_does_not_fail(tmp_path):
    app_id = "/subscriptions/0000/resourceGroups/rg-x/providers/Microsoft.Web/sites/func-abc"
    result = run_hook("postprovision", {"AZURE_FUNCTION_APP_ID": app_id}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (f'az rest --method post --url "{app_id}/config/configreferences/appsettings/refresh'
            "?api-version=2022-03-01") in result.stderr
    assert f"{app_id}/config/configreferences/appsettings?api-version=2022-03-01" in result.stderr


def test_postprovision_names_what_is_missing_when_run_before_provisioning(tmp_path):
    result = run_hook("postprovision", {}, tmp_path)
    assert result.returncode == 1
    assert "AZURE_FUNCTION_APP_ID" in result.stderr and "azd provision" in result.stderr


def test_the_app_id_the_postprovision_hook_needs_is_a_deployment_output():
    outputs = BicepFile.load("main.bicep").outputs()
    assert outputs["AZURE_FUNCTION_APP_ID"] == "exporterApp.outputs.id"
    assert "output id string = app.id" in BicepFile.load(FUNCTION).text


def test_no_runbook_restarts_the_app_to_pick_up_a_secret():
    """A restart is not a documented way to make App Service fetch a Key Vault reference again."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        assert "functionapp restart" not in text, f"{path.name} restarts the app"
        if "keyvault secret set" in text:
            assert "configreferences/appsettings/refresh" in text, path.name


# --- secrets and parameters ---------------------------------------------------------------------

def test_no_secret_resource_can_be_written_with_an_empty_value():
    """ARM rejects a secret without a value: each one is guarded by @minLength on its value or
    deployed only when its value is not empty."""
    secrets = [(bicep, d) for bicep in all_bicep_files()
               for d in bicep.resources_of_type("Microsoft.KeyVault/vaults/secrets")]
    assert secrets
    for bicep, secret in secrets:
        value = prop(prop(secret.body, "properties"), "value")
        param = bicep.params().get(value)
        guarded = param is not None and param.min_length() >= 1
        skipped = re.search(rf"!empty\({re.escape(value)}\)", secret.condition) is not None
        assert guarded or skipped, f"{bicep.path.name} {secret.name}: value {value} may be empty"
        if param is not None:
            assert "@secure()" in param.decorators, f"{bicep.path.name} {value} is not @secure()"


def test_each_secret_is_written_only_in_the_mode_that_uses_it():
    modules = secret_modules()
    assert set(modules) == {"etl-api-token", "blob-sas-url"}
    assert modules["etl-api-token"].condition == ""
    assert modules["blob-sas-url"].condition == "!useManagedIdentityDestination"
    settings = app_settings()
    assert re.fullmatch(r"useManagedIdentityDestination \? '' : '@Microsoft\.KeyVault\(.*SecretName=blob-sas-url\)'",
                        settings["BLOB_SAS_URL"])
    main = BicepFile.load("main.bicep").params()
    # required in every mode: azd passes an unset variable as an empty string
    assert main["etlApiToken"].min_length() >= 1 and main["etlApiEndpoint"].min_length() >= 1
    assert _module_params(modules["etl-api-token"])["value"] == "etlApiToken"
    assert _module_params(modules["blob-sas-url"])["value"] == "blobSasUrl"


def test_the_app_is_configured_only_after_its_secrets_and_destination_are_checked():
    main = BicepFile.load("main.bicep")
    app = main.declaration("exporterApp")
    depends = prop(app.body, "dependsOn")
    for module in secret_modules().values():
        assert re.search(rf"^\s*{module.name}\s*$", depends, re.M), f"exporterApp does not wait for {module.name}"
    params = _module_params(app)
    assert params["destinationBlobEndpoint"] == (
        "useManagedIdentityDestination ? destinationAccount.outputs.blobEndpoint : ''")
    assert "destinationAccount.outputs." in params["destinationContainer"]


def test_a_managed_identity_destination_is_checked_before_anything_uses_its_names():
    main = BicepFile.load("main.bicep")
    check = main.declaration("destinationAccount")
    assert check.target == "app/destination-account.bicep"
    assert check.condition == "useManagedIdentityDestination"
    assert prop(check.body, "scope") == "resourceGroup(destinationResourceGroupName)"
    for path in ("app/destination-account.bicep", "app/destination.bicep"):
        params = BicepFile.load(path).params()
        # storage account names are 3-24 characters, container names 3-63
        assert params["storageAccountName"].min_length() == 3, path
        assert params["containerName"].min_length() == 3, path
    looked_up = BicepFile.load("app/destination-account.bicep")
    assert looked_up.outputs()["blobEndpoint"] == "account.properties.primaryEndpoints.blob"
    assert not [d for d in looked_up.declarations() if not d.existing], "the check must create nothing"


AZD_SAS_ENV = {
    "ETL_API_ENDPOINT": "https://etl.example.com",
    "ETL_API_TOKEN": "token-0123456789",
    "EXPORT_FORMAT": "parquet",
    "BLOB_SAS_URL": "https://acct.blob.core.windows.net/exports?sp=rcwl&sig=SECRETSIG",
}


def test_preprovision_accepts_a_complete_environment(tmp_path):
    result = run_hook("preprovision", AZD_SAS_ENV, tmp_path)
    assert result.returncode == 0, result.stderr
    mi = {**AZD_SAS_ENV, "BLOB_SAS_URL": "", "USE_MANAGED_IDENTITY_DESTINATION": "true",
          "DESTINATION_STORAGE_ACCOUNT_NAME": "destacct", "DESTINATION_CONTAINER": "exports",
          "EXPIRE_AFTER_DAYS": "90"}
    result = run_hook("preprovision", mi, tmp_path)
    assert result.returncode == 0, result.stderr


def test_preprovision_names_each_missing_setting_on_its_own_line_and_never_a_value(tmp_path):
    cases = [
        ({"ETL_API_TOKEN": ""}, ["ETL_API_TOKEN is not set: azd env set ETL_API_TOKEN"]),
        ({"BLOB_SAS_URL": ""}, ["BLOB_SAS_URL is not set: azd env set BLOB_SAS_URL"]),
        ({"EXPORT_FORMAT": "xml"}, ["EXPORT_FORMAT must be csv, json or parquet"]),
        ({"USE_MANAGED_IDENTITY_DESTINATION": "true"},
         ["DESTINATION_STORAGE_ACCOUNT_NAME is not set", "DESTINATION_CONTAINER is not set"]),
        ({"USE_MANAGED_IDENTITY_DESTINATION": "yes"}, ["USE_MANAGED_IDENTITY_DESTINATION must be true or false"]),
        ({"EXPIRE_AFTER_DAYS": "-1"}, ["EXPIRE_AFTER_DAYS must be a whole number"]),
        ({"KEY_VAULT_PURGE_PROTECTION": "on"}, ["KEY_VAULT_PURGE_PROTECTION must be true or false"]),
        ({"ETL_API_ENDPOINT": "", "EXPORT_FORMAT": ""},
         ["ETL_API_ENDPOINT is not set", "EXPORT_FORMAT is not set"]),
    ]
    for change, expected in cases:
        result = run_hook("preprovision", {**AZD_SAS_ENV, **change}, tmp_path)
        assert result.returncode == 1, change
        lines = result.stderr.splitlines()
        assert len(lines) == len(expected) + 1, result.stderr  # + the summary line
        for line, text in zip(lines, expected, strict=False):
            assert text in line, (change, result.stderr)
        assert "nothing was deployed" in lines[-1]
        assert "SECRETSIG" not in result.stderr + result.stdout
        assert "token-0123456789" not in result.stderr + result.stdout


#: What an environment variable can hold: any text without NUL.
ENV_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=ENV_TEXT, sas=ENV_TEXT, export_format=ENV_TEXT)
def test_preprovision_decides_on_emptiness_and_format_only_and_never_echoes_or_runs_a_value(
        tmp_path, token, sas, export_format):
    canary = tmp_path / "ran"
    marker = "VALUE-7f3a"
    env = {**AZD_SAS_ENV, "ETL_API_TOKEN": marker + token + f"$(touch {canary})",
           "BLOB_SAS_URL": (marker + sas + f"`touch {canary}`") if sas else "", "EXPORT_FORMAT": export_format}
    result = run_hook("preprovision", env, tmp_path)
    ok = bool(sas) and export_format in ("csv", "json", "parquet")
    assert result.returncode == (0 if ok else 1), result.stderr
    assert marker not in result.stdout + result.stderr
    assert not canary.exists(), "the hook ran a value as a command"


def test_the_preprovision_hook_checks_every_variable_the_parameter_file_needs():
    """Each azd variable main.parameters.json passes without a default is checked by the hook
    (those with a default, like ${EXPIRE_AFTER_DAYS=0}, are checked when they are set)."""
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    hook = (ROOT / azure_yaml_hooks()["preprovision"]["run"]).read_text(encoding="utf-8")
    provided_by_azd = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID"}
    optional = {"BLOB_PATH", "EXPORT_START", "ALERT_EMAIL", "LIFECYCLE_RULE_ACCOUNT_NAME"}
    for name in re.findall(r"\$\{(\w+)\}", parameters):
        if name in provided_by_azd | optional:
            continue
        assert name in hook, f"preprovision does not check {name}"


def test_key_vault_purge_protection_is_a_parameter_never_sent_as_false():
    vault_file = BicepFile.load("core/keyvault.bicep")
    (vault,) = vault_file.resources_of_type("Microsoft.KeyVault/vaults")
    properties = prop(vault.body, "properties")
    assert prop(properties, "enablePurgeProtection") == "enablePurgeProtection ? true : null"
    assert prop(properties, "enableSoftDelete") == "true"
    assert vault_file.params()["enablePurgeProtection"].type == "bool"
    main = BicepFile.load("main.bicep")
    assert main.params()["keyVaultPurgeProtection"].default == "false"
    assert _module_params(main.declaration("keyVault"))["enablePurgeProtection"] == "keyVaultPurgeProtection"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["keyVaultPurgeProtection"]["value"] == "${KEY_VAULT_PURGE_PROTECTION=false}"


# --- lifecycle rule ---------------------------------------------------------------------------

def test_the_lifecycle_rule_is_deployed_disabled_at_zero_days_not_skipped():
    lifecycle = BicepFile.load("core/lifecycle.bicep")
    (policy,) = lifecycle.resources_of_type("Microsoft.Storage/storageAccounts/managementPolicies")
    assert re.search(r"^\s*enabled: expireAfterDays > 0\s*$", policy.body, re.M)
    assert re.search(r"daysAfterCreationGreaterThan: max\(expireAfterDays, 1\)", policy.body)
    assert "@minValue(0)" in lifecycle.params()["expireAfterDays"].decorators

    # the module is not skipped at 0 days once the rule exists: destination.bicep deploys it on
    # manageLifecycleRule, which main.bicep keeps true for the account azd remembers
    destination = BicepFile.load("app/destination.bicep")
    assert destination.declaration("lifecycle").condition == "manageLifecycleRule"
    main = BicepFile.load("main.bicep")
    rule = main.var("manageLifecycleRule")
    assert "expireAfterDays > 0" in rule
    assert "lifecycleRuleAccountName == destinationStorageAccountName" in rule
    assert rule.startswith("useManagedIdentityDestination && ")
    assert _module_params(main.declaration("destination"))["manageLifecycleRule"] == "manageLifecycleRule"
    assert main.outputs()["LIFECYCLE_RULE_ACCOUNT_NAME"] == (
        "manageLifecycleRule ? destinationStorageAccountName : lifecycleRuleAccountName")
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["lifecycleRuleAccountName"]["value"] == "${LIFECYCLE_RULE_ACCOUNT_NAME}"


# --- alerts -----------------------------------------------------------------------------------

#: Tables of a workspace-based Application Insights resource, as log alerts on it query them.
APP_INSIGHTS_TABLES = {"requests", "dependencies", "traces", "exceptions", "customMetrics", "customEvents",
                       "availabilityResults", "pageViews", "performanceCounters"}
ISO_WINDOWS = {"PT5M", "PT10M", "PT15M", "PT30M", "PT45M", "PT1H", "PT2H", "PT3H", "PT6H", "PT12H", "PT24H"}


def log_alerts() -> list[tuple[BicepFile, Declaration]]:
    found = [(bicep, d) for bicep in all_bicep_files()
             for d in bicep.resources_of_type("Microsoft.Insights/scheduledQueryRules")]
    assert found
    return found


def alert_criterion(rule: Declaration) -> str:
    """The one condition object in a log alert's ``criteria.allOf``."""
    all_of = prop(prop(prop(rule.body, "properties"), "criteria"), "allOf")
    start = all_of.index("{")
    end = _matching(all_of, start)
    assert all_of[end:].strip() == "]", f"{rule.name}: more than one condition"
    return all_of[start:end]


def _window(bicep: BicepFile, expression: str) -> str:
    if expression.startswith("'"):
        return bicep_string(expression)
    param = bicep.params()[expression]
    assert set(param.allowed()) <= ISO_WINDOWS, param.allowed()
    return bicep_string(param.default)


def test_every_log_alert_query_starts_from_a_table_and_is_aggregated_per_window():
    for bicep, rule in log_alerts():
        properties = prop(rule.body, "properties")
        assert bicep_string(prop(rule.body, "kind")) == "LogAlert"
        assert _window(bicep, prop(properties, "windowSize")) in ISO_WINDOWS, rule.name
        assert _window(bicep, prop(properties, "evaluationFrequency")) in ISO_WINDOWS, rule.name
        criterion = alert_criterion(rule)
        query = bicep_string(prop(criterion, "query"))
        statements = [line.strip() for line in query.strip().splitlines()]
        first = statements[0]
        assert first in APP_INSIGHTS_TABLES, f"{rule.name}: the query starts with {first!r}, not a table"
        for forbidden in ("let ", "print ", "toscalar(", "range ", "datatable("):
            assert forbidden not in query, f"{rule.name}: {forbidden.strip()} in the query"
        # the rule bins on the time column: the query must keep it ...
        projects = [s for s in statements if s.startswith("| project")]
        for project in projects:
            assert re.search(r"\btimestamp\b", project), f"{rule.name}: {project} drops timestamp"
        # ... and not aggregate it away
        for summarize in (s for s in statements if s.startswith("| summarize")):
            assert "bin(timestamp" in summarize, f"{rule.name}: {summarize} has no time bin"
        aggregation = bicep_string(prop(criterion, "timeAggregation"))
        assert aggregation in {"Count", "Average", "Minimum", "Maximum", "Total"}
        if aggregation != "Count":
            column = bicep_string(prop(criterion, "metricMeasureColumn"))
            assert any(re.search(rf"\b{column}\s*=", p) for p in projects), (
                f"{rule.name}: the measure column {column} is not in the query's output")


def test_the_alerts_cover_a_failed_run_and_a_missing_run():
    criteria = {rule.name: alert_criterion(rule) for _, rule in log_alerts()}
    queries = {name: bicep_string(prop(criterion, "query")) for name, criterion in criteria.items()}
    failed = [n for n, q in queries.items() if '"exporter.failed_runs"' in q]
    assert failed and "operator: 'GreaterThan'" in criteria[failed[0]]
    assert "threshold: 0" in criteria[failed[0]]
    missing = [n for n, q in queries.items() if '"exporter.run_duration_seconds"' in q]
    assert missing, "no rule fires when no run happens"
    assert '"outcome"' in queries[missing[0]] and '"ok"' in queries[missing[0]]
    assert "timeAggregation: 'Count'" in criteria[missing[0]]
    assert "operator: 'LessThan'" in criteria[missing[0]] and "threshold: 1" in criteria[missing[0]]
    # the metric names and the outcome dimension are the ones the code records
    telemetry = (ROOT / "shared" / "telemetry.py").read_text(encoding="utf-8")
    export = (ROOT / "shared" / "export.py").read_text(encoding="utf-8")
    assert '"exporter.failed_runs"' in telemetry and '"exporter.run_duration_seconds"' in telemetry
    assert '{"outcome": "ok" if' in export


# --- location, workbook -----------------------------------------------------------------------

def test_location_is_restricted_to_flex_consumption_regions_through_azd_metadata():
    location = BicepFile.load("main.bicep").params()["location"]
    regions = location.allowed()
    assert len(regions) >= 10 and len(set(regions)) == len(regions)
    assert all(re.fullmatch(r"[a-z]+[0-9]?", r) for r in regions), regions
    assert re.search(r"@metadata\(\{\s*azd: \{\s*type: 'location'\s*\}\s*\}\)", location.decorators)
    # the regions the documentation deploys to are among them
    for doc in (ROOT / "docs" / "deploy.md", ROOT / "README.md"):
        for region in re.findall(r"\baz group create -n \S+ -l (\w+)", doc.read_text(encoding="utf-8")):
            assert region in regions, f"{doc.name} deploys to {region}, which the template refuses"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"


def test_the_workbook_falls_back_to_the_application_insights_resource():
    dashboard = BicepFile.load("app/dashboard.bicep")
    (workbook,) = dashboard.resources_of_type("Microsoft.Insights/workbooks")
    properties = prop(workbook.body, "properties")
    data = prop(properties, "serializedData")
    assert re.fullmatch(r"string\(union\(loadJsonContent\('\.\./workbook\.json'\), \{\s*fallbackResourceIds: "
                        r"\[\s*applicationInsights\.id\s*\]\s*\}\)\)", data), data
    assert prop(properties, "sourceId") == "applicationInsights.id"
    content = json.loads((INFRA / "workbook.json").read_text(encoding="utf-8"))
    assert "fallbackResourceIds" in content  # the key union() replaces
    queries = [i["content"] for i in content["items"] if i.get("type") in (3, 9)]
    assert queries
    for query in queries:
        # each query runs against the workbook's resource: the fallback when opened from Azure Monitor
        assert query.get("resourceType") == "microsoft.insights/components"
        assert not query.get("crossComponentResources")


# --- scale out: queues, tables, roles, instance limits (issue 13) -------------------------------

STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"


def _nested_resource(body: str, symbol: str, child_type: str) -> str:
    """The body of ``resource <symbol> '<child_type>' = { ... }`` nested inside ``body``."""
    match = re.search(rf"^\s*resource {symbol} '{re.escape(child_type)}' = ", body, re.M)
    assert match, f"no nested resource {symbol} ({child_type})"
    start = body.index("{", match.end() - 1)
    return body[start:_matching(body, start)]


def _storage_account() -> Declaration:
    (account,) = BicepFile.load("core/storage.bicep").resources_of_type("Microsoft.Storage/storageAccounts")
    return account


def test_the_work_queue_and_its_poison_queue_exist_in_the_host_storage_account():
    account = _storage_account()
    queues = _nested_resource(account.body, "queueService", "queueServices")
    assert bicep_string(prop(queues, "name")) == "default"
    assert prop(_nested_resource(queues, "exportQueue", "queues"), "name") == "exportQueueName"
    assert prop(_nested_resource(queues, "poisonQueue", "queues"), "name") == "poisonQueueName"

    main = BicepFile.load("main.bicep")
    assert bicep_string(main.var("exportQueueName")) == "export-units"
    # the Functions host's rule: a message that failed maxDequeueCount times goes to <queue>-poison
    assert main.var("poisonQueueName") == "'${exportQueueName}-poison'"
    storage_params = _module_params(main.declaration("storage"))
    assert storage_params["exportQueueName"] == "exportQueueName"
    assert storage_params["poisonQueueName"] == "poisonQueueName"
    # the app's EXPORT_QUEUE names that queue, and it is the one the host's connection reaches
    assert _module_params(main.declaration("exporterApp"))["exportQueueName"] == "exportQueueName"
    settings = app_settings()
    assert settings["EXPORT_QUEUE"] == "exportQueueName"
    assert settings["AzureWebJobsStorage__queueServiceUri"] == "storage.properties.primaryEndpoints.queue"
    assert settings["AzureWebJobsStorage__accountName"] == "storage.name"
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert _module_params(main.declaration("exporterApp"))["storageAccountName"] == "storage.outputs.name"
    assert main.outputs()["EXPORT_QUEUE"] == "exportQueueName"
    assert main.outputs()["EXPORT_POISON_QUEUE"] == "poisonQueueName"


def test_the_destinations_table_exists_and_is_the_apps_destinations_table():
    tables = _nested_resource(_storage_account().body, "tableService", "tableServices")
    assert prop(_nested_resource(tables, "destinationsTable", "tables"), "name") == "destinationsTableName"
    assert prop(_nested_resource(tables, "stateTable", "tables"), "name") == "stateTableName"
    main = BicepFile.load("main.bicep")
    assert bicep_string(main.var("destinationsTableName")) == "exporterdestinations"
    assert _module_params(main.declaration("storage"))["destinationsTableName"] == "destinationsTableName"
    assert _module_params(main.declaration("exporterApp"))["destinationsTableName"] == "destinationsTableName"
    assert app_settings()["DESTINATIONS_TABLE"] == "destinationsTableName"
    assert main.outputs()["DESTINATIONS_TABLE"] == "destinationsTableName"


def test_the_app_identity_can_run_the_queue_trigger_on_the_host_storage_account():
    rbac = BicepFile.load("app/rbac.bicep")
    assert STORAGE_QUEUE_DATA_CONTRIBUTOR in rbac.var("roles")
    assert "roles.storageQueueDataContributor" in rbac.var("appStorageRoles")
    (grant,) = [g for g in rbac.resources_of_type("Microsoft.Authorization/roleAssignments")
                if g.name == "appStorage"]
    assert prop(grant.body, "scope") == "storage"  # the account AzureWebJobsStorage__accountName names
    assert "principalId: appPrincipalId" in grant.body
    assert re.search(r"\[for roleId in appStorageRoles:", rbac.text)
    function = BicepFile.load(FUNCTION)
    assert _module_params(function.declaration("rbac"))["storageAccountName"] == "storage.name"
    # the settings are written only once the roles exist, so the trigger works from its first start
    (config,) = function.resources_of_type("Microsoft.Web/sites/config")
    assert re.search(r"^\s*rbac\s*$", prop(config.body, "dependsOn"), re.M)


def test_work_lease_and_verify_schedule_are_written_with_their_defaults():
    settings = app_settings()
    assert bicep_string(settings["WORK_LEASE_SECONDS"]) == "60"
    assert settings["VERIFY_SCHEDULE"] == "verifySchedule"
    function = BicepFile.load(FUNCTION).params()
    main = BicepFile.load("main.bicep").params()
    assert function["verifySchedule"].default == "''" and main["verifySchedule"].default == "''"  # off
    assert _module_params(BicepFile.load("main.bicep").declaration("exporterApp"))["verifySchedule"] == (
        "verifySchedule")
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["verifySchedule"]["value"] == "${VERIFY_SCHEDULE}"


def test_flex_scale_limits_are_parameters_passed_to_function_app_config():
    main = BicepFile.load("main.bicep")
    params = main.params()
    count = params["maximumInstanceCount"]
    assert count.type == "int" and count.default == "40"
    assert "@minValue(1)" in count.decorators and "@maxValue(1000)" in count.decorators
    assert params["instanceMemoryMB"].default == "2048"
    assert re.search(r"@allowed\(\[512, 2048, 4096\]\)", params["instanceMemoryMB"].decorators)
    batch = params["queueBatchSize"]
    assert batch.default == "0" and "@minValue(0)" in batch.decorators and "@maxValue(32)" in batch.decorators
    app_params = _module_params(main.declaration("exporterApp"))
    for name in ("maximumInstanceCount", "instanceMemoryMB", "queueBatchSize"):
        assert app_params[name] == name

    function = BicepFile.load(FUNCTION)
    (app,) = function.resources_of_type("Microsoft.Web/sites")
    scale = prop(prop(prop(app.body, "properties"), "functionAppConfig"), "scaleAndConcurrency")
    assert prop(scale, "maximumInstanceCount") == "maximumInstanceCount"
    assert prop(scale, "instanceMemoryMB") == "instanceMemoryMB"
    # Flex's scaleAndConcurrency.triggers only configures HTTP: nothing there for a queue trigger
    assert "triggers" not in re.sub(r"//.*", "", scale)

    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["maximumInstanceCount"]["value"] == "${MAXIMUM_INSTANCE_COUNT=40}"
    assert parameters["instanceMemoryMB"]["value"] == "${INSTANCE_MEMORY_MB=2048}"
    assert parameters["queueBatchSize"]["value"] == "${QUEUE_BATCH_SIZE=0}"


def test_per_instance_concurrency_overrides_host_json_only_when_set():
    """0 leaves host.json's extensions.queues.batchSize alone; n > 0 writes the documented
    app-setting override of that host.json path."""
    platform = BicepFile.load(FUNCTION).var("platformSettings")
    match = re.fullmatch(r"union\(\{.*\}, queueBatchSize > 0 \? \{(.*)\} : \{\}\)", platform, re.S)
    assert match, platform
    override = _object_entries("{" + match.group(1) + "}")
    assert override == {"AzureFunctionsJobHost__extensions__queues__batchSize": "string(queueBatchSize)"}
    # the path is the one host.json uses
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    queues = host.get("extensions", {}).get("queues")
    if queues is not None:  # host.json's queue settings land with the work queue
        assert "batchSize" in queues


# --- the alerts of the scale-out and of verify ------------------------------------------------------

#: Metric names fixed by issues 13 and 14 (shared/telemetry.py records them once those land).
SCALE_OUT_METRICS = {
    "exporter.queue.depth", "exporter.queue.oldest_age_seconds", "exporter.queue.poison",
    "exporter.units_in_flight", "exporter.unit_duration_seconds", "exporter.lag_seconds",
    "exporter.manifests", "exporter.verify.problems", "exporter.backfill.windows",
}


def _metric_names(query: str) -> set[str]:
    return set(re.findall(r'"(exporter\.[a-z_.]+)"', query))


def _alert(metric: str) -> tuple[Declaration, str]:
    found = [(rule, alert_criterion(rule)) for _, rule in log_alerts()
             if metric in _metric_names(bicep_string(prop(alert_criterion(rule), "query")))]
    assert len(found) == 1, f"{len(found)} alerts over {metric}"
    return found[0]


def _dimensions(criterion: str) -> list[str]:
    try:
        dims = prop(criterion, "dimensions")
    except AssertionError:
        return []
    return re.findall(r"name: '(\w+)'", dims)


def test_a_poison_message_fires_an_alert():
    rule, criterion = _alert("exporter.queue.poison")
    assert "operator: 'GreaterThan'" in criterion and re.search(r"threshold: 0\s*$", criterion, re.M)
    assert bicep_string(prop(criterion, "timeAggregation")) == "Maximum"
    # the planner records the gauge once per tick (10 minutes): the window must hold a tick
    assert bicep_string(prop(prop(rule.body, "properties"), "windowSize")) in ("PT15M", "PT30M", "PT1H")


def test_lag_above_two_windows_fires_for_any_destination():
    _, criterion = _alert("exporter.lag_seconds")
    query = bicep_string(prop(criterion, "query"))
    assert 'destination = tostring(customDimensions["destination"])' in query
    assert _dimensions(criterion) == ["destination"]
    dims = prop(criterion, "dimensions")
    assert "operator: 'Include'" in dims and "'*'" in dims  # every destination, its own series
    assert prop(criterion, "threshold") == "lagThresholdSeconds"
    dashboard = BicepFile.load("app/dashboard.bicep")
    assert dashboard.params()["lagThresholdSeconds"].default == "1200"  # two 10-minute windows
    assert bicep_string(prop(criterion, "timeAggregation")) == "Maximum"


def test_verify_problems_fire_an_alert_named_by_destination_and_kind_and_held_for_a_day():
    rule, criterion = _alert("exporter.verify.problems")
    query = bicep_string(prop(criterion, "query"))
    assert 'kind = tostring(customDimensions["kind"])' in query
    assert 'destination = tostring(customDimensions["destination"])' in query
    assert _dimensions(criterion) == ["destination", "kind"]  # which destination, what was found
    assert "operator: 'GreaterThan'" in criterion and re.search(r"threshold: 0\s*$", criterion, re.M)
    # a daily verify: the window spans a day so one run's result is seen
    assert bicep_string(prop(prop(rule.body, "properties"), "windowSize")) == "PT24H"


def test_the_oldest_queue_message_age_has_an_alert():
    _, criterion = _alert("exporter.queue.oldest_age_seconds")
    assert prop(criterion, "threshold") == "queueAgeThresholdSeconds"
    assert BicepFile.load("app/dashboard.bicep").params()["queueAgeThresholdSeconds"].default == "1200"


def test_every_alert_dimension_is_a_column_the_query_produces():
    for _, rule in log_alerts():
        criterion = alert_criterion(rule)
        query = bicep_string(prop(criterion, "query"))
        projects = [s for s in query.splitlines() if s.startswith("| project")]
        for dimension in _dimensions(criterion):
            assert any(re.search(rf"\b{dimension}\s*=", p) for p in projects), (rule.name, dimension)


def test_alerts_and_workbook_use_only_metric_names_the_code_records_or_the_issues_fix():
    recorded = set(re.findall(r'"(exporter\.[a-z_.]+)"', "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "shared").rglob("*.py"))))
    known = recorded | SCALE_OUT_METRICS
    used: set[str] = set()
    for _, rule in log_alerts():
        used |= _metric_names(bicep_string(prop(alert_criterion(rule), "query")))
    workbook = json.loads((INFRA / "workbook.json").read_text(encoding="utf-8"))
    for item in workbook["items"]:
        used |= _metric_names(item["content"].get("query", ""))
        for parameter in item["content"].get("parameters", []):
            used |= _metric_names(parameter.get("query", ""))
    assert used <= known, f"unknown metric names: {sorted(used - known)}"
    assert used >= SCALE_OUT_METRICS, f"not shown anywhere: {sorted(SCALE_OUT_METRICS - used)}"


# --- the workbook's per-destination view ---------------------------------------------------------

def _workbook() -> dict:
    return json.loads((INFRA / "workbook.json").read_text(encoding="utf-8"))


def _workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in _workbook()["items"] if item["type"] == 3}


def test_the_workbook_has_a_destination_parameter_filled_from_the_destination_dimension():
    (parameters,) = [i for i in _workbook()["items"] if i["type"] == 9]
    (destination,) = [p for p in parameters["content"]["parameters"] if p["name"] == "Destination"]
    assert destination["type"] == 2 and destination["multiSelect"] is True
    assert destination["quote"] == "'" and destination["defaultValue"] == "value::all"
    assert 'tostring(customDimensions["destination"])' in destination["query"]
    assert destination["resourceType"] == "microsoft.insights/components"
    ids = [p["id"] for p in parameters["content"]["parameters"]]
    assert len(set(ids)) == len(ids)


def test_the_per_destination_view_shows_lag_per_type_units_and_outcomes_filtered_by_destination():
    queries = _workbook_queries()
    by_metric: dict[str, list[str]] = {}
    for name, query in queries.items():
        for metric in _metric_names(query):
            by_metric.setdefault(metric, []).append(name)
    filtered = [n for n, q in queries.items() if "{Destination}" in q]
    assert len(filtered) >= 3
    for name in filtered:
        query = queries[name]
        assert "destination in ({Destination})" in query, name
        assert 'destination = tostring(customDimensions["destination"])' in query, name
    lag = [n for n in filtered if "exporter.lag_seconds" in queries[n]]
    assert any('customDimensions["type"]' in queries[n] for n in lag), "no lag per type"
    units = [n for n in filtered if "exporter.unit_duration_seconds" in queries[n]]
    assert any('customDimensions["outcome"]' in queries[n] for n in units), "no units by outcome"
    # the queue and manifest/verify tiles exist
    for metric in ("exporter.queue.depth", "exporter.queue.oldest_age_seconds", "exporter.queue.poison",
                   "exporter.units_in_flight", "exporter.manifests", "exporter.verify.problems"):
        assert by_metric.get(metric), f"no tile for {metric}"


def test_every_workbook_query_reads_dimensions_as_custom_dimensions_and_has_a_time_filter():
    for name, query in _workbook_queries().items():
        for dim in re.findall(r"customDimensions\.(\w+)", query):
            raise AssertionError(f"{name}: customDimensions.{dim}: use customDimensions[\"{dim}\"]")
        first = query.split("\n", 1)[0].strip()
        assert first in APP_INSIGHTS_TABLES or first.startswith("union "), name
        assert "timestamp {TimeRange}" in query, f"{name} ignores the time range"


# --- the preprovision hook's scale settings -------------------------------------------------------

def test_preprovision_names_bad_scale_settings(tmp_path):
    cases = [
        ({"MAXIMUM_INSTANCE_COUNT": "0"}, "MAXIMUM_INSTANCE_COUNT must be a whole number from 1 to 1000"),
        ({"MAXIMUM_INSTANCE_COUNT": "1001"}, "MAXIMUM_INSTANCE_COUNT must be a whole number from 1 to 1000"),
        ({"MAXIMUM_INSTANCE_COUNT": "ten"}, "MAXIMUM_INSTANCE_COUNT must be a whole number from 1 to 1000"),
        ({"QUEUE_BATCH_SIZE": "33"}, "QUEUE_BATCH_SIZE must be a whole number from 0 to 32"),
        ({"INSTANCE_MEMORY_MB": "1024"}, "INSTANCE_MEMORY_MB must be 512, 2048 or 4096"),
        ({"VERIFY_SCHEDULE": "0 3 * * *"}, "VERIFY_SCHEDULE must be six NCRONTAB fields"),
    ]
    for change, expected in cases:
        result = run_hook("preprovision", {**AZD_SAS_ENV, **change}, tmp_path)
        assert result.returncode == 1, change
        lines = result.stderr.splitlines()
        assert len(lines) == 2 and expected in lines[0], (change, result.stderr)
    good = {"MAXIMUM_INSTANCE_COUNT": "100", "QUEUE_BATCH_SIZE": "0", "INSTANCE_MEMORY_MB": "4096",
            "VERIFY_SCHEDULE": "0 30 3 * * *"}
    result = run_hook("preprovision", {**AZD_SAS_ENV, **good}, tmp_path)
    assert result.returncode == 0, result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.one_of(st.integers(min_value=-5, max_value=2000).map(str), ENV_TEXT),
       schedule=ENV_TEXT)
def test_preprovision_accepts_an_instance_count_iff_it_is_1_to_1000_and_a_schedule_iff_six_fields(
        tmp_path, count, schedule):
    canary = tmp_path / "ran"
    env = {**AZD_SAS_ENV, "MAXIMUM_INSTANCE_COUNT": count,
           "VERIFY_SCHEDULE": schedule + (f"$(touch {canary})" if schedule.strip() else "")}
    result = run_hook("preprovision", env, tmp_path)
    count_ok = count == "" or (count.isascii() and count.isdigit() and len(count) <= 4 and 1 <= int(count) <= 1000)
    fields = [f for f in re.split(r"[ \t\n]+", env["VERIFY_SCHEDULE"]) if f]  # sh splits on IFS only
    schedule_ok = env["VERIFY_SCHEDULE"] == "" or len(fields) == 6
    assert result.returncode == (0 if count_ok and schedule_ok else 1), (count, schedule, result.stderr)
    assert ("MAXIMUM_INSTANCE_COUNT" in result.stderr) == (not count_ok)
    assert not canary.exists(), "the hook ran a value as a command"
