"""
EIP-191 ``personal_sign``: signing a message, not a transaction.

A wallet that signs arbitrary bytes could be tricked into signing a
transaction's signing hash. EIP-191 prevents that by prefixing what is signed
with ``0x19``, a byte no RLP-encoded transaction starts with, and version
``0x45`` (``E``) spells out the rest of the prefix::

    keccak256(b"\\x19Ethereum Signed Message:\\n" || decimal(len(message)) || message)

The decimal length carries no delimiter of its own; the preimage is
unambiguous only because the length is the real one, so this module always
computes it from the very bytes it hashes and never takes it from a caller.

Signatures are the 65 bytes ``r || s || v`` that ``eth_sign`` and
``personal_sign`` return, with ``v = 27 + recovery id``. Only low-s signatures
are produced or accepted (EIP-2).

The same ``sign_digest`` / ``recover_digest`` pair serves EIP-712 typed data
(``typed_data.py``), whose digest is another EIP-191 version (``0x01``).
"""

from __future__ import annotations

from coincurve import PublicKey

from evm._crypto import InvalidPrivateKey, keccak, sign_hash
from evm.constants import MAX_MESSAGE_BYTES, SECP256K1N, SECP256K1N_HALF

__all__ = [
    "MAX_MESSAGE_BYTES",
    "InvalidPrivateKey",
    "InvalidMessage",
    "InvalidSignature",
    "personal_sign_hash",
    "recover_digest",
    "sign_digest",
]

# MAX_MESSAGE_BYTES (evm.constants), a hard bound: messages a person is asked to
# approve are short, and a bound keeps one request from holding the signer on a
# multi-megabyte hash. Callers may enforce a smaller policy bound before getting here.

_PREFIX = b"\x19Ethereum Signed Message:\n"


class InvalidMessage(ValueError):
    """A message or digest cannot be hashed or signed as given."""


class InvalidSignature(ValueError):
    """A 65-byte ``r || s || v`` signature is malformed or not acceptable."""


def personal_sign_hash(message: bytes) -> bytes:
    """The EIP-191 version 0x45 hash of ``message``, what ``personal_sign`` signs."""
    # Exactly ``bytes``: a ``str`` would need an encoding chosen for it (and
    # hex strings are ambiguous: some wallets decode them, some do not), and
    # a ``bytearray`` could change between the length and the hash.
    if type(message) is not bytes:
        raise InvalidMessage(f"message must be bytes, not {type(message).__name__}")
    if len(message) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message must be at most {MAX_MESSAGE_BYTES} bytes, got {len(message)}")
    return keccak(_PREFIX + str(len(message)).encode("ascii") + message)


def _check_digest(digest: object) -> None:
    # libsecp256k1 reads exactly 32 bytes from the pointer it is given, so a
    # short digest would be an out-of-bounds read, not just a wrong hash.
    if type(digest) is not bytes:
        raise InvalidMessage(f"digest must be bytes, not {type(digest).__name__}")
    if len(digest) != 32:
        raise InvalidMessage(f"digest must be 32 bytes, got {len(digest)}")


def sign_digest(digest: bytes, private_key: bytearray | bytes) -> bytes:
    """
    Sign a 32-byte digest: 65 bytes ``r || s || v`` with ``v = 27 + recovery id``.

    As with ``sign_transaction``, the caller owns ``private_key`` and wipes
    it; an invalid key raises ``InvalidPrivateKey``, which never carries the key.
    """
    _check_digest(digest)
    recovery_id, r, s = sign_hash(digest, private_key)
    # libsecp256k1 only emits low-s signatures; checked anyway because a
    # high-s one would be refused by every EIP-2 verifier, ours included,
    # and that is better found here than after the signature has left.
    if not 0 < s <= SECP256K1N_HALF:
        raise RuntimeError("secp256k1 backend produced a high-s signature")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((27 + recovery_id,))


def recover_digest(digest: bytes, signature: bytes) -> bytes:
    """
    The 20-byte address whose key signed ``digest``.

    ``v`` may be 27/28 (``eth_sign`` form) or 0/1 (a bare recovery id, as some
    hardware wallets and libraries return it).
    """
    _check_digest(digest)
    if type(signature) is not bytes:
        raise InvalidSignature(f"signature must be bytes, not {type(signature).__name__}")
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes (r || s || v), got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v in (27, 28):
        recovery_id = v - 27
    elif v in (0, 1):
        recovery_id = v
    else:
        raise InvalidSignature(f"v must be 27 or 28 (or 0 or 1), got {v}")
    if not 0 < r < SECP256K1N:
        raise InvalidSignature("r must be in [1, n-1]")
    # EIP-2: (r, n - s) is an equally valid signature of the same digest, so
    # accepting high s would give one approval two signatures.
    if not 0 < s <= SECP256K1N_HALF:
        raise InvalidSignature("s must be in [1, n/2] (EIP-2 low s)")
    try:
        public_key = PublicKey.from_signature_and_message(signature[:64] + bytes((recovery_id,)), digest, hasher=None)
    except ValueError:
        raise InvalidSignature("signature does not recover to a public key") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]
