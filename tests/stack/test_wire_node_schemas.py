"""A producer that follows the exported JSON Schema blindly: tests/node/schema_intents.test.mjs
(`node --test`) reads only what `warden schemas export` writes and docs/wire-formats.md's canonical
JSON, builds intents of several kinds, writing every property the schema lists (given, or at its
default) but a property marked ``x-omit-when-default`` while it holds its default, and signs them
with Ed25519. Warden's own intake (`schemas.intake.read_intent`, then `rules.judge.admit`, as the
streams worker runs them) admits each. The same intents signed with the marked defaults written in
are read all the same and refused AGENT_SIGNATURE_INVALID: the marks are what makes the bytes right.

Node.js is required: without it these tests fail, with a message saying to install it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rules.judge import admit
from runtime.registry import REGISTRY
from schemas.auth import public_key_hex
from schemas.codes import Code
from schemas.intake import read_intent
from schemas.intent import INTENT_MAX_AGE_US, TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from tests.wire_support import CHECKSUMMED, EXAMPLE_SEED, ROOT, SOLANA_INTENT, T0, run_node_test

MAX_RECORD_BYTES = 2_097_152  # WARDEN_MAX_RECORD_BYTES unless set
OTHER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55
BASE = {"agent_id": "agent-7", "chain": "base", "created_at": "2026-11-21T10:00:00Z"}

# What the producer gives, each value already in its normalized form (docs/wire-formats.md): the
# rest comes from the schema.
CASES = {
    "transfer": {**BASE, "intent_id": "plain-1", "to": CHECKSUMMED, "value": "0.05"},
    "transfer_with_optional_fields": {
        **BASE,
        "intent_id": "full-1",
        "idempotency_key": "order-42",
        "to": CHECKSUMMED,
        "value": "1.5",
        "gas_limit": 90000,
        "max_fee_per_gas": "30000000000",
        "max_priority_fee_per_gas": "2000000000",
        "nonce": 7,
        "access_list": [{"address": OTHER}],  # storage_keys from its schema's default
        "declared_outflows": [{"token": OTHER, "amount": "123"}],  # marked, off its default
        "simulate_first": True,
        "unattested_signer_accepted": True,  # marked, off its default
        "expires_at": "2026-11-21T10:05:00Z",
    },
    "set_code": {
        **BASE,
        "intent_id": "delegate-1",
        "to": CHECKSUMMED,
        "value": "0",
        "tx_type": 4,
        "authorization_list": [{"chain_id": 8453, "address": OTHER}],  # its nonce: null, from the schema
    },
    "solana_transaction": SOLANA_INTENT,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    work = tmp_path_factory.mktemp("schema-producer")
    subprocess.run(
        [sys.executable, "-m", "infra.cli", "schemas", "export", str(work / "schemas")], check=True, cwd=ROOT
    )
    cases = [{"name": name, "seed": EXAMPLE_SEED, "intent": intent} for name, intent in CASES.items()]
    (work / "cases.json").write_text(json.dumps(cases))
    run_node_test(
        "schema_intents.test.mjs",
        {
            "WARDEN_SCHEMA_DIR": str(work / "schemas"),
            "WARDEN_SCHEMA_CASES": str(work / "cases.json"),
            "WARDEN_SCHEMA_OUT": str(work / "built.json"),
        },
    )
    answers: dict[str, dict[str, Any]] = json.loads((work / "built.json").read_text())
    return answers


def _intake(answer: dict[str, Any]) -> tuple[TransactionIntent, StageVerdict]:
    """What the streams worker does first with the record the producer sends."""
    intent = read_intent(json.dumps(answer["intent"]).encode(), MAX_RECORD_BYTES, REGISTRY)
    assert isinstance(intent, TransactionIntent), intent
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EXAMPLE_SEED))
    policy = AgentPolicy(agent_id=intent.agent_id, version=1, agent_public_key=public_key_hex(key), issued_at=T0)
    return intent, admit(intent, policy, T0, INTENT_MAX_AGE_US)


@pytest.mark.parametrize("name", list(CASES))
def test_an_intent_built_from_the_schema_alone_passes_intake(built: dict[str, dict[str, Any]], name: str) -> None:
    intent, verdict = _intake(built[name])
    assert (verdict.stage, verdict.passed) == (Stage.INTAKE, True), verdict
    assert intent.signing_bytes() == built[name]["signing_bytes"].encode()
    assert intent.digest() == built[name]["digest"]


@pytest.mark.parametrize("name", list(CASES))
def test_the_same_intent_with_its_marked_defaults_written_in_is_refused(
    built: dict[str, dict[str, Any]], name: str
) -> None:
    written_in = built[name]["marked_defaults_written"]
    intent, verdict = _intake(written_in)  # read all the same, to the same intent ...
    assert intent.signing_bytes() == built[name]["signing_bytes"].encode()
    assert written_in["signing_bytes"] != built[name]["signing_bytes"]  # ... but other bytes were signed
    assert (verdict.stage, verdict.code) == (Stage.INTAKE, Code.AGENT_SIGNATURE_INVALID)
