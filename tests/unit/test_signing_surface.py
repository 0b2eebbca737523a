"""Every signing path behind its own guardrails: EIP-191 messages, EIP-712 typed data, blob
(type 3) and set-code (type 4) transactions.

The schema and the pure guardrails are tested alone; then the signer is handed approved records
directly, as a hostile writer to ``warden.intents.approved`` (or a compromised worker) would, to
show that it refuses on its own what the policy does not allow. Signatures it makes are recovered
with eth-account. The pipeline on the real stack is in test_signing_surface_e2e.py.
"""

from __future__ import annotations

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import to_checksum_address
from pydantic import ValidationError

from infra.demo import permit_typed_data
from rules import guardrails
from runtime.clock import utcnow
from schemas.auth import sign_intent
from schemas.models import (
    AgentPolicy,
    Eip712DomainRule,
    Eip712NoValueType,
    IntentRejected,
    SignedMessage,
    SignedTransaction,
    TransactionIntent,
)
from sdk.client import new_message_intent, new_typed_data_intent
from tests.signer_support import DEST, LoneSigner

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SPENDER = "0x000000000000000000000000000000000000bad1"
DELEGATE = to_checksum_address("0x00000000000000000000000000000000de1e9a7e")
ANVIL_ID = 31337


def _policy(**fields) -> AgentPolicy:
    return AgentPolicy(agent_id="a1", version=1, agent_public_key="0x" + "11" * 32, issued_at=utcnow(), **fields)


def _intent(**fields) -> TransactionIntent:
    if "to" in fields and fields.get("intent_type", "transaction") == "transaction":
        fields.setdefault("value", "0")
    return TransactionIntent(intent_id="i1", agent_id="a1", chain="anvil", created_at=utcnow(), **fields)


def _mail(chain_id=ANVIL_ID, contract="0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC") -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Mail": [{"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "chainId": chain_id, "verifyingContract": contract},
        "message": {"contents": "Hello, Bob!"},
    }


# --- the envelope -------------------------------------------------------------------------------


def test_a_transaction_intent_is_the_same_bytes_as_before_the_new_kinds():
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
def test_each_kind_takes_exactly_its_own_fields(fields, error):
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
def test_typed_data_that_would_sign_something_else_is_refused_at_the_schema(change, error):
    document = _mail()
    change(document)
    with pytest.raises(ValidationError) as caught:
        _intent(intent_type="typed_data", typed_data=document)
    assert error in str(caught.value)


# --- the guardrails, pure --------------------------------------------------------------------------


def test_personal_sign_is_off_unless_the_policy_turns_it_on_and_is_bounded():
    intent = _intent(intent_type="personal_sign", message="0x" + "61" * 100)
    assert guardrails.check_message(intent, _policy()).code == "MESSAGE_SIGNING_DISABLED"
    assert (
        guardrails.check_message(intent, _policy(message_signing_enabled=True, message_max_bytes=99)).code
        == "MESSAGE_TOO_LARGE"
    )
    assert guardrails.check_message(intent, _policy(message_signing_enabled=True, message_max_bytes=100)).passed


def test_typed_data_rules():
    def code(document, **policy):
        return guardrails.check_typed_data(
            _intent(intent_type="typed_data", typed_data=document), _policy(**policy)
        ).code

    permit = permit_typed_data(TOKEN, ANVIL_ID, owner=DEST, spender=SPENDER, value=10**18, nonce=0, deadline=2**40)
    # A spend authorization needs its contract allowlisted, whatever the default says.
    assert code(permit) == "EIP712_SPEND_AUTHORIZATION_REFUSED"
    assert code(permit, eip712_default_policy="allow") == "EIP712_SPEND_AUTHORIZATION_REFUSED"
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=SPENDER),))
        == "EIP712_SPEND_AUTHORIZATION_REFUSED"
    )
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN),)) == "EIP712_DOMAIN_ALLOWED"
    )
    # An entry's chain id and name narrow it.
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=1),))
        == "EIP712_SPEND_AUTHORIZATION_REFUSED"
    )
    assert (
        code(permit, eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, name="Other"),))
        == "EIP712_SPEND_AUTHORIZATION_REFUSED"
    )
    assert (
        code(
            permit,
            eip712_domain_allowlist=(
                Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID, name="Warden Demo Token"),
            ),
        )
        == "EIP712_DOMAIN_ALLOWED"
    )
    # Every Permit2 form is a spend authorization too.
    for primary in ("PermitSingle", "PermitBatch", "PermitTransferFrom", "PermitBatchTransferFrom"):
        document = _mail()
        document["types"][primary] = document["types"].pop("Mail")
        document["primaryType"] = primary
        assert code(document, eip712_default_policy="allow") == "EIP712_SPEND_AUTHORIZATION_REFUSED", primary
    # Anything else: deny by default; signed when the policy names the exact (contract, type) as
    # moving nothing, or (a type with no address-and-amount, on no token's domain) the default allows it.
    mail = _mail()["domain"]["verifyingContract"]
    assert code(_mail()) == "EIP712_TYPE_NOT_NAMED"
    assert (
        code(_mail(), eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=mail),)) == "EIP712_TYPE_NOT_NAMED"
    )  # allowlisting a domain no longer means anything under it
    assert (
        code(_mail(), eip712_no_value_types=(Eip712NoValueType(verifying_contract=mail, primary_type="Mail"),))
        == "EIP712_NO_VALUE_TYPE"
    )
    assert (
        code(_mail(), eip712_no_value_types=(Eip712NoValueType(verifying_contract=TOKEN, primary_type="Mail"),))
        == "EIP712_TYPE_NOT_NAMED"
    )
    assert code(_mail(), eip712_default_policy="allow") == "EIP712_DEFAULT_ALLOW"
    assert (
        code(_mail(contract=TOKEN), eip712_default_policy="allow", asset_limits=({"chain": "anvil", "token": TOKEN},))
        == "EIP712_TYPE_NOT_NAMED"
    )
    # A domain for another chain is refused even when everything else would pass.
    assert code(_mail(chain_id=1), eip712_default_policy="allow") == "EIP712_CHAIN_MISMATCH"
    assert code(_mail(chain_id="0x7a69"), eip712_default_policy="allow") == "EIP712_DEFAULT_ALLOW"


def test_delegation_rules():
    def code(chain_id=ANVIL_ID, address=DELEGATE, **policy):
        intent = _intent(to=DEST, tx_type=4, authorization_list=({"chain_id": chain_id, "address": address},))
        return guardrails.check_delegation(intent, _policy(**policy)).code

    assert code() == "EIP7702_DELEGATE_NOT_ALLOWLISTED"  # empty allowlist: none
    assert code(eip7702_delegate_allowlist=(DEST,)) == "EIP7702_DELEGATE_NOT_ALLOWLISTED"
    assert code(eip7702_delegate_allowlist=(DELEGATE,)) == "EIP7702_DELEGATE_ALLOWED"
    assert code(chain_id=0, eip7702_delegate_allowlist=(DELEGATE,)) == "EIP7702_ANY_CHAIN_REFUSED"
    assert (
        code(chain_id=0, eip7702_delegate_allowlist=(DELEGATE,), eip7702_allow_any_chain=True)
        == "EIP7702_DELEGATE_ALLOWED"
    )
    assert code(chain_id=1, eip7702_delegate_allowlist=(DELEGATE,)) == "EIP7702_CHAIN_MISMATCH"


@pytest.fixture
def lone(tmp_path, stack, run):
    signer = LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))

    async def fund():
        try:
            await signer.node.call("anvil_setBalance", signer.address, hex(10**20))
        finally:
            await signer.node.close()

    run(fund())
    return signer


def test_signer_refuses_a_message_its_policy_does_not_allow_and_signs_one_it_does(lone, run):
    hello = lone.intent(new_message_intent, message="hello from an agent")
    refused, _, _ = run(lone.handle(hello))
    assert isinstance(refused, IntentRejected) and refused.code == "MESSAGE_SIGNING_DISABLED"
    assert refused.stage == "signing"

    lone.set_policy(message_signing_enabled=True, message_max_bytes=64)
    too_long = lone.intent(new_message_intent, message="x" * 65)
    refused, _, _ = run(lone.handle(too_long))
    assert refused.code == "MESSAGE_TOO_LARGE"

    again = lone.intent(new_message_intent, message="hello from an agent")
    signed, audits, to_send = run(lone.handle(again))
    assert isinstance(signed, SignedMessage) and to_send is None
    assert signed.kind == "personal_sign" and signed.from_ == lone.address and signed.chain_id == ANVIL_ID
    signable = encode_defunct(text="hello from an agent")
    assert Account.recover_message(signable, signature=bytes.fromhex(signed.signature[2:])) == lone.address
    assert [a.action for a in audits] == ["message.signed"]
    assert audits[0].details["message_hash"] == signed.message_hash
    # A redelivery gets the same signature back (the record is the outcome), never a second one.
    redelivered, _, _ = run(lone.handle(again))
    assert redelivered == signed
    # The refused intent stays refused when redelivered, though the policy now allows messages.
    still, _, _ = run(lone.handle(hello))
    assert isinstance(still, IntentRejected) and still.code == "MESSAGE_SIGNING_DISABLED"


def test_signer_refuses_a_permit_whose_contract_is_not_allowlisted_whatever_the_default(lone, run):
    permit = permit_typed_data(
        TOKEN, ANVIL_ID, owner=lone.address, spender=SPENDER, value=5 * 10**18, nonce=0, deadline=2**40
    )
    lone.set_policy(eip712_default_policy="allow")
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(refused, IntentRejected) and refused.code == "EIP712_SPEND_AUTHORIZATION_REFUSED"

    lone.set_policy(eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID),))
    # Allowlisting the domain is not enough: the token must be an asset of the policy, with room.
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(refused, IntentRejected) and refused.code == "ASSET_NOT_IN_POLICY"
    lone.set_policy(
        eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID),),
        tx_to_allowlist=(DEST, lone.address, SPENDER),
        asset_limits=({"chain": "anvil", "token": TOKEN, "max_per_tx": "5"},),
    )
    signed, audits, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(signed, SignedMessage), signed
    assert (signed.kind, signed.primary_type, signed.verifying_contract) == ("typed_data", "Permit", TOKEN)
    signable = encode_typed_data(full_message=permit)
    assert Account.recover_message(signable, signature=bytes.fromhex(signed.signature[2:])) == lone.address
    details = audits[0].details
    assert (details["kind"], details["primary_type"], details["verifying_contract"]) == ("typed_data", "Permit", TOKEN)

    # A domain for another chain is refused by the signer too, allowlisted contract or not.
    other_chain = permit_typed_data(TOKEN, 1, owner=lone.address, spender=SPENDER, value=1, nonce=0, deadline=1)
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=other_chain)))
    assert refused.code == "EIP712_CHAIN_MISMATCH"

    # Values the schema cannot see are checked when the signer encodes them: refused with the path.
    lone.set_policy(eip712_default_policy="allow")
    bad = _mail()
    bad["types"]["Mail"] = [{"name": "contents", "type": "uint8"}]
    bad["message"] = {"contents": 256}
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=bad)))
    assert refused.code == "TYPED_DATA_INVALID" and "message.contents" in refused.reason


def test_an_unsigned_or_re_signed_intent_of_a_new_kind_is_refused_by_the_signer(lone, run):
    lone.set_policy(message_signing_enabled=True)
    intent = lone.intent(new_message_intent, message="pay me")
    tampered = intent.model_copy(update={"message": "0x" + b"pay mallory".hex()})
    refused, _, _ = run(lone.handle(tampered))
    assert refused.code == "AGENT_SIGNATURE_INVALID"
    forged = sign_intent(intent.model_copy(update={"signature": ""}), Ed25519PrivateKey.generate())
    refused, _, _ = run(lone.handle(forged))
    assert refused.code == "AGENT_SIGNATURE_INVALID"
    # Neither forgery decided the real intent, which came after them with the same id.
    signed, _, _ = run(lone.handle(intent))
    assert isinstance(signed, SignedMessage) and signed.intent_digest == intent.digest()


def test_signer_refuses_a_delegation_its_policy_does_not_allow(lone, run):
    delegation = dict(
        to=lone.address,
        value="0",
        tx_type=4,
        broadcast=False,
        authorization_list=({"chain_id": ANVIL_ID, "address": DELEGATE},),
    )
    refused, _, _ = run(lone.handle(lone.intent(**delegation)))
    assert refused.code == "EIP7702_DELEGATE_NOT_ALLOWLISTED"
    lone.set_policy(eip7702_delegate_allowlist=(DELEGATE,))
    anywhere = dict(delegation, authorization_list=({"chain_id": 0, "address": DELEGATE},))
    refused, _, _ = run(lone.handle(lone.intent(**anywhere)))
    assert refused.code == "EIP7702_ANY_CHAIN_REFUSED"
    # The authorization's nonce is the account's next after the transaction; any other is refused.
    stale = dict(delegation, authorization_list=({"chain_id": ANVIL_ID, "address": DELEGATE, "nonce": 0},))
    refused, _, _ = run(lone.handle(lone.intent(**stale)))
    assert refused.code == "EIP7702_NONCE_MISMATCH" and "is 1" in refused.reason
    signed, audits, _ = run(lone.handle(lone.intent(**delegation)))
    assert isinstance(signed, SignedTransaction) and signed.tx_type == 4 and signed.status == "sign_only"
    raw = bytes.fromhex(signed.signed_tx[2:])
    assert raw[0] == 4 and Account.recover_transaction(raw) == lone.address
    assert audits[0].details["delegates"] == [DELEGATE]
    # The delegation used the next nonce too: the signer's next transaction skips it.
    follow, _, _ = run(lone.handle(lone.intent(to=DEST, value="0", broadcast=False)))
    assert follow.nonce == signed.nonce + 2


def test_signer_refuses_blobs_that_are_not_the_named_hashes(lone, run):
    from evm.blobs import make_sidecar

    blob, other = bytes(131_072), b"\x00\x01" * 65_536
    named = "0x" + make_sidecar((other,)).versioned_hashes[0].hex()
    intent = lone.intent(
        to=DEST,
        value="0",
        tx_type=3,
        max_fee_per_blob_gas=10**9,
        broadcast=True,
        blobs=("0x" + blob.hex(),),
        blob_versioned_hashes=(named,),
    )
    refused, _, _ = run(lone.handle(intent))
    assert refused.code == "BLOB_HASH_MISMATCH" and "blobs[0]" in refused.reason


def test_a_policy_changed_after_its_admin_signed_it_is_refused_though_its_signature_is_the_held_ones(lone, run):
    # The signer checks a policy's signature once, when it adopts it; an approval carrying a policy
    # equal to the held one in every field is not checked again. One field changed (the allowlist,
    # or the version too) must be checked, and fails: the signature is over the original.
    signed, _, _ = run(lone.handle(lone.intent(to=DEST, value="0.001")))
    assert isinstance(signed, SignedTransaction), signed
    mallory = to_checksum_address("0x" + "66" * 20)
    widened = lone.policy.model_copy(update={"tx_to_allowlist": (*lone.policy.tx_to_allowlist, mallory)})
    for tampered in (widened, widened.model_copy(update={"version": lone.policy.version + 1})):
        lone.policy = tampered
        refused, _, to_send = run(lone.handle(lone.intent(to=mallory, value="0.001")))
        assert isinstance(refused, IntentRejected) and refused.code == "POLICY_SIGNATURE_INVALID", refused
        assert to_send is None
