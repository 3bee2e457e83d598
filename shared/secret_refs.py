"""Secret references in destination rows: ``@env:NAME`` and ``@kv:NAME``, never a secret itself.

A destination row (shared/destinations.py) holds the settings of one destination in a table that
anyone with the app's storage can read, so a secret setting (the ``secret`` flag in
shared/settings.py: ``ETL_API_TOKEN``, ``BLOB_SAS_URL``) holds a reference:

- ``@env:NAME``: the app setting ``NAME`` (in Azure it can itself be a Key Vault reference, which
  the platform resolves);
- ``@kv:NAME``: the secret ``NAME`` of the app's Key Vault (``KEY_VAULT_URL``), read with the
  app's managed identity (``DefaultAzureCredential``) through ``azure-keyvault-secrets`` and kept
  :data:`CACHE_SECONDS` so a tick does not read the vault once per destination and type.

A plain value where a reference belongs is refused with one line that never repeats the value; a
reference that does not resolve is an error naming the reference (never a value), which stops
that destination only. Every resolved value is registered with :mod:`shared.redact` before it is
returned, so nothing printed or logged afterwards can show it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from shared.azure_errors import vault_call
from shared.errors import SecretUnresolved, SettingsError
from shared.redact import register_secret, register_url
from shared.settings import SETTING

#: How long a secret read from Key Vault is used before it is read again (rotation shows up then).
CACHE_SECONDS = 300.0
#: Seconds a Key Vault read may take to connect, and to answer, before it fails (then retried
#: :data:`VAULT_RETRIES` times). azure-core's own read timeout is 300 s per try: a vault that
#: never answered held every destination of a tick past the function's timeout.
VAULT_CONNECT_TIMEOUT = 10.0
VAULT_READ_TIMEOUT = 15.0
VAULT_RETRIES = 2

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")
_KV_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")  # Key Vault's rule for secret names


@dataclass(frozen=True)
class SecretRef:
    kind: str  # "env" or "kv"
    name: str

    def __str__(self) -> str:
        return f"@{self.kind}:{self.name}"


def is_secret(setting: str) -> bool:
    spec = SETTING.get(setting)
    return bool(spec and spec.secret)


def parse_ref(setting: str, value: str) -> SecretRef:
    """The reference ``value`` holds for the secret setting ``setting``; SettingsError (one line,
    without the value) when it is not one."""
    kind, colon, name = value.strip().partition(":")
    if colon and kind in ("@env", "@kv"):
        pattern = _ENV_NAME if kind == "@env" else _KV_NAME
        if pattern.fullmatch(name):
            return SecretRef(kind[1:], name)
        what = ("an app setting name (letters, digits, '_' and '.')" if kind == "@env"
                else "a Key Vault secret name (1-127 letters, digits and '-')")
        raise SettingsError(f"{setting}: the reference {kind}:… does not name {what}")
    raise SettingsError(
        f"{setting} is a secret: a destination holds a reference to it, not its value; set "
        f"{setting}=@env:APP_SETTING (an app setting holding it) or {setting}=@kv:SECRET_NAME "
        "(a secret in the app's Key Vault, KEY_VAULT_URL)"
    )


def _is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class SecretReader(Protocol):
    def get(self, name: str) -> str: ...


class KeyVaultReader:
    """Secrets of one vault, read with ``azure-keyvault-secrets``, each kept :data:`CACHE_SECONDS`.

    ``credential`` defaults to ``DefaultAzureCredential`` (the managed identity in Azure);
    ``client_kwargs`` reach the SecretClient (tests pass a CA bundle and
    ``verify_challenge_resource=False`` for a vault on loopback)."""

    def __init__(self, vault_url: str, credential: Any = None, *, client_kwargs: dict[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, ttl: float = CACHE_SECONDS) -> None:
        self.vault_url = vault_url
        self._credential = credential
        self._client_kwargs = {"connection_timeout": VAULT_CONNECT_TIMEOUT, "read_timeout": VAULT_READ_TIMEOUT,
                               "retry_total": VAULT_RETRIES, **(client_kwargs or {})}
        self._client: Any = None
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _secret_client(self) -> Any:
        with self._lock:  # one client, however many threads resolve at once
            if self._client is None:
                from azure.keyvault.secrets import SecretClient

                credential = self._credential
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                self._client = SecretClient(self.vault_url, credential, **self._client_kwargs)
            return self._client

    def get(self, name: str) -> str:
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and self._clock() < hit[0]:
                return hit[1]
        value = vault_call(lambda: self._secret_client().get_secret(name).value, reference=f"@kv:{name}")
        value = value or ""
        if not value:
            raise SecretUnresolved(f"@kv:{name}: the secret is empty in the Key Vault: set its value")
        with self._lock:
            self._cache[name] = (self._clock() + self._ttl, value)
        return value

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


_VAULTS: dict[str, KeyVaultReader] = {}
_VAULTS_LOCK = threading.Lock()


def vault_reader(vault_url: str) -> KeyVaultReader:
    """The process's reader of ``vault_url`` (one per vault, so its cache lives across ticks)."""
    with _VAULTS_LOCK:
        reader = _VAULTS.get(vault_url)
        if reader is None:
            reader = _VAULTS[vault_url] = KeyVaultReader(vault_url)
        return reader


@dataclass
class SecretResolver:
    """Resolves references against the app settings ``env`` and the vault at ``vault_url``."""

    env: Mapping[str, str]
    vault_url: str = ""
    vault: SecretReader | None = None  # default: :func:`vault_reader` of ``vault_url``

    def resolve(self, setting: str, value: str) -> str:
        ref = parse_ref(setting, value)
        if ref.kind == "env":
            resolved = self.env.get(ref.name, "").strip()
            if not resolved:
                raise SecretUnresolved(f"{setting}={ref}: the app setting {ref.name} is not set: add it to the "
                                    "app settings (locally local.settings.json or the environment)")
            if resolved.startswith("@Microsoft.KeyVault("):
                raise SecretUnresolved(f"{setting}={ref}: the Key Vault reference of app setting {ref.name} did not "
                                    "resolve; check the identity's 'Key Vault Secrets User' role and the secret")
        else:
            vault = self.vault
            if vault is None:
                if not self.vault_url:
                    raise SecretUnresolved(f"{setting}={ref}: KEY_VAULT_URL is not set: set it to the app's Key Vault "
                                        "(https://<vault>.vault.azure.net/) or use @env:")
                vault = vault_reader(self.vault_url)
            try:
                resolved = vault.get(ref.name).strip()
            except SecretUnresolved as exc:
                raise SecretUnresolved(f"{setting}={exc}") from None
        if setting.endswith("_URL") and _is_url(resolved):
            register_url(resolved)  # its signature, not the host worth reading in a message
        else:
            register_secret(resolved)  # no URL (a token, a key, a bare SAS): all of it is secret
        return resolved
