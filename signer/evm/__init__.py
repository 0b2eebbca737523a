"""The Ethereum signing specification, laid out the way the EIPs are.

- ``transactions.py``: what a transaction is. One frozen dataclass per type, fields in
  wire order: legacy with EIP-155 replay protection (type 0), EIP-2930 access lists
  (type 1) and EIP-1559 fee markets (type 2), each behind the EIP-2718 envelope. One
  payload function per type (``payload_legacy``, ``payload_2930``, ``payload_1559``)
  feeds both its ``signing_hash_<eip>`` and the serialization; ``sign_transaction``
  signs the ``signing_hash_<eip>`` and ``recover_sender`` recovers from the same one.
  Named errors: ``InvalidTransaction`` (with the reason) and ``InvalidKey``.

- ``transactions.py`` also holds EIP-4844 blob transactions (type 3, ``BlobTransaction``)
  and EIP-7702 set-code transactions (type 4, ``SetCodeTransaction``), with their blob and
  authorization rules in ``blobs.py`` (KZG commitments and proofs with ckzg, the network form)
  and ``authorizations.py`` (signing and recovering EIP-7702 tuples).
- ``messages.py``: EIP-191 ``personal_sign`` hashes, and signing / recovering a 32-byte digest.
- ``typed_data.py``: EIP-712 typed data, encoded in full.

The fast paths are private modules behind the same functions, each pinned by tests
against a public implementation (tests/test_evm_fast_paths.py) and kept because
`warden bench sign` shows it pays: ``_keccak`` (pycryptodome's sponge, reused, against
eth-hash), ``_rlp`` (a fixed-shape encoder, against ``rlp.encode``), ``_secp256k1``
(libsecp256k1 through coincurve's bindings, against coincurve's public API and eth-account).
"""
