"""A Key Vault on loopback that speaks enough of the REST API for ``azure-keyvault-secrets``.

``GET /secrets/{name}?api-version=...``: without a bearer token it answers 401 with the Key Vault
challenge (``WWW-Authenticate: Bearer authorization=..., resource=...``), as the real vault does;
with the token the static credential hands out, the secret (200) or ``SecretNotFound`` (404).
The SDK refuses a bearer token over plain http, so it serves https with a self-signed
certificate made here for 127.0.0.1 (the client trusts it through ``connection_verify``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VAULT_TOKEN = "kv-test-access-token-0123456789"


class StaticToken:
    """A credential that always hands out :data:`VAULT_TOKEN` (the vault checks it)."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(VAULT_TOKEN, int(time.time()) + 3600)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "vault.crt", directory / "vault.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class KeyVaultServer:
    def __init__(self, secrets: dict[str, str], *, gather: int = 0, hang: frozenset[str] = frozenset(),
                 hang_seconds: float = 20.0) -> None:
        """``gather``: each authorized request waits (at most 2 s) until that many have been in
        flight at once, so a client that sends them one at a time shows in :attr:`most_at_once`.
        ``hang``: names whose reads are answered only after ``hang_seconds`` (or at shutdown)."""
        self.secrets = dict(secrets)
        self._hang, self._hang_seconds, self._closing = hang, hang_seconds, threading.Event()
        self.fetches: list[str] = []  # names answered 200 or 404 (authorized requests)
        self.most_at_once = 0
        self._in_flight = 0
        self._gather = gather
        self._flight = threading.Condition()
        self._dir = tempfile.TemporaryDirectory()
        self.ca_file, key_file = _self_signed(Path(self._dir.name))
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if self.headers.get("Authorization") != f"Bearer {VAULT_TOKEN}":
                    self._send(401, {"error": {"code": "Unauthorized", "message": "AKV10000"}}, {
                        "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/'
                                            '72f988bf-86f1-41af-91ab-2d7cd011db47", '
                                            'resource="https://vault.azure.net"'})
                    return
                parts = path.strip("/").split("/")
                if len(parts) < 2 or parts[0] != "secrets":
                    self._send(400, {"error": {"code": "BadParameter", "message": "not a secret path"}})
                    return
                name = parts[1]
                if name in vault._hang:
                    vault._closing.wait(vault._hang_seconds)
                vault.fetches.append(name)
                with vault._flight:
                    vault._in_flight += 1
                    vault.most_at_once = max(vault.most_at_once, vault._in_flight)
                    vault._flight.notify_all()
                    vault._flight.wait_for(lambda: vault.most_at_once >= vault._gather, timeout=2)
                try:
                    self._answer(name)
                finally:
                    with vault._flight:
                        vault._in_flight -= 1

            def _answer(self, name: str) -> None:
                if name not in vault.secrets:
                    self._send(404, {"error": {"code": "SecretNotFound",
                                               "message": f"A secret with (name/id) {name} was not found"}})
                    return
                self._send(200, {"value": vault.secrets[name], "id": f"{vault.url}secrets/{name}/0123abcd",
                                 "attributes": {"enabled": True, "created": 1764000000, "updated": 1764000000}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.ca_file), str(key_file))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def client_kwargs(self) -> dict[str, Any]:
        """What a SecretClient needs to talk to this vault: trust its certificate, accept its
        challenge's resource (the real one names vault.azure.net, which 127.0.0.1 is not)."""
        return {"connection_verify": str(self.ca_file), "verify_challenge_resource": False,
                "retry_total": 0}

    def __enter__(self) -> KeyVaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._dir.cleanup()
