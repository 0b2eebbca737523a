"""The Ethereum signing specification, laid out the way the EIPs are.

- ``transactions/``: what a transaction is. One frozen dataclass per type, fields in
  wire order: legacy with EIP-155 replay protection (type 0), EIP-2930 access lists
  (type 1) and EIP-1559 fee markets (type 2), each behind the EIP-2718 envelope. One
  payload function per type (``payload_legacy``, ``payload_2930``, ``payload_1559``)
  feeds both its ``signing_hash_<eip>`` and the serialization; ``sign_transaction``
  signs the ``signing_hash_<eip>`` and ``recover_sender`` recovers from the same one.
  Named errors: ``InvalidTransaction`` (with the reason) and ``InvalidPrivateKey``.

- ``transactions/`` also holds EIP-4844 blob transactions (type 3, ``BlobTransaction``)
  and EIP-7702 set-code transactions (type 4, ``SetCodeTransaction``), with their payloads
  (``payload_4844``, ``payload_7702``) and signing hashes (``signing_hash_4844``,
  ``signing_hash_7702``) like the others; ``decode_signed`` takes a blob transaction in its
  canonical form (the one its hash covers), never with its blobs.
- ``blobs.py``: what a blob transaction carries beside it: KZG commitments, blob proofs and
  EIP-7594 cell proofs made with ckzg under the vendored, SHA-256-pinned mainnet trusted setup
  (``kzg_trusted_setup.txt``), versioned hashes, and the network form a node takes in
  ``eth_sendRawTransaction`` (``network_encoding``: Osaka's wrapper by default, EIP-4844's on
  request). Named error: ``InvalidBlob``.
- ``authorizations.py``: EIP-7702 authorization tuples: their hash
  (``keccak(0x05 || rlp([chain_id, address, nonce]))``), signing (low s) and recovering the
  authority. Named error: ``InvalidAuthorization``.
- ``messages.py``: EIP-191 ``personal_sign`` hashes, and signing / recovering a 32-byte digest.
- ``typed_data.py``: EIP-712 typed data, encoded in full.

- ``_crypto.py``: keccak-256, signing a 32-byte hash and the address of a key. The one module that
  reaches into library internals (pycryptodome's keccak sponge, libsecp256k1 through coincurve's
  bindings), only where `warden bench evm` shows it pays, with the public API as the fallback;
  tests/unit/test_evm_fast_paths.py pins both paths to identical results. ``_rlp.py`` is a fixed-shape
  RLP encoder pinned against ``rlp.encode``.
"""
