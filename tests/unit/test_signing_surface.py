"""Every signing path behind its own guardrails: EIP-191 messages, EIP-712 typed data, blob
(type 3) and set-code (type 4) transactions.

The schema and the pure guardrails are tested alone; then the signer is handed approved records
directly, as a hostile writer to ``warden.intents.approved`` (or a compromised worker) would, to
show that it refuses on its own what the policy does not allow. Signatures it makes are recovered
with eth-account. The pipeline on the real stack is in tests/stack/test_signing_surface_e2e.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from infra.stack.demo_script import permit_typed_data
from rules import guardrails
from runtime.clock import utcnow
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy, Eip712DomainRule, Eip712NoValueType
from tests.signer_support import ANVIL_ID, DELEGATE, DEST, SPENDER, TOKEN, mail_document


def _policy(**fields: Any) -> AgentPolicy:
    return AgentPolicy(agent_id="a1", version=1, agent_public_key="0x" + "11" * 32, issued_at=utcnow(), **fields)


def _intent(**fields: Any) -> TransactionIntent:
    if "to" in fields and fields.get("intent_type", "transaction") == "transaction":
        fields.setdefault("value", "0")
    return TransactionIntent(intent_id="i1", agent_id="a1", chain="anvil", created_at=utcnow(), **fields)


def test_a_transaction_intent_is_the_same_bytes_as_before_the_new_kinds() -> None:
    # The first version's wire form and signing bytes: no key the new kinds added appears, so an
    # agent that signs as before still verifies, and a reader of the first version still reads it.
    intent = _intent(to=DEST, value="0.5")
    wire = orjson.loads(intent.to_bytes())
    signed = orjson.loads(intent.signing_bytes())
    new = {
        "intent_type",
        "message",
        "typed_data",
        "max_fee_per_blob_gas",
        "blob_versioned_hashes",
        "blobs",
        "authorization_list",
    }
    assert not new & set(wire) and not new & set(signed)
    assert TransactionIntent.from_bytes(intent.to_bytes()) == intent
    policy = _policy()
    assert not {"message_signing_enabled", "eip712_domain_allowlist", "eip7702_delegate_allowlist"} & set(
        orjson.loads(policy.signing_bytes())
    )
    # ... and a policy that uses them signs them.
    assert orjson.loads(_policy(message_signing_enabled=True).signing_bytes())["message_signing_enabled"] is True


@pytest.mark.parametrize(
    "fields, error",
    [
        (dict(intent_type="personal_sign"), "needs message"),
        (dict(intent_type="personal_sign", message="0x68", to=DEST), "to belong"),
        (dict(intent_type="personal_sign", message="0x68", broadcast=True), "broadcast belong"),
        (dict(intent_type="personal_sign", message="0x" + "00" * 16_385), "at most 16384"),
        (dict(intent_type="typed_data", message="0x68"), "needs typed_data"),
        (dict(to=DEST, value="0", message="0x68"), "message and typed_data are for"),
        (dict(value="1"), "to is required"),
        (dict(to=DEST, tx_type=3, blob_versioned_hashes=("0x01" + "00" * 31,)), "needs max_fee_per_blob_gas"),
        (dict(to=DEST, tx_type=3, max_fee_per_blob_gas=1), "needs 1 to 6 blob_versioned_hashes"),
        (
            dict(to=DEST, tx_type=3, max_fee_per_blob_gas=1, blob_versioned_hashes=("0x02" + "00" * 31,)),
            "starting with the KZG version byte 0x01",
        ),
        (
            dict(
                to=DEST,
                tx_type=3,
                max_fee_per_blob_gas=1,
                blob_versioned_hashes=tuple("0x01" + f"{i:02x}" * 31 for i in range(7)),
            ),
            "at most 6",
        ),
        (
            dict(
                to=DEST, tx_type=3, max_fee_per_blob_gas=1, blob_versioned_hashes=("0x01" + "00" * 31,), broadcast=True
            ),
            "broadcast with its blobs",
        ),
        (
            dict(
                to=DEST, tx_type=3, max_fee_per_blob_gas=1, blob_versioned_hashes=("0x01" + "00" * 31,), blobs=("0x00",)
            ),
            "a blob is exactly 131072 bytes",
        ),
        (dict(to=DEST, tx_type=2, max_fee_per_blob_gas=1), "are for tx_type 3"),
        (dict(to=DEST, tx_type=4), "needs an authorization_list"),
        (dict(to=DEST, tx_type=2, authorization_list=({"chain_id": 1, "address": DELEGATE},)), "for tx_type 4"),
        (dict(to=DEST, tx_type=4, authorization_list=({"chain_id": 1, "address": DELEGATE},) * 2), "at most 1"),
        (
            dict(to=DEST, tx_type=4, gas_price=1, authorization_list=({"chain_id": 1, "address": DELEGATE},)),
            "gas_price is for tx_type 0/1",
        ),
    ],
)
def test_each_kind_takes_exactly_its_own_fields(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _intent(**fields)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda d: d["domain"].update(salt="0x" + "00" * 32), "must match, or a domain value would go unsigned"),
        (lambda d: d["message"].update(contents=1.5), "numbers with a fraction"),
        (lambda d: d["message"].update(contents=2**53), "past 2**53-1"),
        (lambda d: d.update(primaryType="Nope"), "primaryType 'Nope'"),
        (lambda d: d["types"].pop("EIP712Domain"), "EIP712Domain is missing"),
        (lambda d: d["types"]["EIP712Domain"].append({"name": "chain", "type": "uint256"}), "the domain's fields are"),
        (lambda d: d["types"]["Mail"].append({"name": "contents", "type": "string"}), "appears twice"),
        (lambda d: d["domain"].update(verifyingContract="0x1234"), "20-byte hex address"),
    ],
)
def test_typed_data_that_would_sign_something_else_is_refused_at_the_schema(
    change: Callable[[dict[str, Any]], object], error: str
) -> None:
    document = mail_document()
    change(document)
    with pytest.raises(ValidationError) as caught:
        _intent(intent_type="typed_data", typed_data=document)
    assert error in str(caught.value)


# --- the guardrails, pure --------------------------------------------------------------------------


def test_personal_sign_is_off_unless_the_policy_turns_it_on_and_is_bounded() -> None:
    intent = _intent(intent_type="personal_sign", message="0x" + "61" * 100)
    assert guardrails.check_message(intent, _policy()).code == Code.MESSAGE_SIGNING_DISABLED
    assert (
        guardrails.check_message(intent, _policy(message_signing_enabled=True, message_max_bytes=99)).code
        == Code.MESSAGE_TOO_LARGE
    )
    assert guardrails.check_message(intent, _policy(message_signing_enabled=True, message_max_bytes=100)).passed


def test_typed_data_rules() -> None:
    def code(document: dict[str, Any], **policy: Any) -> Code:
        return guardrails.check_typed_data(
            _intent(intent_type="typed_data", typed_data=document), _policy(**policy), ANVIL_ID
        ).code

    permit = permit_typed_data(TOKEN, ANVIL_ID, owner=DEST, spender=SPENDER, value=10**18, nonce=0, deadline=2**40)
    # A spend authorization needs its contract allowlisted, whatever the default says.
    assert code(permit) == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    assert code(permit, eip712_default_policy="allow") == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=SPENDER),))
        == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    )
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN),))
        == Code.EIP712_DOMAIN_ALLOWED
    )
    # An entry's chain id and name narrow it.
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=1),))
        == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    )
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, name="Other"),))
        == Code.EIP712_SPEND_AUTHORIZATION_REFUSED
    )
    assert (
        code(
            permit,
            eip712_domain_allowlist=(
                Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID, name="Warden Demo Token"),
            ),
        )
        == Code.EIP712_DOMAIN_ALLOWED
    )
    # Every Permit2 form is a spend authorization too.
    for primary in ("PermitSingle", "PermitBatch", "PermitTransferFrom", "PermitBatchTransferFrom"):
        document = mail_document()
        document["types"][primary] = document["types"].pop("Mail")
        document["primaryType"] = primary
        assert code(document, eip712_default_policy="allow") == Code.EIP712_SPEND_AUTHORIZATION_REFUSED, primary
    # Anything else: deny by default; signed when the policy names the exact (contract, type) as
    # moving nothing, or (a type with no address-and-amount, on no token's domain) the default allows it.
    mail = mail_document()["domain"]["verifyingContract"]
    assert code(mail_document()) == Code.EIP712_TYPE_NOT_NAMED
    assert (
        code(mail_document(), eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=mail),))
        == Code.EIP712_TYPE_NOT_NAMED
    )  # allowlisting a domain no longer means anything under it
    assert (
        code(mail_document(), eip712_no_value_types=(Eip712NoValueType(verifying_contract=mail, primary_type="Mail"),))
        == Code.EIP712_NO_VALUE_TYPE
    )
    assert (
        code(mail_document(), eip712_no_value_types=(Eip712NoValueType(verifying_contract=TOKEN, primary_type="Mail"),))
        == Code.EIP712_TYPE_NOT_NAMED
    )
    assert code(mail_document(), eip712_default_policy="allow") == Code.EIP712_DEFAULT_ALLOW
    assert (
        code(
            mail_document(contract=TOKEN),
            eip712_default_policy="allow",
            asset_limits=({"chain": "anvil", "token": TOKEN},),
        )
        == Code.EIP712_TYPE_NOT_NAMED
    )
    # A domain for another chain is refused even when everything else would pass.
    assert code(mail_document(chain_id=1), eip712_default_policy="allow") == Code.EIP712_CHAIN_MISMATCH
    hex_chain_id = mail_document()
    hex_chain_id["domain"]["chainId"] = "0x7a69"  # ANVIL_ID as a hex string
    assert code(hex_chain_id, eip712_default_policy="allow") == Code.EIP712_DEFAULT_ALLOW


def test_delegation_rules() -> None:
    def code(chain_id: int = ANVIL_ID, address: str = DELEGATE, **policy: Any) -> Code:
        intent = _intent(to=DEST, tx_type=4, authorization_list=({"chain_id": chain_id, "address": address},))
        return guardrails.check_delegation(intent, _policy(**policy), ANVIL_ID).code

    assert code() == Code.EIP7702_DELEGATE_NOT_ALLOWLISTED  # empty allowlist: none
    assert code(eip7702_delegate_allowlist=(DEST,)) == Code.EIP7702_DELEGATE_NOT_ALLOWLISTED
    assert code(eip7702_delegate_allowlist=(DELEGATE,)) == Code.EIP7702_DELEGATE_ALLOWED
    assert code(chain_id=0, eip7702_delegate_allowlist=(DELEGATE,)) == Code.EIP7702_ANY_CHAIN_REFUSED
    assert (
        code(chain_id=0, eip7702_delegate_allowlist=(DELEGATE,), eip7702_allow_any_chain=True)
        == Code.EIP7702_DELEGATE_ALLOWED
    )
    assert code(chain_id=1, eip7702_delegate_allowlist=(DELEGATE,)) == Code.EIP7702_CHAIN_MISMATCH
