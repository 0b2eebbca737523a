"""
Transactions are atomic units of work created externally to Ethereum and
submitted to be executed. If Ethereum is viewed as a state machine,
transactions are the events that move between states.

A transaction carries no ``from`` field: the sender is whoever produced the
secp256k1 signature over the transaction's *signing hash*, recovered from
``(v, r, s)``. Each transaction type below therefore has three
representations:

* the unsigned fields (the frozen dataclasses of ``types.py``, in wire order),
* the signing hash, whose preimage binds the chain id so a signature cannot
  be replayed on another chain (EIP-155 for legacy, in-payload for typed),
* the signed serialization broadcast to the network: ``RLP([...fields, v, r,
  s])`` for legacy transactions and ``type_byte || RLP([...fields, y_parity,
  r, s])`` for EIP-2718 typed transactions.

This package is the custody signer's core. Everything money-like is an exact
``int``; anything that is not exactly an ``int`` (including ``bool`` and
``float``) is rejected rather than coerced.

Its modules follow those representations, each in EIP order: ``types.py`` (the dataclasses and
their validation), ``signing.py`` (each type's payload, its ``signing_hash_<eip>`` and
``sign_transaction``), ``decoding.py`` (``decode_signed`` and ``recover_sender``, from the same
signing hashes). Import the names from here.
"""

from __future__ import annotations

from evm._crypto import InvalidPrivateKey, address_of
from evm.transactions.decoding import decode_signed, recover_sender
from evm.transactions.signing import (
    checksum,
    payload_1559,
    payload_2930,
    payload_4844,
    payload_7702,
    payload_legacy,
    sign_transaction,
    signing_hash_155,
    signing_hash_1559,
    signing_hash_2930,
    signing_hash_4844,
    signing_hash_7702,
    signing_hash_pre155,
)
from evm.transactions.types import (
    AccessList,
    AccessListTransaction,
    BlobTransaction,
    FeeMarketFields,
    FeeMarketTransaction,
    InvalidTransaction,
    LegacyTransaction,
    SetCodeTransaction,
    SignedTx,
    Transaction,
    check_nonce,
)

__all__ = [
    "AccessList",
    "AccessListTransaction",
    "BlobTransaction",
    "SetCodeTransaction",
    "FeeMarketFields",
    "FeeMarketTransaction",
    "InvalidPrivateKey",
    "InvalidTransaction",
    "LegacyTransaction",
    "SignedTx",
    "Transaction",
    "address_of",
    "checksum",
    "check_nonce",
    "decode_signed",
    "payload_1559",
    "payload_2930",
    "payload_4844",
    "payload_7702",
    "payload_legacy",
    "recover_sender",
    "sign_transaction",
    "signing_hash_155",
    "signing_hash_1559",
    "signing_hash_2930",
    "signing_hash_4844",
    "signing_hash_7702",
    "signing_hash_pre155",
]
