"""Signed checkpoints: an Ed25519 signature over a chain's head and Merkle root.

A hash chain alone can be recomputed by whoever can write the table; a
checkpoint signed by the sink and kept by witnesses outside the database cannot.
The signed statement is one line of ASCII::

    warden.audit.checkpoint.v1|<chain>|<seq>|<head_hash>|<merkle_root>|<ts>

chain and seq in decimal; head_hash (the ``integrity_hash`` of row ``seq``) and
merkle_root (RFC 9162 tree hash of leaves ``0..seq``) in 64 lowercase hex
digits; ts as in the chain encoding (``YYYY-MM-DDTHH:MM:SS.ffffffZ``). The
signature is Ed25519 (RFC 8032) over those bytes, 128 hex digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.chain import format_ts

STATEMENT_PREFIX = "warden.audit.checkpoint.v1"


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass(frozen=True)
class Checkpoint:
    chain: int
    seq: int
    head_hash: str
    merkle_root: str
    ts: datetime
    signature: str = ""
    public_key: str = ""

    @property
    def tree_size(self) -> int:
        return self.seq + 1

    def statement(self) -> bytes:
        return (
            f"{STATEMENT_PREFIX}|{self.chain}|{self.seq}|{self.head_hash}|{self.merkle_root}|{format_ts(self.ts)}"
        ).encode()

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["ts"] = format_ts(self.ts)
        return body

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> "Checkpoint":
        try:
            return cls(
                chain=int(body["chain"]),
                seq=int(body["seq"]),
                head_hash=str(body["head_hash"]),
                merkle_root=str(body["merkle_root"]),
                ts=datetime.fromisoformat(str(body["ts"]).replace("Z", "+00:00")),
                signature=str(body.get("signature", "")),
                public_key=str(body.get("public_key", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not a ledger checkpoint ({exc}); expected chain, seq, head_hash, merkle_root, ts, signature"
            ) from None


def sign(key: Ed25519PrivateKey, chain: int, seq: int, head_hash: str, merkle_root: str, ts: datetime) -> Checkpoint:
    unsigned = Checkpoint(chain, seq, head_hash, merkle_root, ts)
    return Checkpoint(chain, seq, head_hash, merkle_root, ts, key.sign(unsigned.statement()).hex(), public_key_hex(key))


def signature_valid(checkpoint: Checkpoint, public_key: bytes) -> bool:
    """Checks against the key the verifier trusts, never the key the checkpoint names."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            bytes.fromhex(checkpoint.signature), checkpoint.statement()
        )
    except (InvalidSignature, ValueError):
        return False
    return True
