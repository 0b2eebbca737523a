"""The wire contracts of docs/wire-formats.md, implemented from the page in another language.

Three Node.js scripts (tests/node/, Node's built-in modules only) were written from the page
alone: a producer that signs intents, a client that verifies outcomes, an auditor that checks
ledger inclusion proofs. Here each is run against the Python reference: what Node signs, Python
verifies (same bytes, same digest, same deterministic signature); what Python signs, Node verifies;
what either refuses, the other refuses. Each rule of the page is also broken on purpose (a script's
``break`` option) to show that the Python side then refuses: the page's rules are the ones that
matter. And the page's tables and example are checked against the models, so a record that gains
a field without a line on the page fails here.

Node.js is required: without it these tests fail, with a message saying to install it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import public_key_hex as ledger_key_hex
from schemas.auth import intent_signature_valid, outcome_forgery, public_key_hex, sign_intent, sign_outcome, sign_policy
from schemas.models import (
    AgentPolicy,
    ContractCallRule,
    DeadLetter,
    IntentApproved,
    IntentParked,
    IntentRejected,
    SignedMessage,
    SignedTransaction,
    StageVerdict,
    TransactionIntent,
)
from tests.wire_support import CHECKSUMMED, EXAMPLE_SEED, block_after, json_default

SCRIPTS = Path(__file__).resolve().parents[1] / "node"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)


# -- running the Node scripts ---------------------------------------------------------------------


def _node() -> str:
    usual = (p for p in ("/usr/bin/node", "/usr/local/bin/node") if os.access(p, os.X_OK))
    found = shutil.which("node") or next(usual, None)
    if found is None:
        pytest.fail(
            "Node.js is not installed: these tests check docs/wire-formats.md by running a producer, a client "
            "and an auditor written from it in Node.js (tests/node/). Install Node.js 18 or later (e.g. "
            "`apt-get install nodejs`) so that `node` is on PATH.",
            pytrace=False,
        )
    return found


def run_node(script: str, cases: list[dict]) -> list[dict]:
    """One process for a list of cases; one answer per case."""
    proc = subprocess.run(
        [_node(), str(SCRIPTS / script)], input=json.dumps(cases).encode(), capture_output=True, timeout=120
    )
    assert proc.returncode == 0, f"{script} failed: {proc.stderr.decode()[-2000:]}"
    # Split on "\n" only: str.splitlines also splits at U+2028, which canonical JSON writes as is.
    answers = [json.loads(line) for line in proc.stdout.decode().split("\n") if line]
    assert len(answers) == len(cases), proc.stdout.decode()[-2000:]
    return answers


OTHER_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"  # RFC 8032, test 2
TOKEN = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"  # lowercase: Node writes it EIP-55
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

INTENTS: dict[str, tuple[str, dict]] = {
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


def _sent(name: str) -> dict:
    seed, sent = INTENTS[name]
    return json.loads(block_after("example-sent")) if sent is None else sent


def _key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))


def _policy_for(key: Ed25519PrivateKey, agent_id: str) -> AgentPolicy:
    return AgentPolicy(agent_id=agent_id, version=1, agent_public_key=public_key_hex(key), issued_at=T0)


def _python_reads(answer: dict) -> TransactionIntent:
    """What the worker and the signer do with the record the producer sends."""
    return TransactionIntent.model_validate_json(json.dumps(answer["intent"]))


@pytest.fixture(scope="module")
def node_signed() -> dict[str, dict]:
    names = list(INTENTS)
    answers = run_node("sign_intent.mjs", [{"seed": INTENTS[n][0], "intent": _sent(n)} for n in names])
    return dict(zip(names, answers))


@pytest.mark.parametrize("name", list(INTENTS))
def test_an_intent_signed_in_node_verifies_in_python(node_signed, name):
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


def test_every_field_omitted_at_default_is_exercised_at_and_off_its_default(node_signed):
    intents = [_python_reads(answer) for answer in node_signed.values()]
    for field, default in TransactionIntent._OMITTED_AT_DEFAULT.items():
        at = [i for i in intents if getattr(i, field) == default]
        off = [i for i in intents if getattr(i, field) != default]
        assert at and off, field
        assert all(field not in json.loads(i.signing_bytes()) for i in at), field
        assert all(field in json.loads(i.signing_bytes()) for i in off), field


def test_the_node_producer_knows_every_field_of_an_intent():
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
def test_an_intent_signed_against_a_rule_of_the_page_is_refused(node_signed, rule):
    name = BROKEN[rule]
    (answer,) = run_node("sign_intent.mjs", [{"seed": INTENTS[name][0], "intent": _sent(name), "break": rule}])
    assert "error" not in answer, answer
    key = _key(INTENTS[name][0])
    intent = _python_reads(answer)  # Warden reads the record all the same ...
    assert answer["signing_bytes"] != node_signed[name]["signing_bytes"]  # ... but Node signed other bytes
    assert intent.signing_bytes() == node_signed[name]["signing_bytes"].encode()
    assert not intent_signature_valid(intent, _policy_for(key, intent.agent_id))  # AGENT_SIGNATURE_INVALID
    assert answer["digest"] != intent.digest()


# -- (b) outcomes signed in Python, verified in Node ------------------------------------------------

WORKER, SIGNER, STRANGER = (Ed25519PrivateKey.generate() for _ in range(3))
KEYS = {"worker": {"worker-1": public_key_hex(WORKER)}, "signer": {"signer-1": public_key_hex(SIGNER)}}
ADMIN = Ed25519PrivateKey.generate()


class Pinned:
    """The keys a client pins (schemas.auth.ServiceKeys)."""

    def key(self, role, key_id):
        return KEYS.get(role, {}).get(key_id)


def _outcome_world():
    agent = Ed25519PrivateKey.generate()
    intent = sign_intent(
        TransactionIntent(
            intent_id="pay-1",
            agent_id="agent-7",
            chain="base",
            to=CHECKSUMMED,
            value="1.5",
            idempotency_key="facture-ü",
            created_at=T0,
        ),
        agent,
    )
    policy = sign_policy(
        AgentPolicy(
            agent_id="agent-7",
            version=3,
            agent_public_key=public_key_hex(agent),
            tx_to_allowlist=(CHECKSUMMED,),
            tx_max_value_eth="2",
            issued_at=T0,
            contract_calls=(ContractCallRule(contract=TOKEN, selectors="any"),),
        ),
        ADMIN,
        "admin-1",
    )
    digest = intent.digest()
    raw = b'{"agent_id": "agent-7", "intent_id": "bad-1", "value": 0.05}'
    common = dict(intent_id=intent.intent_id, agent_id=intent.agent_id)
    records = {
        "rejected_by_a_worker": (
            "warden.intents.rejected",
            "worker",
            IntentRejected(
                **common,
                stage="value_cap",
                code="VALUE_CAP_EXCEEDED",
                reason="über dem Limit: 1.5 > 1 ✗",
                verdicts=(
                    StageVerdict(
                        intent_id=intent.intent_id,
                        stage="value_cap",
                        passed=False,
                        code="VALUE_CAP_EXCEEDED",
                        reason="über",
                        facts={"cap_wei": "1000", "nested": {"b": 1, "a": [2**60 + 3]}},
                    ),
                ),
                decided_at=T0,
                intent_digest=digest,
            ),
        ),
        "rejected_by_the_signer": (
            "warden.intents.rejected",
            "signer",
            IntentRejected(
                **common,
                stage="signing",
                code="SIGNER_ERROR",
                reason="node unreachable",
                decided_at=T0,
                intent_digest=digest,
                tee="none",
            ),
        ),
        "signed_transaction": (
            "warden.txs.signed",
            "signer",
            SignedTransaction(
                **common,
                chain="base",
                chain_id=8453,
                signed_tx="0x02f8" + "ab" * 40,
                tx_hash="0x" + "ab" * 32,
                from_=TOKEN,
                to=CHECKSUMMED,
                nonce=2**60 + 1,
                value_wei=10**30,
                tx_type=2,
                status="mined",
                tee="none",
                signed_at=T0,
                max_spend_wei=10**30 + 21000,
                block_number=123,
                gas_used=21000,
                fee_wei=21000,
                replaces=("0x" + "cd" * 32,),
                intent_digest=digest,
            ),
        ),
        "signed_message": (
            "warden.messages.signed",
            "signer",
            SignedMessage(
                **common,
                kind="typed_data",
                chain="base",
                chain_id=8453,
                from_=TOKEN,
                message_hash="0x" + "12" * 32,
                signature="0x" + "34" * 65,
                primary_type="Mail",
                verifying_contract=CHECKSUMMED,
                domain_separator="0x" + "56" * 32,
                tee="none",
                signed_at=T0,
                intent_digest=digest,
            ),
        ),
        "approved": (
            "warden.intents.approved",
            "worker",
            IntentApproved(intent=intent, policy=policy, approved_at=T0, intent_digest=digest),
        ),
        "parked": (
            "warden.intents.awaiting_approval",
            "worker",
            IntentParked(
                **common,
                reason="above the approval threshold",
                intent=intent,
                parked_at=T0,
                expires_at=T0 + timedelta(hours=1),
                intent_digest=digest,
            ),
        ),
        "dead_letter": (
            "warden.dlq",
            "signer",
            DeadLetter(
                source_topic="warden.intents.approved",
                partition=2,
                offset=41,
                key="agent-7",
                reason="unreadable",
                payload_b64=base64.b64encode(raw).decode(),
                payload_sha256=hashlib.sha256(raw).hexdigest(),
                payload_bytes=len(raw),
                received_at=T0,
            ),
        ),
        "invalid_intent": (
            "warden.intents.rejected",
            "worker",
            IntentRejected(
                intent_id="bad-1",
                agent_id="agent-7",
                stage="intake",
                code="INVALID_INTENT",
                reason="value: must be a decimal string",
                decided_at=T0,
                intent_digest=hashlib.sha256(raw).hexdigest(),
            ),
        ),
    }
    keys = {"worker": (WORKER, "worker-1"), "signer": (SIGNER, "signer-1")}
    signed = {name: (topic, sign_outcome(record, *keys[role])) for name, (topic, role, record) in records.items()}
    return intent, raw, signed


INTENT, RAW, OUTCOMES = _outcome_world()


def _case(name: str, record_bytes: bytes | None = None, **overrides) -> dict:
    topic, record = OUTCOMES[name]
    case = {"record": (record_bytes or record.to_bytes()).decode(), "topic": topic, "keys": KEYS}
    if name == "invalid_intent":
        case["sent_b64"] = base64.b64encode(RAW).decode()
    elif name != "dead_letter":
        case["intent_digest"] = INTENT.digest()
    case.update(overrides)
    return {k: v for k, v in case.items() if v is not None}


MODELS = {
    "warden.intents.rejected": IntentRejected,
    "warden.txs.signed": SignedTransaction,
    "warden.messages.signed": SignedMessage,
    "warden.intents.approved": IntentApproved,
    "warden.intents.awaiting_approval": IntentParked,
    "warden.dlq": DeadLetter,
}


def _python_verdict(case: dict) -> str | None:
    """What the Python reference says of the same case: `schemas.auth.outcome_forgery` with the
    digest the record must carry, as `sdk.client.outcome_problem` picks it."""
    from sdk.client import Awaited, outcome_problem

    try:
        record = MODELS[case["topic"]].model_validate_json(case["record"])
    except ValueError as exc:
        return f"unreadable: {exc}"
    if "sent_b64" in case:
        sent = base64.b64decode(case["sent_b64"])
        return outcome_problem(
            record, Awaited(record.intent_id, INTENT.agent_id, None, hashlib.sha256(sent).hexdigest()), Pinned()
        )
    if "intent_digest" in case:
        # A client that submitted INTENT with the SDK: its bytes were INTENT.to_bytes().
        awaited = Awaited(
            record.intent_id, INTENT.agent_id, case["intent_digest"], hashlib.sha256(INTENT.to_bytes()).hexdigest()
        )
        return outcome_problem(record, awaited, Pinned())
    return outcome_forgery(record, Pinned())


def test_outcomes_signed_in_python_verify_in_node():
    cases = [_case(name) for name in OUTCOMES]
    cases += [{k: v for k, v in case.items() if k != "topic"} for case in cases]  # the kind told by its members
    for case in cases[: len(OUTCOMES)]:
        assert _python_verdict(case) is None
    answers = run_node("verify_outcome.mjs", cases)
    for case, answer in zip(cases, answers):
        assert answer.get("ok") is True, (case["record"][:200], answer)
    roles = [a["role"] for a in answers[: len(OUTCOMES)]]
    # A dead letter may be either's: this one is the signer's.
    assert roles == ["worker", "signer", "signer", "signer", "worker", "worker", "signer", "worker"]


def _edited(name: str, edit) -> bytes:
    body = json.loads(OUTCOMES[name][1].to_bytes())
    edit(body)
    return json.dumps(body, ensure_ascii=False).encode()


def _resigned(name: str, key, key_id: str, **update) -> bytes:
    return sign_outcome(OUTCOMES[name][1].model_copy(update=update), key, key_id).to_bytes()


TAMPERED = {
    "reason edited": lambda: _case(
        "rejected_by_a_worker", _edited("rejected_by_a_worker", lambda b: b.update(reason="within the limit"))
    ),
    "a nested integer past 2**53 edited by one": lambda: _case(
        "rejected_by_a_worker",
        _edited("rejected_by_a_worker", lambda b: b["verdicts"][0]["facts"]["nested"].update(a=[2**60 + 4])),
    ),
    "the nested intent's value edited": lambda: _case(
        "approved", _edited("approved", lambda b: b["intent"].update(value="0.5"))
    ),
    "status edited": lambda: _case(
        "signed_transaction", _edited("signed_transaction", lambda b: b.update(status="failed"))
    ),
    "signature removed": lambda: _case(
        "signed_message", _edited("signed_message", lambda b: b.pop("service_signature"))
    ),
    "signed_by an unpinned key id": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", SIGNER, "signer-2")
    ),
    "signed by a stranger under a pinned key id": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", STRANGER, "signer-1")
    ),
    "a signed transaction signed by a worker": lambda: _case(
        "signed_transaction", _resigned("signed_transaction", WORKER, "worker-1")
    ),
    "a signing-stage refusal signed by a worker": lambda: _case(
        "rejected_by_the_signer", _resigned("rejected_by_the_signer", WORKER, "worker-1")
    ),
    "a guardrail refusal signed by the signer": lambda: _case(
        "rejected_by_a_worker", _resigned("rejected_by_a_worker", SIGNER, "signer-1")
    ),
    "about another intent": lambda: _case("signed_transaction", intent_digest="00" * 32),
    # A rejection of unreadable bytes that names the intent's digest answers no intent.
    "INVALID_INTENT checked against the intent's digest": lambda: _case(
        "invalid_intent",
        _resigned("invalid_intent", WORKER, "worker-1", intent_id=INTENT.intent_id, intent_digest=INTENT.digest()),
        sent_b64=None,
        intent_digest=INTENT.digest(),
    ),
    "INVALID_INTENT of other bytes": lambda: _case(
        "invalid_intent", sent_b64=base64.b64encode(RAW.replace(b": ", b":")).decode()
    ),
}


@pytest.mark.parametrize("what", list(TAMPERED))
def test_node_refuses_what_python_refuses(what):
    case = TAMPERED[what]()
    (answer,) = run_node("verify_outcome.mjs", [case])
    assert answer["ok"] is False, answer
    assert _python_verdict(case) is not None


# A genuine record checked against a rule of the page: the rule is what makes it verify.
BROKEN_OUTCOME_RULES = {
    "unsorted": "approved",
    "double_numbers": "signed_transaction",  # nonce 2**60 + 1 read as a double
    "ascii_escape": "rejected_by_a_worker",  # "über" written \u00fcber
}


@pytest.mark.parametrize("rule", list(BROKEN_OUTCOME_RULES))
def test_an_outcome_checked_against_a_rule_of_the_page_fails(rule):
    case = _case(BROKEN_OUTCOME_RULES[rule])
    ok, broken = run_node("verify_outcome.mjs", [case, {**case, "break": rule}])
    assert ok["ok"] is True and broken["ok"] is False, (ok, broken)


# -- (c) ledger proofs built by Python, checked in Node ---------------------------------------------

LEDGER_KEY = Ed25519PrivateKey.generate()
LEDGER_PUBLIC = bytes.fromhex(ledger_key_hex(LEDGER_KEY))


def _ledger_events():
    from schemas.models import AuditEvent, event_id
    from tests.ledger_support import pipeline_events

    events = pipeline_events(40)
    # Fields that need escaping, no intent id, non-ASCII details and an integer past 2**53.
    tricky = [
        AuditEvent(
            event_id=event_id("wire", str(i)),
            actor="admin:ops|night%shift",
            action="note.added",
            resource=f"intent:a|b%7C{i}",
            ts=events[3].ts + timedelta(microseconds=500 + i),
            intent_id=None,
            agent_id=f"agent-{i}",
            details={"note": "über ✓ \u2028", "n": 2**60 + i},
        )
        for i in range(2)
    ]
    return events[:4] + tricky + events[4:], tricky


@pytest.fixture(scope="module")
def proofs(tmp_path_factory):
    from ledger import proof
    from ledger.store import ChdbStore
    from tests.ledger_support import build_ledger

    events, tricky = _ledger_events()
    store = ChdbStore(tmp_path_factory.mktemp("wire-ledger") / "clickhouse")
    store.ensure_schema()
    try:
        build_ledger(store, events, LEDGER_KEY, chains=2, checkpoint_every=7)
        built = {}
        for event in events:
            try:
                built[event.event_id] = proof.build(store, event.event_id)
            except proof.ProofError:
                pass  # the newest rows of a chain wait for their checkpoint
    finally:
        store.close()
    assert all(t.event_id in built for t in tricky)
    return built, [t.event_id for t in tricky]


def _check_cases(items, public=LEDGER_PUBLIC) -> list[dict]:
    return [{"proof": p, "public_key": public.hex()} for p in items]


def test_ledger_proofs_built_by_python_verify_in_node(proofs):
    from ledger import proof

    built, tricky = proofs
    assert len(built) >= 30
    sizes = {(p["leaf_index"], p["tree_size"]) for p in built.values()}
    assert any(i == s - 1 for i, s in sizes) and any(i % 2 for i, _ in sizes) and len({s for _, s in sizes}) >= 3
    for p in built.values():
        assert proof.check(p, LEDGER_PUBLIC) is None
    answers = run_node("check_proof.mjs", _check_cases(built.values()))
    assert [a for a in answers if a != {"ok": True}] == []


def _rehashed(p: dict, **edits) -> dict:
    """The event edited and its row hash recomputed: consistent, but not the row the ledger signed."""
    from ledger.chain import integrity_hash

    e = p["event"]
    e.update(edits)
    e["integrity_hash"] = integrity_hash(
        e["prev_hash"],
        e["event_id"],
        e["actor"],
        e["action"],
        e["resource"],
        datetime.fromisoformat(e["ts"]),
        e["details"],
        e["intent_id"],
        e["agent_id"],
    )
    return p


def _resigned_checkpoint(p: dict, key) -> dict:
    from ledger import checkpoint

    cp = checkpoint.Checkpoint.from_dict(p["checkpoint"])
    p["checkpoint"] = checkpoint.sign(key, cp.chain, cp.seq, cp.head_hash, cp.merkle_root, cp.ts).to_dict()
    return p


def _flip(hex_text: str) -> str:
    return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]


PROOF_TAMPERS = {
    "actor edited": lambda p: p["event"].update(actor="agent:mallory"),
    "details edited": lambda p: p["event"].update(details=p["event"]["details"].replace("}", ',"x":1}', 1)),
    "ts edited": lambda p: p["event"].update(ts="2020-01-01T00:00:00.000000Z"),
    "agent_id edited": lambda p: p["event"].update(agent_id="agent-99"),
    "actor edited and the row hash recomputed": lambda p: _rehashed(p, actor="agent:mallory"),
    "a path node flipped": lambda p: p["audit_path"].__setitem__(0, _flip(p["audit_path"][0])),
    "the path reversed": lambda p: p["audit_path"].reverse(),
    "the path one node short": lambda p: p["audit_path"].pop(),
    "the path one node long": lambda p: p["audit_path"].append("ab" * 32),
    "leaf_index moved": lambda p: p.update(leaf_index=p["leaf_index"] - 1),
    "leaf_index and seq moved together": lambda p: (
        p.update(leaf_index=p["leaf_index"] - 1),
        p["event"].update(seq=p["event"]["seq"] - 1),
    ),
    "tree_size changed": lambda p: p.update(tree_size=p["tree_size"] + 1),
    "merkle_root replaced": lambda p: p["checkpoint"].update(merkle_root="00" * 32),
    "checkpoint seq and tree_size moved together": lambda p: (
        p["checkpoint"].update(seq=p["checkpoint"]["seq"] + 1),
        p.update(tree_size=p["tree_size"] + 1),
    ),
    "checkpoint re-signed by another key": lambda p: _resigned_checkpoint(p, Ed25519PrivateKey.generate()),
    "another version": lambda p: p.update(version="warden.audit.proof.v2"),
}


def _victims(built: dict) -> list[dict]:
    """Proofs with a path of three or more nodes, a right-hand leaf among them."""
    deep = [
        p for p in built.values() if len(p["audit_path"]) >= 3 and len(set(p["audit_path"])) > 1 and p["leaf_index"] > 0
    ]
    odd = [p for p in deep if p["leaf_index"] % 2]
    return [deep[0], odd[-1]]


@pytest.mark.parametrize("what", list(PROOF_TAMPERS))
def test_a_tampered_proof_fails_in_node_and_in_python(proofs, what):
    from ledger import proof

    built, tricky = proofs
    cases = []
    for original in _victims(built) + [built[tricky[0]]]:
        assert original["leaf_index"] > 0
        altered = copy.deepcopy(original)
        PROOF_TAMPERS[what](altered)
        assert altered != original
        assert proof.check(altered, LEDGER_PUBLIC) is not None
        cases.append(altered)
    answers = run_node("check_proof.mjs", _check_cases(cases))
    assert all(a["ok"] is False for a in answers), answers


def test_a_proof_under_another_public_key_fails(proofs):
    built, _ = proofs
    other = bytes.fromhex(public_key_hex(Ed25519PrivateKey.generate()).removeprefix("0x"))
    (answer,) = run_node("check_proof.mjs", _check_cases([next(iter(built.values()))], public=other))
    assert answer["ok"] is False and "signature" in answer["why"]


@pytest.mark.parametrize("rule", ["no_escape", "hex_leaf", "no_leaf_prefix", "left_to_right"])
def test_a_proof_checked_against_a_rule_of_the_page_fails(proofs, rule):
    built, tricky = proofs
    victim = built[tricky[0]] if rule == "no_escape" else _victims(built)[1]
    case = _check_cases([victim])[0]
    ok, broken = run_node("check_proof.mjs", [case, {**case, "break": rule}])
    assert ok == {"ok": True} and broken["ok"] is False, (ok, broken)
