"""EIP-7702 authorizations: an account's signature that sets its code to a delegation.

An authorization ``[chain_id, address, nonce]`` signed by an account's key makes
that account, when a set-code transaction (type 4) carrying it is executed, run
the code at ``address``: its code becomes ``0xef0100 || address``. It is as
powerful as the key itself, so the signer signs one only under the policy's
delegation rules (``rules.guardrails.check_delegation``).

The signed message is ``keccak256(0x05 || rlp([chain_id, address, nonce]))``;
chain id 0 means every chain. The tuple travels as ``[chain_id, address, nonce,
y_parity, r, s]`` in the transaction's authorization list.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PublicKey

from evm._checks import check_uint
from evm._crypto import keccak, sign_hash
from evm._rlp import encode_bytes, encode_list, encode_uint
from evm.constants import NONCE_LIMIT, SECP256K1N, SECP256K1N_HALF

__all__ = [
    "Authorization",
    "InvalidAuthorization",
    "SignedAuthorization",
    "authorization_hash",
    "encode_authorization_list",
    "recover_authority",
    "sign_authorization",
]

MAGIC = b"\x05"
# EIP-7702 lets a tuple's nonce be up to 2**64 - 1 on the wire but skips any tuple whose nonce is
# not below NONCE_LIMIT (applying it raises the authority's nonce, which EIP-2681 caps). Such a
# tuple could never take effect, so it is refused here, when signing and when decoding alike.


class InvalidAuthorization(ValueError):
    """An authorization (or its signature) is not acceptable."""


def _check_uint(name: str, value: object, limit: int, limit_text: str) -> None:
    check_uint(name, value, limit, limit_text, InvalidAuthorization)


@dataclass(frozen=True, slots=True)
class Authorization:
    chain_id: int  # 0: valid on every chain
    address: bytes  # the delegate: whose code the account runs
    nonce: int  # the authority's nonce when the authorization is applied

    def __post_init__(self) -> None:
        _check_uint("chain_id", self.chain_id, 2**256, "2**256")
        if type(self.address) is not bytes or len(self.address) != 20:
            raise InvalidAuthorization("address must be 20 bytes")
        _check_uint("nonce", self.nonce, NONCE_LIMIT, "2**64 - 1 (EIP-2681)")


@dataclass(frozen=True, slots=True)
class SignedAuthorization:
    chain_id: int
    address: bytes
    nonce: int
    y_parity: int
    r: int
    s: int

    def __post_init__(self) -> None:
        Authorization(self.chain_id, self.address, self.nonce)  # the same field rules
        # The wire allows any y_parity below 2**8, but only 0 and 1 recover a key: any other value
        # is a tuple the chain skips (while the sender still pays for it).
        if type(self.y_parity) is not int or self.y_parity not in (0, 1):
            raise InvalidAuthorization(f"y_parity must be 0 or 1, not {self.y_parity!r}")
        _check_uint("r", self.r, 2**256, "2**256")
        _check_uint("s", self.s, 2**256, "2**256")


def authorization_hash(auth: Authorization | SignedAuthorization) -> bytes:
    """``keccak256(0x05 || rlp([chain_id, address, nonce]))``: what the authority signs."""
    fields = encode_uint(auth.chain_id) + encode_bytes(auth.address) + encode_uint(auth.nonce)
    return keccak(MAGIC + encode_list(fields))


def sign_authorization(auth: Authorization, private_key: bytearray | bytes) -> SignedAuthorization:
    """The authorization signed with ``private_key`` (RFC 6979, low s). The caller wipes the key."""
    if type(auth) is not Authorization:
        raise InvalidAuthorization(f"expected an Authorization, not {type(auth).__name__}")
    y_parity, r, s = sign_hash(authorization_hash(auth), private_key)
    return SignedAuthorization(auth.chain_id, auth.address, auth.nonce, y_parity, r, s)


def recover_authority(signed: SignedAuthorization) -> bytes:
    """The 20-byte address that signed ``signed``. High s is refused (EIP-2, as EIP-7702 requires)."""
    if type(signed) is not SignedAuthorization:
        raise InvalidAuthorization(f"expected a SignedAuthorization, not {type(signed).__name__}")
    if not 0 < signed.r < SECP256K1N:
        raise InvalidAuthorization("signature r out of range (must be 1 to secp256k1n - 1)")
    # EIP-7702 checks s <= secp256k1n/2 (EIP-2): (r, n - s) signs the same hash, and the chain
    # skips the tuple that uses it.
    if not 0 < signed.s <= SECP256K1N_HALF:
        raise InvalidAuthorization("signature s out of range (must be 1 to secp256k1n/2: the lower half, EIP-2)")
    signature = signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes((signed.y_parity,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, authorization_hash(signed), hasher=None)
    except ValueError:
        raise InvalidAuthorization("signature does not recover to a public key") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]


def encode_authorization_list(authorizations: tuple[SignedAuthorization, ...]) -> bytes:
    """RLP of the list of ``[chain_id, address, nonce, y_parity, r, s]`` tuples."""
    return encode_list(
        b"".join(
            encode_list(
                encode_uint(a.chain_id)
                + encode_bytes(a.address)
                + encode_uint(a.nonce)
                + encode_uint(a.y_parity)
                + encode_uint(a.r)
                + encode_uint(a.s)
            )
            for a in authorizations
        )
    )
