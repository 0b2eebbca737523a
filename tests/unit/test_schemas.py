"""Tests for the schemas contract: field validation and its messages, the wire format,
the chain registry, JSON Schema export and the Ed25519 signatures on intents and policies.

Every validation failure must name the field, say what was wrong and what is allowed,
so a producer in any language can fix its record without reading our code.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import topics
from schemas.auth import intent_signature_valid, policy_signature_valid, public_key_hex, sign_intent, sign_policy
from schemas.chains import REGISTRY, Chain, ChainRegistry, UnknownChain
from schemas.emit import Emit, _plain_event_bytes, audit, join_audits
from schemas.errors import explain
from schemas.export import export
from schemas.fields import MAX_UINT256, format_native_amount, parse_native_amount
from schemas.models import (
    AccessListEntry,
    AgentPolicy,
    AuditEvent,
    DeadLetter,
    IntentApproved,
    IntentRejected,
    SignedTransaction,
    StageVerdict,
    TransactionIntent,
    audit_events_of,
    event_id,
)
from sdk.client import new_intent

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)

# The EIP-55 specification's own example address, in its three spellings.
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
LOWER = CHECKSUMMED.lower()
UPPER = "0x" + CHECKSUMMED[2:].upper()
# One letter's case flipped: mixed case, so it claims a checksum, and the checksum is wrong.
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
OTHER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"


def intent_doc(**overrides) -> dict:
    doc = {
        "intent_id": "i-1",
        "agent_id": "agent-1",
        "chain": "anvil",
        "to": CHECKSUMMED,
        "value": "0.5",
        "created_at": "2026-11-21T10:00:00Z",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()


def rejection(doc: dict) -> dict[str, str]:
    """Validate ``doc`` as a TransactionIntent and return {field: message} of the failure."""
    with pytest.raises(ValidationError) as info:
        TransactionIntent.model_validate(doc)
    return {".".join(str(p) for p in err["loc"]) or "record": err["msg"] for err in info.value.errors()}


# --- addresses (EIP-55) --------------------------------------------------------------------------


def test_all_lowercase_address_is_accepted_and_normalized_to_its_checksum():
    assert TransactionIntent.model_validate(intent_doc(to=LOWER)).to == CHECKSUMMED


def test_all_uppercase_body_is_accepted_and_normalized_to_its_checksum():
    assert TransactionIntent.model_validate(intent_doc(to=UPPER)).to == CHECKSUMMED


def test_correct_checksum_is_kept_as_is():
    assert TransactionIntent.model_validate(intent_doc(to=CHECKSUMMED)).to == CHECKSUMMED


def test_mixed_case_with_a_wrong_checksum_is_rejected_naming_the_expected_checksum():
    errors = rejection(intent_doc(to=BAD_CHECKSUM))
    assert set(errors) == {"to"}
    assert "bad EIP-55 checksum" in errors["to"]
    assert BAD_CHECKSUM in errors["to"]
    assert f"expected {CHECKSUMMED!r}" in errors["to"]
    assert "all-lowercase is accepted" in errors["to"]


def test_address_checks_are_the_same_the_second_time():
    # EIP-55 results are cached (schemas.fields._eip55): a rejection is never remembered as a pass,
    # and a normalized address is the same on every call.
    for _ in range(2):
        assert "bad EIP-55 checksum" in rejection(intent_doc(to=BAD_CHECKSUM))["to"]
        assert TransactionIntent.model_validate(intent_doc(to=LOWER)).to == CHECKSUMMED
    assert "42 characters" in rejection(intent_doc(to=["not", "hashable"]))["to"]


@pytest.mark.parametrize("bad", ["0x" + "ab" * 19, "0x" + "ab" * 21, "ab" * 20 + "00", "0x" + "zz" * 20, 1234])
def test_address_that_is_not_20_bytes_of_hex_is_rejected_saying_what_is_allowed(bad):
    errors = rejection(intent_doc(to=bad))
    assert set(errors) == {"to"}
    assert "0x-prefixed 20-byte hex address (42 characters)" in errors["to"]


def test_policy_allowlist_addresses_are_normalized_too():
    policy = AgentPolicy(
        agent_id="agent-1",
        version=1,
        tx_to_allowlist=(LOWER, "0x" + OTHER[2:].upper()),
        agent_public_key="0x" + "11" * 32,
        issued_at=T0,
    )
    assert policy.tx_to_allowlist == (CHECKSUMMED, OTHER)


# --- hex data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0xabc", "0x0", "0xzz", "0xgg00", "abcd", "", "0x 00"])
def test_data_that_is_not_even_length_0x_hex_is_rejected(bad):
    errors = rejection(intent_doc(data=bad))
    assert set(errors) == {"data"}
    assert "must be 0x-prefixed hex with an even number of digits" in errors["data"]
    assert repr(bad) in errors["data"]


def test_data_with_a_trailing_newline_is_rejected():
    # `$` in the pattern matches before a final "\n": the newline must not slip into signed bytes.
    errors = rejection(intent_doc(data="0x00\n"))
    assert set(errors) == {"data"}


def test_data_is_normalized_to_lowercase_and_defaults_to_empty():
    assert TransactionIntent.model_validate(intent_doc(data="0xA9059CBB")).data == "0xa9059cbb"
    assert TransactionIntent.model_validate(intent_doc()).data == "0x"


# --- native amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, says",
    [
        ("-1", "must be >= 0"),
        ("-0.5", "must be >= 0"),
        ("0.0000000000000000001", "has 19 decimals; at most 18 are allowed"),
        ("1e18", "must be a plain decimal"),
        ("1E-3", "must be a plain decimal"),
        ("01", "must be a plain decimal"),
        (".5", "must be a plain decimal"),
        ("1.", "must be a plain decimal"),
        (" 1", "must be a plain decimal"),
        ("1,5", "must be a plain decimal"),
        ("NaN", "must be a plain decimal"),
        ("", "must be a plain decimal"),
        (1, "must be a decimal string in the native unit"),
        (0.5, "must be a decimal string in the native unit"),
    ],
)
def test_value_that_is_not_an_exact_decimal_string_is_rejected(bad, says):
    errors = rejection(intent_doc(value=bad))
    assert set(errors) == {"value"}
    assert says in errors["value"]


def test_value_with_a_trailing_newline_is_rejected():
    # `$` in the pattern matches before a final "\n", and int() then strips it.
    errors = rejection(intent_doc(value="1\n"))
    assert set(errors) == {"value"}


def test_value_as_a_json_number_is_rejected_on_the_wire():
    for number in (b"1", b"1e18", b"0.5"):
        raw = orjson.dumps(intent_doc(value=_DROP))[:-1] + b',"value":' + number + b"}"
        with pytest.raises(ValidationError) as info:
            TransactionIntent.from_bytes(raw)
        (err,) = info.value.errors()
        assert err["loc"] == ("value",)
        assert "numbers are refused so no float ever touches money" in err["msg"]


def test_value_with_exactly_18_decimals_is_accepted_exactly():
    intent = TransactionIntent.model_validate(intent_doc(value="0.000000000000000001"))
    assert intent.value_wei == 1
    assert intent.value == "0.000000000000000001"
    intent = TransactionIntent.model_validate(intent_doc(value="1.123456789012345678"))
    assert intent.value_wei == 1_123_456_789_012_345_678


def test_value_zero_is_accepted():
    intent = TransactionIntent.model_validate(intent_doc(value="0"))
    assert intent.value_wei == 0 and intent.value == "0"


def test_value_is_normalized_to_its_shortest_exact_form():
    assert TransactionIntent.model_validate(intent_doc(value="1.500")).value == "1.5"
    assert TransactionIntent.model_validate(intent_doc(value="2.000000000000000000")).value == "2"


def test_huge_value_is_exact_as_an_int_with_no_float():
    text = format_native_amount(MAX_UINT256)
    assert text == "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
    intent = TransactionIntent.model_validate(intent_doc(value=text))
    assert type(intent.value_wei) is int
    assert intent.value_wei == MAX_UINT256
    assert intent.value == text
    # A float would have lost the low digits.
    assert intent.value_wei != int(float(text) * 10**18)


def test_value_beyond_uint256_is_rejected():
    errors = rejection(
        intent_doc(value="115792089237316195423570985008687907853269984665640564039457.584007913129639936")
    )
    assert "exceeds 2**256-1 wei" in errors["value"]


# --- wei fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["-1", "1.5", "0x10", "1e9", True, 2**256, -1])
def test_wei_fields_refuse_anything_but_a_non_negative_integer(bad):
    errors = rejection(intent_doc(tx_type=0, gas_price=bad))
    assert set(errors) == {"gas_price"}
    assert "wei" in errors["gas_price"]


def test_wei_fields_refuse_non_ascii_digits():
    # str.isdigit() is true for "١٠" (Arabic-Indic ten) and int() parses it: not a wire format.
    errors = rejection(intent_doc(tx_type=0, gas_price="\u0661\u0660"))
    assert set(errors) == {"gas_price"}


def test_wei_fields_accept_decimal_strings_and_integers_exactly():
    intent = TransactionIntent.model_validate(intent_doc(max_fee_per_gas=str(2**200), max_priority_fee_per_gas=7))
    assert intent.max_fee_per_gas == 2**200 and intent.max_priority_fee_per_gas == 7


# --- chain, tx_type, ids, times, unknown and missing fields --------------------------------------


def test_unknown_chain_is_rejected_listing_the_allowed_chains():
    errors = rejection(intent_doc(chain="nochain"))
    assert set(errors) == {"chain"}
    message = errors["chain"]
    assert "unknown chain 'nochain'" in message
    assert "allowed:" in message
    for name in ("ethereum", "base", "sepolia", "anvil", "arbitrum"):
        assert name in message
    assert "warden chains add" in message


def test_policy_allowed_chains_are_checked_against_the_registry():
    with pytest.raises(ValidationError) as info:
        AgentPolicy(
            agent_id="a",
            version=1,
            tx_allowed_chains=("base", "nochain"),
            agent_public_key="0x" + "11" * 32,
            issued_at=T0,
        )
    assert "unknown chain 'nochain'" in str(info.value)


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"tx_type": 0, "max_fee_per_gas": "1"}, "tx_type 0 pays gas_price"),
        ({"tx_type": 1, "max_priority_fee_per_gas": "1"}, "tx_type 1 pays gas_price"),
        ({"tx_type": 2, "gas_price": "1"}, "tx_type 2 pays max_fee_per_gas + max_priority_fee_per_gas"),
        ({"tx_type": 0, "gas_price": "1", "access_list": [{"address": OTHER}]}, "tx_type 0 has no access_list"),
        (
            {"max_fee_per_gas": "1", "max_priority_fee_per_gas": "2"},
            "max_priority_fee_per_gas must be <= max_fee_per_gas",
        ),
    ],
)
def test_fee_fields_must_match_the_transaction_type(fields, says):
    errors = rejection(intent_doc(**fields))
    assert says in " ".join(errors.values())


@pytest.mark.parametrize(
    "fields",
    [
        {"tx_type": 0, "gas_price": "1000000000"},
        {
            "tx_type": 1,
            "gas_price": "1000000000",
            "access_list": [{"address": LOWER, "storage_keys": ["0x" + "00" * 32]}],
        },
        {"tx_type": 2, "max_fee_per_gas": "30", "max_priority_fee_per_gas": "30"},
        {"tx_type": 2},
    ],
)
def test_fee_fields_consistent_with_the_type_are_accepted(fields):
    intent = TransactionIntent.model_validate(intent_doc(**fields))
    assert intent.tx_type == fields["tx_type"]


def test_tx_type_outside_0_to_4_is_rejected():
    assert set(rejection(intent_doc(tx_type=5))) == {"tx_type"}
    # Types 3 and 4 exist, each only with the fields that make it (test_signing_surface.py).
    assert "needs max_fee_per_blob_gas" in " ".join(rejection(intent_doc(tx_type=3)).values())


def test_storage_keys_must_be_32_bytes():
    errors = rejection(intent_doc(tx_type=1, access_list=[{"address": OTHER, "storage_keys": ["0x01"]}]))
    assert "each storage key must be 32 bytes" in " ".join(errors.values())


def test_missing_fields_are_each_named():
    with pytest.raises(ValidationError) as info:
        TransactionIntent.model_validate({})
    missing = {err["loc"][0] for err in info.value.errors() if err["type"] == "missing"}
    assert missing == {"intent_id", "agent_id", "chain", "created_at"}
    assert "intent_id: is required" in explain(info.value)
    # `to` and `value` are required of a transaction (the default kind), not of a message.
    for name in ("to", "value"):
        doc = intent_doc()
        del doc[name]
        assert f"{name} is required for a transaction" in " ".join(rejection(doc).values())


def test_unknown_extra_field_is_rejected_by_name():
    with pytest.raises(ValidationError) as info:
        TransactionIntent.model_validate(intent_doc(vaule="1"))
    (err,) = info.value.errors()
    assert err["loc"] == ("vaule",) and err["type"] == "extra_forbidden"
    assert explain(info.value) == (
        "vaule: is not a field of this record (check the spelling; see `warden schemas export`)",
    )


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "x" * 129, "agent-1\n"])
def test_identifiers_are_restricted(bad):
    errors = rejection(intent_doc(agent_id=bad))
    assert set(errors) == {"agent_id"}
    assert "1-128 characters of letters, digits and _.:-" in errors["agent_id"]


def test_naive_datetime_is_rejected_and_aware_ones_become_utc():
    errors = rejection(intent_doc(created_at="2026-11-21T10:00:00"))
    assert "must carry a timezone" in errors["created_at"]
    intent = TransactionIntent.model_validate(intent_doc(created_at="2026-11-21T12:00:00+02:00"))
    assert intent.created_at == T0 and intent.created_at.utcoffset() == timedelta(0)


# --- round trips and the wire format -------------------------------------------------------------


def _records() -> list:
    agent_key = Ed25519PrivateKey.generate()
    intent = new_intent(
        agent_key,
        agent_id="agent-1",
        chain="anvil",
        to=LOWER,
        value="1.25",
        now=T0,
        tx_type=1,
        gas_price=str(2**100),
        gas_limit=50_000,
        nonce=7,
        data="0xA9059CBB",
        access_list=[{"address": OTHER, "storage_keys": ["0x" + "ab" * 32]}],
        idempotency_key="order-1",
    )
    policy = sign_policy(
        AgentPolicy(
            agent_id="agent-1",
            version=3,
            tx_allowed_chains=("anvil", "base"),
            tx_to_allowlist=(CHECKSUMMED,),
            tx_max_value_eth="1.5",
            tx_daily_limit_eth="10",
            tx_max_fee_per_gas=str(2**90),
            sender_address=OTHER,
            agent_public_key=public_key_hex(agent_key),
            issued_at=T0,
        ),
        Ed25519PrivateKey.generate(),
        "test-admin",
    )
    verdict = StageVerdict(
        intent_id=intent.intent_id,
        stage="value_cap",
        passed=False,
        code="VALUE_OVER_CAP",
        reason="too much",
        facts={"value_wei": str(2**80), "cap_wei": "1"},
    )
    return [
        intent,
        policy,
        verdict,
        IntentRejected(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            stage="value_cap",
            code="VALUE_OVER_CAP",
            reason="too much",
            verdicts=(verdict,),
            decided_at=T0,
            intent_digest=intent.digest(),
        ),
        IntentApproved(
            intent=intent, policy=policy, verdicts=(verdict,), approved_at=T0, intent_digest=intent.digest()
        ),
        SignedTransaction(
            intent_id=intent.intent_id,
            agent_id="agent-1",
            chain="anvil",
            chain_id=31337,
            signed_tx="0x01f8",
            tx_hash="0x" + "cd" * 32,
            **{"from": OTHER},
            to=CHECKSUMMED,
            nonce=7,
            value_wei=2**200 + 1,
            tx_type=1,
            status="mined",
            tee="none",
            signed_at=T0,
            max_spend_wei=2**200 + 2**101,
            fee_wei=2**99,
            intent_digest=intent.digest(),
        ),
        AuditEvent(
            event_id="e1",
            actor="service:streams",
            action="stage.failed",
            resource="intent:i-1",
            ts=T0,
            intent_id="i-1",
            agent_id="agent-1",
            details={"facts": {"n": "1"}},
        ),
        DeadLetter(
            source_topic="warden.intents.submitted",
            partition=1,
            offset=9,
            key="agent-1",
            reason="bad",
            errors=("to: is required",),
            payload_b64="e30=",
            payload_sha256="00" * 32,
            received_at=T0,
        ),
    ]


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
def test_every_record_round_trips_through_bytes(index):
    record = _records()[index]
    raw = record.to_bytes()
    again = type(record).from_bytes(raw)
    assert again == record
    assert again.to_bytes() == raw
    assert orjson.loads(raw)["schema_version"] == 1


def test_fields_added_after_a_records_first_version_are_left_out_at_their_defaults_nested_too():
    """What was signed before such a field existed must stay the same bytes; a value other than
    the default travels."""
    intent, policy, _, _, approved = _records()[:5]
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


def test_signed_transaction_travels_with_from_as_its_wire_name():
    signed = _records()[5]
    doc = orjson.loads(signed.to_bytes())
    assert doc["from"] == OTHER and "from_" not in doc


def test_wei_amounts_serialize_as_decimal_strings():
    intent, _, _, _, approved, signed, *_ = _records()
    assert orjson.loads(signed.to_bytes())["value_wei"] == str(2**200 + 1)
    assert orjson.loads(intent.to_bytes())["gas_price"] == str(2**100)
    assert orjson.loads(approved.to_bytes())["intent"]["gas_price"] == str(2**100)
    doc = orjson.loads(
        TransactionIntent.model_validate(intent_doc(max_fee_per_gas=5, max_priority_fee_per_gas=1)).to_bytes()
    )
    assert doc["max_fee_per_gas"] == "5" and doc["max_priority_fee_per_gas"] == "1"
    assert doc["value"] == "0.5"


def test_a_signed_intent_still_verifies_after_a_round_trip():
    intent, policy, *_ = _records()
    assert intent_signature_valid(TransactionIntent.from_bytes(intent.to_bytes()), policy)


def test_access_list_entries_carry_no_schema_version():
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
def test_native_amounts_round_trip_exactly(wei, text):
    assert format_native_amount(wei) == text
    assert parse_native_amount(text) == wei
    assert parse_native_amount(format_native_amount(wei)) == wei


def test_parse_native_amount_refuses_numbers():
    for number in (1, 0.1, True, ["1"], {"1": 1}):  # unhashable ones too: parses are remembered by their text
        with pytest.raises(ValueError, match="numbers are refused"):
            parse_native_amount(number)  # type: ignore[arg-type]


def test_a_refused_amount_is_refused_every_time():
    for _ in range(2):  # parses are remembered; refusals must not be
        with pytest.raises(ValueError, match="at most 18 are allowed"):
            parse_native_amount("0.0000000000000000001")
    with pytest.raises(ValidationError, match="tx_value_eth|value"):
        TransactionIntent.model_validate({**orjson.loads(_records()[0].to_bytes()), "value": [1]})


# --- chain registry ------------------------------------------------------------------------------


def test_registry_holds_28_mainnets_2_testnets_and_anvil():
    chains = ChainRegistry().all()
    mainnets = {name for name, c in chains.items() if not c.testnet}
    testnets = {name for name, c in chains.items() if c.testnet}
    assert len(mainnets) == 28
    assert testnets == {"sepolia", "holesky", "anvil"}
    assert len(chains) == 31
    assert chains["anvil"].chain_id == 31337
    assert chains["sepolia"].chain_id == 11155111 and chains["holesky"].chain_id == 17000
    assert chains["ethereum"].chain_id == 1 and chains["base"].chain_id == 8453


def test_every_evm_network_signs_with_the_ethereum_key_chain():
    assert {c.key_chain for c in ChainRegistry().all().values()} == {"ethereum"}


def test_chain_ids_and_names_are_unique():
    chains = list(ChainRegistry().all().values())
    assert len({c.chain_id for c in chains}) == len(chains)
    assert len({c.name for c in chains}) == len(chains)


def test_lookup_by_chain_id_and_unknown_names():
    registry = ChainRegistry()
    assert registry.by_chain_id(8453).name == "base"
    assert registry.by_chain_id(999_999_999) is None
    with pytest.raises(UnknownChain, match="unknown chain 'nochain'; allowed: .*anvil"):
        registry.get("nochain")


def test_the_module_registry_knows_every_built_in_chain():
    assert set(ChainRegistry().all()) <= set(REGISTRY.all())


def test_an_admin_added_chain_is_usable_and_persisted(tmp_path):
    path = tmp_path / "home" / "chains.json"
    registry = ChainRegistry(extra_path=path)
    mine = Chain("mychain", 424242, "MYC", "https://explorer.mychain.test")
    registry.add(mine)
    assert registry.get("mychain") == mine
    assert registry.by_chain_id(424242) == mine
    assert "mychain" in str(pytest.raises(UnknownChain, registry.get, "nochain").value)
    # Another process reading the same admin file sees it.
    assert ChainRegistry(extra_path=path).get("mychain") == mine
    assert json.loads(path.read_text())[0]["chain_id"] == 424242
    second = Chain("otherchain", 424243, "OTH", "")
    registry.add(second)
    assert registry.get("otherchain") == second and registry.get("mychain") == mine


def test_an_admin_cannot_redefine_a_built_in_chain(tmp_path):
    registry = ChainRegistry(extra_path=tmp_path / "chains.json")
    with pytest.raises(ValueError, match="chain 'base' is built in and cannot be redefined"):
        registry.add(Chain("base", 999_001, "ETH", ""))
    assert registry.get("base").chain_id == 8453
    assert not (tmp_path / "chains.json").exists()


def test_an_admin_cannot_reuse_a_chain_id(tmp_path):
    registry = ChainRegistry(extra_path=tmp_path / "chains.json")
    with pytest.raises(ValueError, match="chain id 8453 is already used by 'base'"):
        registry.add(Chain("fakebase", 8453, "ETH", ""))
    registry.add(Chain("mychain", 424242, "MYC", ""))
    with pytest.raises(ValueError, match="chain id 424242 is already used by 'mychain'"):
        registry.add(Chain("copycat", 424242, "MYC", ""))
    assert set(registry.all()) - set(ChainRegistry().all()) == {"mychain"}


def test_a_registry_without_an_admin_file_refuses_to_add():
    with pytest.raises(RuntimeError, match="no admin file"):
        ChainRegistry().add(Chain("mychain", 424242, "MYC", ""))


# --- JSON Schema export --------------------------------------------------------------------------


NAMES = [
    "TransactionIntent",
    "AgentPolicy",
    "StageVerdict",
    "IntentRejected",
    "IntentApproved",
    "SignedTransaction",
    "AuditEvent",
    "DeadLetter",
    "SealingKey",
    "SignedMessage",
]


def test_export_writes_a_valid_json_schema_per_record(tmp_path):
    written = export(tmp_path / "schemas")
    assert sorted(p.name for p in written) == sorted(f"{n}.schema.json" for n in NAMES)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["$id"] == f"https://warden.dev/schemas/v1/{path.name}"
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
    intent = json.loads((tmp_path / "schemas" / "TransactionIntent.schema.json").read_text())
    assert set(intent["required"]) == {"intent_id", "agent_id", "chain", "created_at"}
    transaction = next(
        rule for rule in intent["allOf"] if rule["if"]["properties"]["intent_type"]["const"] == "transaction"
    )
    assert transaction["then"]["required"] == ["to", "value"]
    assert {"type": "string"} in intent["properties"]["value"]["anyOf"]
    signed = json.loads((tmp_path / "schemas" / "SignedTransaction.schema.json").read_text())
    assert "from" in signed["properties"] and "from" in signed["required"]


def _json_types(prop: dict, defs: dict) -> set[str]:
    if "$ref" in prop:
        return _json_types(defs[prop["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in prop:
        return set().union(*(_json_types(p, defs) for p in prop["anyOf"]))
    if "type" in prop:
        return {prop["type"]} | ({"number"} if prop["type"] == "integer" else set())
    if "const" in prop:
        return {{str: "string", int: "integer", bool: "boolean"}[type(prop["const"])]}
    return {"string", "integer", "number", "boolean", "array", "object", "null"}


def _wire_type(value) -> str:
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
        (type(None), "null"),
    ):
        if isinstance(value, kind):
            return name
    raise AssertionError(value)


def test_exported_schemas_describe_the_records_as_they_travel(tmp_path):
    # A consumer in another language validates what it reads against these files,
    # so each field's declared JSON type must be the type the wire carries.
    export(tmp_path)
    mismatches = []
    for record in _records():
        name = type(record).__name__
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text())
        for field, value in orjson.loads(record.to_bytes()).items():
            declared = _json_types(schema["properties"][field], schema.get("$defs", {}))
            if _wire_type(value) not in declared:
                mismatches.append(f"{name}.{field}: wire {_wire_type(value)}, schema {sorted(declared)}")
    assert mismatches == []


# --- Ed25519 signatures (schemas/auth.py) --------------------------------------------------------


@pytest.fixture
def agent_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def admin_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _policy(agent_key: Ed25519PrivateKey, **fields) -> AgentPolicy:
    return AgentPolicy(
        **{
            "agent_id": "agent-1",
            "version": 1,
            "agent_public_key": public_key_hex(agent_key),
            "issued_at": T0,
            **fields,
        }
    )


def test_a_signed_intent_verifies(agent_key):
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    assert len(bytes.fromhex(intent.signature)) == 64
    assert intent_signature_valid(intent, _policy(agent_key))


@pytest.mark.parametrize(
    "change",
    [
        {"intent_id": "i-2"},
        {"agent_id": "agent-2"},
        {"chain": "base"},
        {"to": OTHER},
        {"value": "0.50000001"},
        {"data": "0x00"},
        {"tx_type": 0},
        {"gas_limit": 21000},
        {"nonce": 1},
        {"simulate_first": True},
        {"broadcast": True},
        {"idempotency_key": "k"},
        {"signing_key_path": "m/44'/60'/0'/0/1"},
        {"created_at": T0 + timedelta(microseconds=1)},
        {"max_fee_per_gas": 1},
    ],
)
def test_any_changed_field_breaks_the_agent_signature(agent_key, change):
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    changed = TransactionIntent.model_validate({**intent.model_dump(), **change})
    assert changed.signing_bytes() != intent.signing_bytes()
    assert not intent_signature_valid(changed, _policy(agent_key))


def test_intent_signature_fails_for_unsigned_foreign_or_garbage_signatures(agent_key):
    intent = new_intent(agent_key, agent_id="agent-1", chain="anvil", to=CHECKSUMMED, value="0.5", now=T0)
    policy = _policy(agent_key)
    assert not intent_signature_valid(intent.model_copy(update={"signature": ""}), policy)
    assert not intent_signature_valid(sign_intent(intent, Ed25519PrivateKey.generate()), policy)
    assert not intent_signature_valid(intent.model_copy(update={"signature": "zz"}), policy)
    assert not intent_signature_valid(intent.model_copy(update={"signature": intent.signature[:-2]}), policy)


def test_a_policy_signed_by_a_pinned_admin_key_verifies(agent_key, admin_key):
    policy = sign_policy(_policy(agent_key), admin_key, "test-admin")
    assert policy.admin_key_id == "test-admin"
    assert policy_signature_valid(policy, {"test-admin": public_key_hex(admin_key)})


def test_a_policy_signed_by_an_unpinned_key_fails(agent_key, admin_key):
    rogue = sign_policy(_policy(agent_key), Ed25519PrivateKey.generate(), "test-admin")
    assert not policy_signature_valid(rogue, {"test-admin": public_key_hex(admin_key)})


def test_a_policy_under_a_different_key_id_fails(agent_key, admin_key):
    policy = sign_policy(_policy(agent_key), admin_key, "test-admin")
    assert not policy_signature_valid(policy, {"other-admin": public_key_hex(admin_key)})
    assert not policy_signature_valid(policy, {})
    # The key id is itself signed: relabelling a signature under another pinned id does not verify.
    relabelled = policy.model_copy(update={"admin_key_id": "other-admin"})
    assert not policy_signature_valid(relabelled, {"other-admin": public_key_hex(admin_key)})


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"tx_max_value_eth": "100"},
        {"tx_daily_limit_eth": None},
        {"tx_to_allowlist": (OTHER,)},
        {"tx_allowed_chains": ()},
        {"intents_api_enabled": False},
        {"require_simulation": True},
        {"agent_public_key": "0x" + "22" * 32},
    ],
)
def test_any_changed_policy_field_breaks_the_admin_signature(agent_key, admin_key, change):
    policy = sign_policy(
        _policy(
            agent_key,
            tx_max_value_eth="1",
            tx_daily_limit_eth="5",
            tx_allowed_chains=("anvil",),
            tx_to_allowlist=(CHECKSUMMED,),
        ),
        admin_key,
        "test-admin",
    )
    changed = AgentPolicy.model_validate({**policy.model_dump(), **change})
    assert not policy_signature_valid(changed, {"test-admin": public_key_hex(admin_key)})


def test_an_unsigned_policy_fails(agent_key, admin_key):
    unsigned = _policy(agent_key, admin_key_id="test-admin")
    assert not policy_signature_valid(unsigned, {"test-admin": public_key_hex(admin_key)})


# -- audit records: several events of one agent in one record ------------------------------------


def _audit_emit(agent: str, n: int, pad: int = 0):
    return audit(
        "service:streams",
        "stage.passed",
        f"intent:{agent}-{n}",
        datetime(2026, 11, 23, tzinfo=timezone.utc),
        agent,
        str(n),
        agent_id=agent,
        n=n,
        pad="x" * pad,
    )


def test_join_audits_puts_outcomes_first_and_each_agents_events_in_one_record_in_order():
    x, y = Emit(topics.INTENTS_APPROVED, "a", b"x"), Emit(topics.TXS_SIGNED, "b", b"y")
    a1, a2, a3, b1 = _audit_emit("a", 1), _audit_emit("a", 2), _audit_emit("a", 3), _audit_emit("b", 1)
    joined = join_audits([a1, x, a2, b1, y, a3], max_bytes=1 << 20)
    assert joined[:2] == [x, y]
    assert [(e.topic, e.key) for e in joined[2:]] == [(topics.AUDIT_EVENTS, "a"), (topics.AUDIT_EVENTS, "b")]
    assert [e.to_bytes() for e in audit_events_of(joined[2].value)] == [a1.value, a2.value, a3.value]
    assert joined[3].value == b1.value  # one event stays a plain AuditEvent
    assert join_audits([a1, x], max_bytes=1 << 20) == [x, a1]  # one event alone: still after the outcome


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 900)), max_size=30),
    max_bytes=st.integers(300, 4000),
)
def test_join_audits_keeps_every_event_in_order_within_max_bytes(sizes, max_bytes):
    emits = [_audit_emit(agent, n, pad) for n, (agent, pad) in enumerate(sizes)]
    joined = join_audits(emits, max_bytes)
    for agent in "abc":
        mine = [e for e in joined if e.key == agent]
        assert all(e.topic == topics.AUDIT_EVENTS for e in mine)
        assert [ev.to_bytes() for e in mine for ev in audit_events_of(e.value)] == [
            e.value for e in emits if e.key == agent
        ]
        # Over max_bytes only where one event alone is.
        assert all(len(e.value) <= max_bytes or len(audit_events_of(e.value)) == 1 for e in mine)


# --- audit events built without the model ----------------------------------------------------------

_JSON_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_ZONES = st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))])


@settings(max_examples=300)
@given(
    actor=st.text(max_size=20),
    action=st.text(max_size=20),
    resource=st.text(max_size=20),
    ts=st.datetimes(timezones=_ZONES),
    intent_id=st.none() | st.text(max_size=10),
    agent_id=st.none() | st.text(max_size=10),
    details=st.dictionaries(st.text(max_size=8).map("d_".__add__), _JSON_PLAIN, max_size=5),
)
def test_an_audit_event_built_without_the_model_is_the_models_bytes(
    actor, action, resource, ts, intent_id, agent_id, details
):
    fields = dict(
        event_id="e" * 32,
        actor=actor,
        action=action,
        resource=resource,
        ts=ts,
        intent_id=intent_id,
        agent_id=agent_id,
        details=details,
    )
    assert _plain_event_bytes(fields) == AuditEvent(**fields).to_bytes()
    emitted = audit(actor, action, resource, ts, "id", intent_id=intent_id, agent_id=agent_id, **details)
    assert emitted.value == AuditEvent(**{**fields, "event_id": event_id(action, "id")}).to_bytes()


@pytest.mark.parametrize(
    "details, why",
    [
        ({"amount": 1.5}, "a float: the model's form of it decides"),
        ({"at": datetime(2026, 11, 21, tzinfo=timezone.utc)}, "a datetime inside the details"),
        ({"raw": b"\x00"}, "bytes"),
        ({"facts": {1: "x"}}, "a key that is not a string"),
    ],
)
def test_an_audit_event_that_is_not_plain_json_is_left_to_the_model(details, why):
    fields = dict(
        event_id=event_id("a", "id"),
        actor="service:streams",
        action="a",
        resource="r",
        ts=datetime(2026, 11, 21, tzinfo=timezone.utc),
        intent_id=None,
        agent_id=None,
        details=details,
    )
    assert _plain_event_bytes(fields) is None, why
    assert audit("service:streams", "a", "r", fields["ts"], "id", **details).value == AuditEvent(**fields).to_bytes()


def test_an_audit_event_the_model_refuses_is_refused_on_either_path():
    with pytest.raises(ValidationError):
        audit("service:streams", "a", "r", datetime(2026, 11, 21), "id")  # no time zone
    with pytest.raises(TypeError):
        audit("service:streams", "a", "r", datetime(2026, 11, 21, tzinfo=timezone.utc), "id", big=2**64)
