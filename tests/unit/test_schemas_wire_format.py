"""The schemas' wire format: every record round-trips through its bytes, fields added after a
record's first version are left out at their defaults, and amounts travel as exact decimal
strings."""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from schemas.auth import intent_signature_valid
from schemas.fields import MAX_UINT256, format_native_amount, parse_native_amount
from schemas.intent import AccessListEntry, TransactionIntent
from sdk.client import new_intent
from tests.schemas_support import CHECKSUMMED, LOWER, OTHER, intent_doc, sample_records


@pytest.mark.parametrize(
    "index",
    range(8),
    ids=[
        "TransactionIntent",
        "AgentPolicy",
        "StageVerdict",
        "IntentRejected",
        "IntentApproved",
        "SignedTransaction",
        "AuditEvent",
        "DeadLetter",
    ],
)
def test_every_record_round_trips_through_bytes(index: int) -> None:
    record = sample_records()[index]
    raw = record.to_bytes()
    again = type(record).from_bytes(raw)
    assert again == record
    assert again.to_bytes() == raw
    assert orjson.loads(raw)["schema_version"] == 1


def test_fields_added_after_a_records_first_version_are_left_out_at_their_defaults_nested_too() -> None:
    """What was signed before such a field existed must stay the same bytes; a value other than
    the default travels."""
    intent, policy, _, _, approved = sample_records()[:5]
    later_intent_fields = {
        "intent_type",
        "message",
        "typed_data",
        "blobs",
        "authorization_list",
        "declared_outflows",
        "unattested_signer_accepted",
    }
    later_policy_fields = {"message_signing_enabled", "message_max_bytes", "asset_limits", "approval_timeout_s"}
    assert not later_intent_fields & set(orjson.loads(intent.to_bytes()))
    assert not later_policy_fields & set(orjson.loads(policy.to_bytes()))
    nested = orjson.loads(approved.service_signing_bytes())
    assert not later_intent_fields & set(nested["intent"])
    assert not later_policy_fields & set(nested["policy"])
    assert "human_approval" not in nested
    message = new_intent(
        Ed25519PrivateKey.generate(),
        agent_id="agent-1",
        chain="anvil",
        intent_type="personal_sign",
        message="0x6869",
        unattested_signer_accepted=True,
    )
    assert {
        "intent_type": "personal_sign",
        "message": "0x6869",
        "unattested_signer_accepted": True,
    }.items() <= orjson.loads(message.to_bytes()).items()
    shorter = policy.model_copy(update={"approval_timeout_s": 60})
    assert orjson.loads(shorter.to_bytes())["approval_timeout_s"] == 60


def test_signed_transaction_travels_with_from_as_its_wire_name() -> None:
    signed = sample_records()[5]
    doc = orjson.loads(signed.to_bytes())
    assert doc["from"] == OTHER and "from_" not in doc


def test_wei_amounts_serialize_as_decimal_strings() -> None:
    intent, _, _, _, approved, signed, *_ = sample_records()
    assert orjson.loads(signed.to_bytes())["value_wei"] == str(2**200 + 1)
    assert orjson.loads(intent.to_bytes())["gas_price"] == str(2**100)
    assert orjson.loads(approved.to_bytes())["intent"]["gas_price"] == str(2**100)
    doc = orjson.loads(
        TransactionIntent.model_validate(intent_doc(max_fee_per_gas=5, max_priority_fee_per_gas=1)).to_bytes()
    )
    assert doc["max_fee_per_gas"] == "5" and doc["max_priority_fee_per_gas"] == "1"
    assert doc["value"] == "0.5"


def test_a_signed_intent_still_verifies_after_a_round_trip() -> None:
    intent, policy, *_ = sample_records()
    assert intent_signature_valid(TransactionIntent.from_bytes(intent.to_bytes()), policy)


def test_access_list_entries_carry_no_schema_version() -> None:
    entry = AccessListEntry(address=LOWER)
    assert orjson.loads(entry.to_bytes()) == {"address": CHECKSUMMED, "storage_keys": []}


@pytest.mark.parametrize(
    "wei, text",
    [
        (0, "0"),
        (1, "0.000000000000000001"),
        (10**18, "1"),
        (10**18 + 1, "1.000000000000000001"),
        (15 * 10**17, "1.5"),
        (10**30, "1000000000000"),
        (10**30 + 10**12, "1000000000000.000001"),
        (MAX_UINT256, "115792089237316195423570985008687907853269984665640564039457.584007913129639935"),
    ],
)
def test_native_amounts_round_trip_exactly(wei: int, text: str) -> None:
    assert format_native_amount(wei) == text
    assert parse_native_amount(text) == wei
    assert parse_native_amount(format_native_amount(wei)) == wei


def test_parse_native_amount_refuses_numbers() -> None:
    for number in (1, 0.1, True, ["1"], {"1": 1}):  # unhashable ones too: parses are remembered by their text
        with pytest.raises(ValueError, match="numbers are refused"):
            parse_native_amount(number)


def test_a_refused_amount_is_refused_every_time() -> None:
    for _ in range(2):  # parses are remembered; refusals must not be
        with pytest.raises(ValueError, match="at most 18 are allowed"):
            parse_native_amount("0.0000000000000000001")
    with pytest.raises(ValidationError, match="tx_value_eth|value"):
        TransactionIntent.model_validate({**orjson.loads(sample_records()[0].to_bytes()), "value": [1]})
