"""Local servers speaking the cloud roots' protocols, on loopback.

``MotoServer`` (AWS KMS, moto's emulator), ``LocalCloudKms`` (Cloud KMS's Encrypt and Decrypt
over gRPC) and ``LocalKeyVault`` (Key Vault's key wrapping over HTTPS). The roots under test
or benchmark are the real client libraries talking to them over sockets; nothing is faked on
the client side. Used by the custody tests and by ``warden bench custody``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from infra.stack.local import free_port
from signer.custody._crc32c import crc32c
from signer.custody.azure_kv import AzureKeyVaultRoot

VENV_BIN = Path(sys.executable).parent


class MotoServer:
    """``moto_server`` (moto's AWS emulator) in server mode on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def kms_client(self) -> Any:
        # The AWS SDK loads only when a caller talks to this server itself.
        import boto3  # type: ignore[import-untyped]  # boto3 ships no types (no py.typed; boto3-stubs not installed)

        return boto3.client(
            "kms",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_key(self) -> str:
        return str(self.kms_client().create_key(Description="warden root")["KeyMetadata"]["Arn"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class AwsCredentials(TypedDict):
    """boto3's credential keywords, typed so that ``**AWS_TEST_CREDENTIALS`` type-checks against
    AwsKmsRoot's other keywords."""

    aws_access_key_id: str
    aws_secret_access_key: str


AWS_TEST_CREDENTIALS = AwsCredentials(aws_access_key_id="testing", aws_secret_access_key="testing")


class LocalCloudKms:
    """A gRPC server implementing Cloud KMS's Encrypt and Decrypt RPCs for
    symmetric CryptoKeys, with the CRC32C integrity fields, on loopback."""

    def __init__(self, key_names: tuple[str, ...]) -> None:
        # gRPC and the Cloud KMS types load only for this server: the other two do without them.
        import grpc
        from google.cloud.kms_v1.types import service

        self._keys = {name: AESGCM(AESGCM.generate_key(256)) for name in key_names}
        self.calls = 0

        def key_for(name: str, context: Any) -> tuple[str, Any]:
            base = name.split("/cryptoKeyVersions/")[0]
            if base not in self._keys:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{name} not found")
            return base, self._keys[base]

        def encrypt(request: Any, context: Any) -> Any:
            self.calls += 1
            base, key = key_for(request.name, context)
            if request.plaintext_crc32c is not None and request.plaintext_crc32c != crc32c(request.plaintext):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "plaintext_crc32c mismatch")
            nonce = os.urandom(12)
            ciphertext = b"\x01" + nonce + key.encrypt(nonce, request.plaintext, request.additional_authenticated_data)
            return service.EncryptResponse(
                name=base + "/cryptoKeyVersions/1",
                ciphertext=ciphertext,
                ciphertext_crc32c=crc32c(ciphertext),
                verified_plaintext_crc32c=request.plaintext_crc32c is not None,
                verified_additional_authenticated_data_crc32c=request.additional_authenticated_data_crc32c is not None,
            )

        def decrypt(request: Any, context: Any) -> Any:
            self.calls += 1
            _, key = key_for(request.name, context)
            data = request.ciphertext
            try:
                if data[:1] != b"\x01":
                    raise ValueError
                plaintext = key.decrypt(data[1:13], data[13:], request.additional_authenticated_data)
            except Exception:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Decryption failed: the ciphertext is invalid.")
            return service.DecryptResponse(plaintext=plaintext, plaintext_crc32c=crc32c(plaintext))

        handler = grpc.method_handlers_generic_handler(
            "google.cloud.kms.v1.KeyManagementService",
            {
                "Encrypt": grpc.unary_unary_rpc_method_handler(
                    encrypt,
                    request_deserializer=service.EncryptRequest.deserialize,
                    response_serializer=service.EncryptResponse.serialize,
                ),
                "Decrypt": grpc.unary_unary_rpc_method_handler(
                    decrypt,
                    request_deserializer=service.DecryptRequest.deserialize,
                    response_serializer=service.DecryptResponse.serialize,
                ),
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


class StaticTokenCredential:
    """An azure-core TokenCredential with a fixed bearer token (no Azure AD here)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *_scopes: str, **_kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken  # the Azure SDK, only when a token is asked for

        return AccessToken(self.token, int(time.time()) + 3600)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "kv-cert.pem", tmp / "kv-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Key Vault's RSA-OAEP-256: OAEP with SHA-256 for both the hash and MGF1.
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class _KeyVaultHandler(BaseHTTPRequestHandler):
    """``LocalKeyVault``'s requests: the bearer challenge, GET key, POST wrapkey / unwrapkey. A
    vault's own subclass names it in ``vault``."""

    vault: LocalKeyVault
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the
    # client's delayed ACK adds 40 ms to every call.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, Any] | None = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorised(self) -> bool:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") == f"Bearer {self.vault.token}":
            return True
        self._reply(
            401,
            {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer"}},
            {
                "WWW-Authenticate": 'Bearer authorization="https://login.microsoftonline.com/'
                '00000000-0000-0000-0000-000000000000", resource="https://localhost"'
            },
        )
        return False

    def _kid(self, name: str, version: str) -> str:
        return f"https://localhost:{self.vault.port}/keys/{name}/{version or 'v1'}"

    def do_GET(self) -> None:
        if not self._authorised():
            return
        parts = self.path.split("?")[0].strip("/").split("/")
        self.vault.calls.append("get")
        if not self.vault.allow_get_key:
            self._reply(403, {"error": {"code": "Forbidden", "message": "no keys/get permission"}})
            return
        numbers = self.vault.rsa.public_key().public_numbers()
        self._reply(
            200,
            {
                "key": {
                    "kid": self._kid(parts[1], parts[2] if len(parts) > 2 else ""),
                    "kty": "RSA-HSM",
                    "key_ops": ["wrapKey", "unwrapKey"],
                    "n": _b64url(numbers.n.to_bytes(256, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                },
                "attributes": {"enabled": True},
            },
        )

    def do_POST(self) -> None:
        if not self._authorised():
            return
        parts = self.path.split("?")[0].strip("/").split("/")  # keys/{name}/{version}/{op}
        op = parts[-1]
        self.vault.calls.append(op)
        request = json.loads(self.body)
        if request.get("alg") != "RSA-OAEP-256":
            self._reply(400, {"error": {"code": "BadParameter", "message": "unsupported alg"}})
            return
        value = _b64url_decode(request["value"])
        kid = self._kid(parts[1], parts[2])
        if op == "wrapkey":
            result = self.vault.rsa.public_key().encrypt(value, _OAEP)
        elif op == "unwrapkey":
            try:
                result = self.vault.rsa.decrypt(value, _OAEP)
            except ValueError:
                self._reply(400, {"error": {"code": "BadParameter", "message": "The parameter is incorrect."}})
                return
        else:
            self._reply(404, {"error": {"code": "NotFound", "message": op}})
            return
        self._reply(200, {"kid": kid, "value": _b64url(result)})


class LocalKeyVault:
    """An HTTPS server implementing Key Vault's key REST surface used for
    wrapping: the bearer challenge, GET key, POST wrapkey / unwrapkey
    (RSA-OAEP-256), on loopback with a self-signed certificate."""

    token = "local-test-token"

    def __init__(self, tmp: Path, *, allow_get_key: bool = False) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.allow_get_key = allow_get_key
        self.calls: list[str] = []
        self.cert, key_path = _self_signed(tmp)

        class Handler(_KeyVaultHandler):
            vault = self  # this vault's requests come to it

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key_path)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.key_id = f"https://localhost:{self.port}/keys/warden-root/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def root(self, name: str = "azure-kv", **kwargs: Any) -> AzureKeyVaultRoot:
        return AzureKeyVaultRoot(
            self.key_id,
            StaticTokenCredential(self.token),
            name=name,
            connection_verify=str(self.cert),
            verify_challenge_resource=False,
            **kwargs,
        )

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
