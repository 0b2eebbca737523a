"""The EVM's numbers, each defined once, by the EIP that sets it, for the records (`schemas`) and
the specification (the rest of `evm`) alike: an intent and the transaction made from it can then
never disagree about a bound."""

from __future__ import annotations

# secp256k1's group order; EIP-2 (Homestead) accepts only signatures with s <= N / 2.
SECP256K1N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1N_HALF = SECP256K1N // 2

# EIP-2681: a nonce is below 2**64 - 1 (the largest value is reserved, so nonce + 1 still fits).
NONCE_LIMIT = 2**64 - 1

# EIP-4844: each blob is 4096 field elements of 32 bytes and uses 2**17 blob gas. 6 blobs: EIP-7594
# (Osaka) caps a transaction at 6 whatever the block's blob limit (EIP-7892's blob-parameter-only
# forks raise only the per-block target and maximum); before Osaka the only cap was the block's (6
# in Cancun, 9 in Prague), so 6 is accepted by every fork that has blobs.
BYTES_PER_BLOB = 131_072
GAS_PER_BLOB = 131_072
MAX_BLOBS_PER_TX = 6

# EIP-7702: each authorization costs PER_EMPTY_ACCOUNT_COST intrinsic gas, which eth_estimateGas of
# a call without the list does not see.
PER_AUTHORIZATION_GAS = 25_000

# EIP-191 messages: Warden's hard bound (a message a person is asked to sign is short); a policy's
# message_max_bytes bounds each agent further.
MAX_MESSAGE_BYTES = 16_384

# EIP-712: the domain fields it defines, with the only type each may have.
EIP712_DOMAIN_FIELDS = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}
# Warden's bounds on a typed-data document: nesting depth and values encoded, so a request cannot
# make the signer recurse or hash without limit.
EIP712_MAX_DEPTH = 32
EIP712_MAX_VALUES = 10_000
