"""A PKCS#11 HSM as a root of trust (python-pkcs11).

The root is an AES-256 secret key inside the token, sensitive and not
extractable; ``wrap`` is CKM_AES_GCM with the caller's associated data as the
GCM AAD, done by the HSM, so the root key never enters this process. Tested
against SoftHSM2; the same calls work with any token that implements CKM_AES_GCM.

Envelope: version 0x01 ‖ 12-byte IV ‖ ciphertext ‖ tag. The IV is drawn here,
not by the token: PKCS#11 v2.40 tokens differ on whether they generate it.

PKCS#11 sessions are not safe to share across threads, so each call holds a lock.
"""

from __future__ import annotations

import os
import threading
from typing import Any, cast

from signer.custody.errors import InvalidKey, ProviderUnavailable

_VERSION = b"\x01"
_IV_BYTES = 12


class Pkcs11Root:
    development = False

    def __init__(
        self, module: str, token_label: str, pin: str, *, key_label: str = "warden-root", name: str = "pkcs11"
    ):
        import pkcs11

        self.name = name
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self._lock = threading.Lock()
        try:
            lib = pkcs11.lib(module)
            token = lib.get_token(token_label=token_label)
            try:
                self._session = token.open(user_pin=pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # PKCS#11 login is per application, not per session: another root
                # in this process already logged in to the same token.
                self._session = token.open()
            self._key = self._session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label=key_label)
        except Exception as exc:
            raise ProviderUnavailable(
                f"PKCS#11 token {token_label!r} via {module} is not usable ({type(exc).__name__}); "
                f"check WARDEN_PKCS11_* and that the key {key_label!r} exists (Pkcs11Root.create_key)"
            ) from None

    @staticmethod
    def create_key(module: str, token_label: str, pin: str, key_label: str = "warden-root") -> None:
        """Generate the root key inside the token: AES-256, sensitive, never extractable. Run once at set-up."""
        import pkcs11
        from pkcs11 import Attribute, KeyType

        token = pkcs11.lib(module).get_token(token_label=token_label)
        with token.open(user_pin=pin, rw=True) as session:
            session.generate_key(
                KeyType.AES,
                256,
                label=key_label,
                store=True,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                },
            )

    def __repr__(self) -> str:
        return f"Pkcs11Root(name={self.name!r}, token={self.token_label!r}, key={self.key_label!r})"

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.mechanisms import GCMParams
        from pkcs11.types import EncryptMixin

        # python-pkcs11 gives a key its encrypt method only when the token says it may (CKA_ENCRYPT).
        if not isinstance(self._key, EncryptMixin):
            raise ProviderUnavailable(f"PKCS#11 ({self.name}) wrap failed: the key {self.key_label!r} may not encrypt")
        iv = os.urandom(_IV_BYTES)
        try:
            with self._lock:
                # Bytes in, bytes out (an iterator only for an iterator): python-pkcs11 types no overloads.
                sealed = cast(
                    bytes,
                    self._key.encrypt(
                        bytes(plaintext), mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)
                    ),
                )
        except Exception as exc:
            raise ProviderUnavailable(f"PKCS#11 ({self.name}) wrap failed: {type(exc).__name__}") from None
        return _VERSION + iv + sealed

    def unwrap(self, ciphertext: bytes, aad: bytes) -> bytearray:
        from pkcs11 import Mechanism, exceptions
        from pkcs11.mechanisms import GCMParams
        from pkcs11.types import DecryptMixin

        if len(ciphertext) < 1 + _IV_BYTES + 16 or ciphertext[:1] != _VERSION:
            raise InvalidKey()
        # python-pkcs11 gives a key its decrypt method only when the token says it may (CKA_DECRYPT).
        if not isinstance(self._key, DecryptMixin):
            raise ProviderUnavailable(
                f"PKCS#11 ({self.name}) unwrap failed: the key {self.key_label!r} may not decrypt"
            )
        iv, sealed = ciphertext[1 : 1 + _IV_BYTES], ciphertext[1 + _IV_BYTES :]
        try:
            with self._lock:
                # Bytes in, bytes out (an iterator only for an iterator): python-pkcs11 types no overloads.
                plaintext = cast(
                    bytes,
                    self._key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, aad, 128)),
                )
        except _unavailable_errors(exceptions) as exc:
            raise ProviderUnavailable(f"PKCS#11 ({self.name}) unwrap failed: {type(exc).__name__}") from None
        except exceptions.PKCS11Error:
            # The token's verdict on a tag mismatch varies (SoftHSM2 says
            # GENERAL_ERROR, others ENCRYPTED_DATA_INVALID or FUNCTION_FAILED):
            # every error that is not about the token's availability is "not yours".
            raise InvalidKey() from None
        out = bytearray(plaintext)
        del plaintext
        return out


def _unavailable_errors(exceptions: Any) -> tuple[type[Exception], ...]:
    names = (
        "DeviceError",
        "DeviceMemory",
        "DeviceRemoved",
        "SessionClosed",
        "SessionHandleInvalid",
        "TokenNotPresent",
        "TokenNotRecognised",
        "UserNotLoggedIn",
        "PinExpired",
        "HostMemory",
        "CryptokiNotInitialized",
    )
    return tuple(getattr(exceptions, n) for n in names if hasattr(exceptions, n))
