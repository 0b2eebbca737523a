"""The Ethereum signing specification, laid out the way the EIPs are.

- ``transactions.py``: what a transaction is. One frozen dataclass per type, fields in
  wire order: legacy with EIP-155 replay protection (type 0), EIP-2930 access lists
  (type 1) and EIP-1559 fee markets (type 2), each behind the EIP-2718 envelope. One
  payload function per type (``payload_legacy``, ``payload_2930``, ``payload_1559``)
  feeds both its ``signing_hash_<eip>`` and the serialization; ``sign_transaction``
  signs the ``signing_hash_<eip>`` and ``recover_sender`` recovers from the same one.
  Named errors: ``InvalidTransaction`` (with the reason) and ``InvalidKey``.

- ``transactions.py`` also holds EIP-4844 blob transactions (type 3, ``BlobTransaction``)
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

The fast paths are private modules behind the same functions, each pinned by tests
against a public implementation (tests/unit/test_evm_fast_paths.py) and kept because
`warden bench sign` shows it pays: ``_keccak`` (pycryptodome's sponge, reused, against
eth-hash), ``_rlp`` (a fixed-shape encoder, against ``rlp.encode``), ``_secp256k1``
(libsecp256k1 through coincurve's bindings, against coincurve's public API and eth-account).
"""
