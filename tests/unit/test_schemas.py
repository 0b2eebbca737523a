"""The schemas contract's field validation and its messages: addresses, hex data, amounts, wei
fields, chains, transaction types, identifiers, times, unknown and missing fields. The wire
format, the chain registry, JSON Schema export, signatures and audit events are in their own
files.

Every validation failure must name the field, say what was wrong and what is allowed, so a
producer in any language can fix its record without reading our code."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from runtime.registry import ChainRegistry
from schemas.chains import Chain
from schemas.errors import explain
from schemas.fields import MAX_UINT256, format_native_amount
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from tests.schemas_support import CHECKSUMMED, DROP, LOWER, OTHER, T0, intent_doc

UPPER = "0x" + CHECKSUMMED[2:].upper()
# One letter's case flipped: mixed case, so it claims a checksum, and the checksum is wrong.
BAD_CHECKSUM = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def rejection(doc: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, str]:
    """Validate ``doc`` as a TransactionIntent (with the validation ``context`` a reader hands it)
    and return {field: message} of the failure."""
    with pytest.raises(ValidationError) as info:
        TransactionIntent.model_validate(doc, context=context)
    return {".".join(str(p) for p in err["loc"]) or "record": err["msg"] for err in info.value.errors()}


# --- addresses (EIP-55) --------------------------------------------------------------------------


def test_all_lowercase_address_is_accepted_and_normalized_to_its_checksum() -> None:
    assert TransactionIntent.model_validate(intent_doc(to=LOWER)).to == CHECKSUMMED


def test_all_uppercase_body_is_accepted_and_normalized_to_its_checksum() -> None:
    assert TransactionIntent.model_validate(intent_doc(to=UPPER)).to == CHECKSUMMED


def test_correct_checksum_is_kept_as_is() -> None:
    assert TransactionIntent.model_validate(intent_doc(to=CHECKSUMMED)).to == CHECKSUMMED


def test_mixed_case_with_a_wrong_checksum_is_rejected_naming_the_expected_checksum() -> None:
    errors = rejection(intent_doc(to=BAD_CHECKSUM))
    assert set(errors) == {"to"}
    assert "bad EIP-55 checksum" in errors["to"]
    assert BAD_CHECKSUM in errors["to"]
    assert f"expected {CHECKSUMMED!r}" in errors["to"]
    assert "all-lowercase is accepted" in errors["to"]


def test_address_checks_are_the_same_the_second_time() -> None:
    # EIP-55 results are cached (schemas.fields._eip55): a rejection is never remembered as a pass,
    # and a normalized address is the same on every call.
    for _ in range(2):
        assert "bad EIP-55 checksum" in rejection(intent_doc(to=BAD_CHECKSUM))["to"]
        assert TransactionIntent.model_validate(intent_doc(to=LOWER)).to == CHECKSUMMED
    assert "42 characters" in rejection(intent_doc(to=["not", "hashable"]))["to"]


@pytest.mark.parametrize("bad", ["0x" + "ab" * 19, "0x" + "ab" * 21, "ab" * 20 + "00", "0x" + "zz" * 20, 1234])
def test_address_that_is_not_20_bytes_of_hex_is_rejected_saying_what_is_allowed(bad: str | int) -> None:
    errors = rejection(intent_doc(to=bad))
    assert set(errors) == {"to"}
    assert "0x-prefixed 20-byte hex address (42 characters)" in errors["to"]


def test_policy_allowlist_addresses_are_normalized_too() -> None:
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
def test_data_that_is_not_even_length_0x_hex_is_rejected(bad: str) -> None:
    errors = rejection(intent_doc(data=bad))
    assert set(errors) == {"data"}
    assert "must be 0x-prefixed hex with an even number of digits" in errors["data"]
    assert repr(bad) in errors["data"]


def test_data_with_a_trailing_newline_is_rejected() -> None:
    # `$` in the pattern matches before a final "\n": the newline must not slip into signed bytes.
    errors = rejection(intent_doc(data="0x00\n"))
    assert set(errors) == {"data"}


def test_data_is_normalized_to_lowercase_and_defaults_to_empty() -> None:
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
def test_value_that_is_not_an_exact_decimal_string_is_rejected(bad: float | int | str, says: str) -> None:
    errors = rejection(intent_doc(value=bad))
    assert set(errors) == {"value"}
    assert says in errors["value"]


def test_value_with_a_trailing_newline_is_rejected() -> None:
    # `$` in the pattern matches before a final "\n", and int() then strips it.
    errors = rejection(intent_doc(value="1\n"))
    assert set(errors) == {"value"}


def test_value_as_a_json_number_is_rejected_on_the_wire() -> None:
    for number in (b"1", b"1e18", b"0.5"):
        raw = orjson.dumps(intent_doc(value=DROP))[:-1] + b',"value":' + number + b"}"
        with pytest.raises(ValidationError) as info:
            TransactionIntent.from_bytes(raw)
        (err,) = info.value.errors()
        assert err["loc"] == ("value",)
        assert "numbers are refused so no float ever touches money" in err["msg"]


def test_value_with_exactly_18_decimals_is_accepted_exactly() -> None:
    intent = TransactionIntent.model_validate(intent_doc(value="0.000000000000000001"))
    assert intent.value_wei == 1
    assert intent.value == "0.000000000000000001"
    intent = TransactionIntent.model_validate(intent_doc(value="1.123456789012345678"))
    assert intent.value_wei == 1_123_456_789_012_345_678


def test_value_zero_is_accepted() -> None:
    intent = TransactionIntent.model_validate(intent_doc(value="0"))
    assert intent.value_wei == 0 and intent.value == "0"


def test_value_is_normalized_to_its_shortest_exact_form() -> None:
    assert TransactionIntent.model_validate(intent_doc(value="1.500")).value == "1.5"
    assert TransactionIntent.model_validate(intent_doc(value="2.000000000000000000")).value == "2"


def test_huge_value_is_exact_as_an_int_with_no_float() -> None:
    text = format_native_amount(MAX_UINT256)
    assert text == "115792089237316195423570985008687907853269984665640564039457.584007913129639935"
    intent = TransactionIntent.model_validate(intent_doc(value=text))
    assert type(intent.value_wei) is int
    assert intent.value_wei == MAX_UINT256
    assert intent.value == text
    # A float would have lost the low digits.
    assert intent.value_wei != int(float(text) * 10**18)


def test_value_beyond_uint256_is_rejected() -> None:
    errors = rejection(
        intent_doc(value="115792089237316195423570985008687907853269984665640564039457.584007913129639936")
    )
    assert "exceeds 2**256-1 wei" in errors["value"]


# --- wei fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["-1", "1.5", "0x10", "1e9", True, 2**256, -1])
def test_wei_fields_refuse_anything_but_a_non_negative_integer(bad: str | bool | int) -> None:
    errors = rejection(intent_doc(tx_type=0, gas_price=bad))
    assert set(errors) == {"gas_price"}
    assert "wei" in errors["gas_price"]


def test_wei_fields_refuse_non_ascii_digits() -> None:
    # str.isdigit() is true for "١٠" (Arabic-Indic ten) and int() parses it: not a wire format.
    errors = rejection(intent_doc(tx_type=0, gas_price="\u0661\u0660"))
    assert set(errors) == {"gas_price"}


def test_wei_fields_accept_decimal_strings_and_integers_exactly() -> None:
    intent = TransactionIntent.model_validate(intent_doc(max_fee_per_gas=str(2**200), max_priority_fee_per_gas=7))
    assert intent.max_fee_per_gas == 2**200 and intent.max_priority_fee_per_gas == 7


# --- chain, tx_type, ids, times, unknown and missing fields --------------------------------------


def test_unknown_chain_is_rejected_listing_the_allowed_chains() -> None:
    errors = rejection(intent_doc(chain="nochain"), ChainRegistry().context)
    assert set(errors) == {"chain"}
    message = errors["chain"]
    assert "unknown chain 'nochain'" in message
    assert "allowed:" in message
    for name in ("ethereum", "base", "sepolia", "anvil", "arbitrum"):
        assert name in message
    assert "admins add one with `warden chains add`, signed by their quorum" in message


def test_a_chain_is_known_while_the_admins_table_in_force_holds_it() -> None:
    registry = ChainRegistry()
    registry.adopt(registry.with_chain(Chain("nochain", 424242, "NOC", "")))
    assert TransactionIntent.model_validate(intent_doc(chain="nochain"), context=registry.context).chain == "nochain"
    registry.adopt(())  # a newer table without it
    assert "unknown chain 'nochain'" in rejection(intent_doc(chain="nochain"), registry.context)["chain"]


def test_policy_allowed_chains_are_checked_against_the_registry() -> None:
    with pytest.raises(ValidationError) as info:
        AgentPolicy.model_validate(
            dict(
                agent_id="a",
                version=1,
                tx_allowed_chains=("base", "nochain"),
                agent_public_key="0x" + "11" * 32,
                issued_at=T0,
            ),
            context=ChainRegistry().context,
        )
    assert "unknown chain 'nochain'" in str(info.value)


def test_without_the_networks_in_force_a_chain_name_is_checked_for_its_form_and_the_built_in_table() -> None:
    """A record read by no one who knows the networks in force (a client's own record read back)
    cannot tell a network the admins added: its name's form is checked, a built-in network's kind
    too, and the reader that knows the registry (the worker's intake, the signer) refuses an
    unknown one."""
    assert TransactionIntent.model_validate(intent_doc(chain="nochain")).chain == "nochain"
    assert "chain name 'No Chain!'" in rejection(intent_doc(chain="No Chain!"))["chain"]
    assert "chain 'solana' is a Solana network" in rejection(intent_doc(chain="solana"))["record"]


def test_an_added_network_s_kind_comes_from_the_networks_in_force() -> None:
    registry = ChainRegistry()
    registry.adopt(registry.with_chain(Chain("mysol", 424243, "SOL", "", key_chain="solana")))
    # Read without them, an EVM transaction on a network that is not built in reads as EVM...
    assert TransactionIntent.model_validate(intent_doc(chain="mysol")).chain == "mysol"
    # ...and the reader that knows mysol is a Solana cluster refuses it.
    assert "chain 'mysol' is a Solana network" in rejection(intent_doc(chain="mysol"), registry.context)["record"]


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
def test_fee_fields_must_match_the_transaction_type(
    fields: dict[str, int | str | list[dict[str, str]]], says: str
) -> None:
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
def test_fee_fields_consistent_with_the_type_are_accepted(
    fields: dict[str, int | str | list[dict[str, str | list[str]]]],
) -> None:
    intent = TransactionIntent.model_validate(intent_doc(**fields))
    assert intent.tx_type == fields["tx_type"]


def test_tx_type_outside_0_to_4_is_rejected() -> None:
    assert set(rejection(intent_doc(tx_type=5))) == {"tx_type"}
    # Types 3 and 4 exist, each only with the fields that make it (tests/unit/test_signing_surface.py).
    assert "needs max_fee_per_blob_gas" in " ".join(rejection(intent_doc(tx_type=3)).values())


def test_storage_keys_must_be_32_bytes() -> None:
    errors = rejection(intent_doc(tx_type=1, access_list=[{"address": OTHER, "storage_keys": ["0x01"]}]))
    assert "each storage key must be 32 bytes" in " ".join(errors.values())


def test_missing_fields_are_each_named() -> None:
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


def test_unknown_extra_field_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError) as info:
        TransactionIntent.model_validate(intent_doc(vaule="1"))
    (err,) = info.value.errors()
    assert err["loc"] == ("vaule",) and err["type"] == "extra_forbidden"
    assert explain(info.value) == (
        "vaule: is not a field of this record (check the spelling; see `warden schemas export`)",
    )


@pytest.mark.parametrize("bad", ["", "-leading-dash", "has space", "x" * 129, "agent-1\n"])
def test_identifiers_are_restricted(bad: str) -> None:
    errors = rejection(intent_doc(agent_id=bad))
    assert set(errors) == {"agent_id"}
    assert "1-128 characters of letters, digits and _.:-" in errors["agent_id"]


def test_naive_datetime_is_rejected_and_aware_ones_become_utc() -> None:
    errors = rejection(intent_doc(created_at="2026-11-21T10:00:00"))
    assert "must carry a timezone" in errors["created_at"]
    intent = TransactionIntent.model_validate(intent_doc(created_at="2026-11-21T12:00:00+02:00"))
    assert intent.created_at == T0 and intent.created_at.utcoffset() == timedelta(0)
