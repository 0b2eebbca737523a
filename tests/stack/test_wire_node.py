"""The wire contracts of docs/wire-formats.md, implemented from the page in another language:
intents signed in Node.js, verified in Python.

Three Node.js scripts (tests/node/, Node's built-in modules only) were written from the page
alone: a producer that signs intents, a client that verifies outcomes, an auditor that checks
ledger inclusion proofs. Here the producer is run against the Python reference: what Node signs,
Python verifies (same bytes, same digest, same deterministic signature). Each rule of the page is
also broken on purpose (the script's ``break`` option) to show that the Python side then refuses:
the page's rules are the ones that matter. Outcomes and proofs are in test_wire_node_outcomes.py
and test_wire_node_proofs.py; the page's tables and example against the models in
tests/unit/test_wire_pages.py.

Node.js is required: without it these tests fail, with a message saying to install it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.auth import intent_signature_valid, public_key_hex, sign_intent
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from svm import messages
from tests import btc_support
from tests.wire_support import (
    CHECKSUMMED,
    EXAMPLE_SEED,
    SOLANA_INTENT,
    SOLANA_PAYER,
    T0,
    TOKEN,
    block_after,
    json_default,
    run_node,
)

OTHER_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"  # RFC 8032, test 2
# A PSBT paying another key from the agent's P2WPKH coin, written by embit.
BITCOIN_PSBT = base64.b64encode(
    btc_support.psbt(
        [btc_support.Spend(btc_support.funding((100_000, btc_support.OWN.p2wpkh)), 0)],
        [(90_000, btc_support.OTHER.p2wpkh)],
    )
).decode()
UPPERCASE = "0xD1220A0CF47C7B9BE7A2E6BA89F429762E7B9ADB"  # all uppercase: accepted, made EIP-55

TYPED_DATA = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        # U+FF57 sorts before U+1F600 by code point, after it by UTF-16 code unit.
        "Mail": [
            {"name": "contents", "type": "string"},
            {"name": "\uff57ide", "type": "string"},
            {"name": "\U0001f600", "type": "string"},
            {"name": "count", "type": "uint256"},
            {"name": "flag", "type": "bool"},
        ],
    },
    "primaryType": "Mail",
    # As sent: a lowercase verifyingContract stays lowercase, chainId stays a JSON integer.
    "domain": {
        "verifyingContract": "0xcccccccccccccccccccccccccccccccccccccccc",
        "name": "Ünïcode Mail ✉",
        "version": "1",
        "chainId": 1,
    },
    "message": {
        "contents": 'line1\nline2\t\x01\x1f\x7f\u2028 "quoted" \\ / é',
        "\uff57ide": "x",
        "\U0001f600": "y",
        "count": "123456789012345678901234567890",
        "flag": True,
        "nested": {"b": [3, {"z": None, "a": -5}], "a": 9007199254740991},
    },
}

BASE = {"agent_id": "agent-7", "chain": "base", "created_at": "2026-11-21T10:00:00Z"}
SOLANA_MESSAGE = base64.b64encode(
    messages.encode("signed in Node, read in Python: ünïcode", [str(SOLANA_PAYER)])
).decode()

INTENTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    # The page's example, as the producer means to send it.
    "example": (EXAMPLE_SEED, None),
    # Every "always" field set off its default, values that need normalizing, integers past 2**53.
    "transaction_full": (
        OTHER_SEED,
        {
            **BASE,
            "intent_id": "tx-full",
            "idempotency_key": "commande-é-42 ✓",
            "chain": "ethereum",
            "to": CHECKSUMMED,
            "value": "1.500000000000000000",
            "data": "0xA9059CBB" + "00" * 12 + "AB" * 20,
            "tx_type": 2,
            "gas_limit": 90000,
            "max_fee_per_gas": 30000000000,
            "max_priority_fee_per_gas": "0002000000000",
            "access_list": [{"address": TOKEN, "storage_keys": ["0x" + "AB" * 32]}],
            "nonce": 2**60 + 1,
            "declared_outflows": [{"token": UPPERCASE, "amount": "000123"}],
            "signing_key_path": "m/44'/60'/0'/0/0",
            "simulate_first": True,
            "broadcast": True,
            "sealed_client_share": [{"key_id": "0123456789abcdef", "sealed": "AAEC/w=="}],
            "sealed_cmek": [{"key_id": "fedcba9876543210", "sealed": "c2VhbGVk"}],
            "unattested_signer_accepted": True,
            "created_at": "2026-11-21T23:59:59.9999999-05:30",
            "expires_at": "2026-11-22T05:35:00Z",
        },
    ),
    # Every field omitted at default written out at its default: the producer must leave them out.
    "transaction_explicit_defaults": (
        EXAMPLE_SEED,
        {
            **BASE,
            "intent_id": "tx-defaults",
            "to": TOKEN,
            "value": "0.0",
            "tx_type": 0,
            "gas_price": "1000000000",
            "intent_type": "transaction",
            "declared_outflows": [],
            "blobs": [],
            "blob_versioned_hashes": [],
            "authorization_list": [],
            "message": None,
            "typed_data": None,
            "max_fee_per_blob_gas": None,
            "unattested_signer_accepted": False,
            "idempotency_key": None,
            "simulate_first": False,
            "broadcast": False,
            "created_at": "2026-11-21T10:00:00.000000Z",
        },
    ),
    "transaction_type_1": (
        OTHER_SEED,
        {
            **BASE,
            "intent_id": "tx-type-1",
            "to": UPPERCASE,
            "value": "2",
            "tx_type": 1,
            "gas_price": 7,
            "access_list": [{"address": CHECKSUMMED}],
            "created_at": "2026-11-21T12:30:00.5+02:30",
        },
    ),
    "personal_sign": (
        EXAMPLE_SEED,
        {
            **BASE,
            "intent_id": "msg-1",
            "intent_type": "personal_sign",
            "message": "0x48656C6C6F2C20E4B896E7958C",
            "created_at": "2026-11-21t10:00:00z",
        },
    ),
    "typed_data": (
        OTHER_SEED,
        {
            **BASE,
            "intent_id": "typed-1",
            "intent_type": "typed_data",
            "typed_data": TYPED_DATA,
            "idempotency_key": "permit-\U0001f600",
        },
    ),
    "solana": (OTHER_SEED, SOLANA_INTENT),
    "solana_message": (
        OTHER_SEED,
        {
            "agent_id": "agent-7",
            "intent_id": "solmsg-1",
            "chain": "solana-local",
            "intent_type": "solana_message",
            "solana_message": SOLANA_MESSAGE,
            "created_at": "2026-11-21T10:00:00Z",
        },
    ),
    "bitcoin_psbt": (
        OTHER_SEED,
        {
            "agent_id": "agent-7",
            "intent_id": "btc-1",
            "chain": "bitcoin-regtest",
            "intent_type": "bitcoin_psbt",
            "bitcoin_psbt": BITCOIN_PSBT,
            "broadcast": True,
            "created_at": "2026-11-21T10:00:00Z",
        },
    ),
    "blob_with_blobs": (
        EXAMPLE_SEED,
        {
            **BASE,
            "intent_id": "blob-1",
            "to": TOKEN,
            "value": "0",
            "tx_type": 3,
            "max_fee_per_gas": 10,
            "max_fee_per_blob_gas": 3,
            "blob_versioned_hashes": ["0x01" + "AA" * 31],
            "blobs": ["0x" + "00" * 131072],
            "broadcast": True,
        },
    ),
    "blob_hashes_only": (
        EXAMPLE_SEED,
        {
            **BASE,
            "intent_id": "blob-2",
            "to": TOKEN,
            "value": "0.000000000000000001",
            "tx_type": 3,
            "max_fee_per_blob_gas": "0",
            "blob_versioned_hashes": ["0x01" + "bb" * 31, "0x01" + "cc" * 31],
        },
    ),
    "set_code": (
        OTHER_SEED,
        {
            **BASE,
            "intent_id": "delegate-1",
            "to": TOKEN,
            "value": "0",
            "tx_type": 4,
            "authorization_list": [{"chain_id": 8453, "address": TOKEN}],
        },
    ),
    "set_code_any_chain_big_nonce": (
        OTHER_SEED,
        {
            **BASE,
            "intent_id": "delegate-2",
            "to": TOKEN,
            "value": "0",
            "tx_type": 4,
            "nonce": 2**63,
            "authorization_list": [{"chain_id": 2**64 - 1, "address": CHECKSUMMED, "nonce": 2**63 + 1}],
        },
    ),
}


def _sent(name: str) -> dict[str, Any]:
    seed, sent = INTENTS[name]
    return json.loads(block_after("example-sent")) if sent is None else sent


def _key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))


def _policy_for(key: Ed25519PrivateKey, agent_id: str) -> AgentPolicy:
    return AgentPolicy(agent_id=agent_id, version=1, agent_public_key=public_key_hex(key), issued_at=T0)


def _python_reads(answer: dict[str, Any]) -> TransactionIntent:
    """What the worker and the signer do with the record the producer sends."""
    return TransactionIntent.model_validate_json(json.dumps(answer["intent"]))


@pytest.fixture(scope="module")
def node_signed() -> dict[str, dict[str, Any]]:
    names = list(INTENTS)
    answers = run_node("sign_intent.mjs", [{"seed": INTENTS[n][0], "intent": _sent(n)} for n in names])
    return dict(zip(names, answers, strict=False))


@pytest.mark.parametrize("name", list(INTENTS))
def test_an_intent_signed_in_node_verifies_in_python(node_signed: dict[str, dict[str, Any]], name: str) -> None:
    answer = node_signed[name]
    assert "error" not in answer, answer
    key = _key(INTENTS[name][0])
    intent = _python_reads(answer)
    # The bytes Python rebuilds from the record, from what the producer meant to send, and Node's.
    assert intent.signing_bytes() == answer["signing_bytes"].encode()
    assert TransactionIntent.model_validate(_sent(name)).signing_bytes() == answer["signing_bytes"].encode()
    assert intent_signature_valid(intent, _policy_for(key, intent.agent_id))
    assert answer["digest"] == intent.digest()
    assert answer["public_key"] == public_key_hex(key)
    # Ed25519 is deterministic: Python signing the same intent gets Node's signature.
    assert sign_intent(intent.model_copy(update={"signature": ""}), key).signature == intent.signature


def test_every_field_omitted_at_default_is_exercised_at_and_off_its_default(
    node_signed: dict[str, dict[str, Any]],
) -> None:
    intents = [_python_reads(answer) for answer in node_signed.values()]
    for field, default in TransactionIntent._OMITTED_AT_DEFAULT.items():
        at = [i for i in intents if getattr(i, field) == default]
        off = [i for i in intents if getattr(i, field) != default]
        assert at and off, field
        assert all(field not in json.loads(i.signing_bytes()) for i in at), field
        assert all(field in json.loads(i.signing_bytes()) for i in off), field


def test_the_node_producer_knows_every_field_of_an_intent() -> None:
    (described,) = run_node("sign_intent.mjs", [{"describe": True}])
    fields = described["fields"]
    model = TransactionIntent.model_fields
    assert set(fields) == set(model) - {"signature"}
    for name, entry in fields.items():
        assert entry["omitted_at_default"] == (name in TransactionIntent._OMITTED_AT_DEFAULT), name
        if entry["default"] != "required":
            assert entry["default"] == json_default(model[name].default), name


# Each rule of the page broken once, on an intent where the rule changes the bytes.
BROKEN = {
    "keep_defaults": "transaction_explicit_defaults",  # "intent_type":"transaction", "blobs":[] ... signed
    "omit_all_defaults": "example",  # "idempotency_key":null, "simulate_first":false ... left out
    "no_schema_version": "example",
    "no_normalize": "example",  # "0.050", a lowercase address, "+02:00"
    "unsorted": "example",
    "utf16_sort": "typed_data",  # "\U0001F600" before "\uff57ide"
    "ascii_escape": "transaction_full",  # "commande-é-42 ✓" written with \u escapes
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_an_intent_signed_against_a_rule_of_the_page_is_refused(
    node_signed: dict[str, dict[str, Any]], rule: str
) -> None:
    name = BROKEN[rule]
    (answer,) = run_node("sign_intent.mjs", [{"seed": INTENTS[name][0], "intent": _sent(name), "break": rule}])
    assert "error" not in answer, answer
    key = _key(INTENTS[name][0])
    intent = _python_reads(answer)  # Warden reads the record all the same ...
    assert answer["signing_bytes"] != node_signed[name]["signing_bytes"]  # ... but Node signed other bytes
    assert intent.signing_bytes() == node_signed[name]["signing_bytes"].encode()
    assert not intent_signature_valid(intent, _policy_for(key, intent.agent_id))  # AGENT_SIGNATURE_INVALID
    assert answer["digest"] != intent.digest()
