"""Secret references of destination rows (shared/secret_refs.py): ``@env:NAME`` and ``@kv:NAME``
only, a plain value refused by a message that never depends on it, resolved values scrubbed.
(The Key Vault path against a vault on loopback https: tests/test_destinations.py.)"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import SettingsError
from shared.redact import redact_text
from shared.secret_refs import SecretRef, SecretResolver, parse_ref

SECRET_SETTINGS = ("ETL_API_TOKEN", "BLOB_SAS_URL")
#: Every message parse_ref may give, whatever the value: none can carry it.
MESSAGES = {
    "{s} is a secret: a destination holds a reference to it, not its value; set {s}=@env:APP_SETTING (an app "
    "setting holding it) or {s}=@kv:SECRET_NAME (a secret in the app's Key Vault, KEY_VAULT_URL)",
    "{s}: the reference @env:… does not name an app setting name (letters, digits, '_' and '.')",
    "{s}: the reference @kv:… does not name a Key Vault secret name (1-127 letters, digits and '-')",
}


@given(setting=st.sampled_from(SECRET_SETTINGS),
       value=st.one_of(st.text(max_size=80), st.from_regex(r"@(env|kv|vault|Env):[A-Za-z0-9_.\-]{0,130}",
                                                          fullmatch=True)))
def test_a_secret_setting_takes_a_reference_or_one_message_that_never_depends_on_the_value(setting, value):
    try:
        ref = parse_ref(setting, value)
    except SettingsError as exc:
        assert str(exc) in {m.format(s=setting) for m in MESSAGES}
        return
    assert str(ref) == value.strip()
    assert ref.kind in ("env", "kv")


def test_the_forms_that_resolve():
    assert parse_ref("ETL_API_TOKEN", " @env:EU_TOKEN ") == SecretRef("env", "EU_TOKEN")
    assert parse_ref("BLOB_SAS_URL", "@kv:eu-blob-sas-url") == SecretRef("kv", "eu-blob-sas-url")
    for bad in ("@kv:eu_token", "@env:", "@kv:", "@env:1ABC", "@vault:x", "tok-0123456789", "@Microsoft.KeyVault(x)"):
        with pytest.raises(SettingsError):
            parse_ref("ETL_API_TOKEN", bad)


def test_env_references_read_the_app_settings_and_name_what_is_missing():
    resolver = SecretResolver({"EU_TOKEN": "eu-token-4f9a8b7c6d5e", "KV_REF": "@Microsoft.KeyVault(SecretName=x)"})
    assert resolver.resolve("ETL_API_TOKEN", "@env:EU_TOKEN") == "eu-token-4f9a8b7c6d5e"
    # The resolved value is scrubbed from everything shown from now on.
    assert "eu-token-4f9a8b7c6d5e" not in redact_text("the token eu-token-4f9a8b7c6d5e was refused")
    with pytest.raises(SettingsError, match=r"^ETL_API_TOKEN=@env:NOPE: the app setting NOPE is not set"):
        resolver.resolve("ETL_API_TOKEN", "@env:NOPE")
    with pytest.raises(SettingsError, match=r"^ETL_API_TOKEN=@env:KV_REF: the Key Vault reference of app setting "):
        resolver.resolve("ETL_API_TOKEN", "@env:KV_REF")
    with pytest.raises(SettingsError, match=r"^BLOB_SAS_URL=@kv:x: KEY_VAULT_URL is not set"):
        resolver.resolve("BLOB_SAS_URL", "@kv:x")


def test_a_resolved_sas_url_has_its_signature_scrubbed_and_its_host_kept():
    sas = "https://acct.blob.core.windows.net/exports?sv=2026-10-06&sp=rcwl&sig=c2lnbmF0dXJlLTAxMjM0NTY3ODk%3D"
    resolver = SecretResolver({"EU_SAS": sas})
    assert resolver.resolve("BLOB_SAS_URL", "@env:EU_SAS") == sas
    shown = redact_text(f"could not reach {sas}")
    assert "c2lnbmF0dXJl" not in shown and "acct.blob.core.windows.net" in shown
