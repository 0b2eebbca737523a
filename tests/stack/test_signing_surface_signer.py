"""The signer's own refusals of messages, typed data, delegations and blobs its policy does not
allow, each sent straight to it on the session stack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import to_checksum_address

from infra.stack.demo_script import permit_typed_data
from infra.stack.local import LocalStack
from schemas.actions import AuditAction
from schemas.auth import sign_intent
from schemas.codes import Code
from schemas.outcomes import IntentRejected, SignedMessage, SignedTransaction
from schemas.policy import Eip712DomainRule
from schemas.stages import Stage
from sdk.client import new_message_intent, new_typed_data_intent
from tests.signer_support import ANVIL_ID, DELEGATE, DEST, SPENDER, TOKEN, LoneSigner, mail_document


@pytest.fixture
def lone(tmp_path: Path, stack: LocalStack, run: Callable[..., Any]) -> LoneSigner:
    signer = LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))

    async def fund() -> None:
        try:
            await signer.node.call("anvil_setBalance", signer.address, hex(10**20))
        finally:
            await signer.node.close()

    run(fund())
    return signer


def test_signer_refuses_a_message_its_policy_does_not_allow_and_signs_one_it_does(
    lone: LoneSigner, run: Callable[..., Any]
) -> None:
    hello = lone.intent(new_message_intent, message="hello from an agent")
    refused, _, _ = run(lone.handle(hello))
    assert isinstance(refused, IntentRejected) and refused.code == Code.MESSAGE_SIGNING_DISABLED
    assert refused.stage == Stage.SIGNING

    lone.set_policy(message_signing_enabled=True, message_max_bytes=64)
    too_long = lone.intent(new_message_intent, message="x" * 65)
    refused, _, _ = run(lone.handle(too_long))
    assert refused.code == Code.MESSAGE_TOO_LARGE

    again = lone.intent(new_message_intent, message="hello from an agent")
    signed, audits, to_send = run(lone.handle(again))
    assert isinstance(signed, SignedMessage) and to_send is None
    assert signed.kind == "personal_sign" and signed.from_ == lone.address and signed.chain_id == ANVIL_ID
    signable = encode_defunct(text="hello from an agent")
    assert Account.recover_message(signable, signature=bytes.fromhex(signed.signature[2:])) == lone.address
    assert [a.action for a in audits] == [AuditAction.MESSAGE_SIGNED]
    assert audits[0].details["message_hash"] == signed.message_hash
    # A redelivery gets the same signature back (the record is the outcome), never a second one.
    redelivered, _, _ = run(lone.handle(again))
    assert redelivered == signed
    # The refused intent stays refused when redelivered, though the policy now allows messages.
    still, _, _ = run(lone.handle(hello))
    assert isinstance(still, IntentRejected) and still.code == Code.MESSAGE_SIGNING_DISABLED


def test_signer_refuses_a_permit_whose_contract_is_not_allowlisted_whatever_the_default(
    lone: LoneSigner, run: Callable[..., Any]
) -> None:
    permit = permit_typed_data(
        TOKEN, ANVIL_ID, owner=lone.address, spender=SPENDER, value=5 * 10**18, nonce=0, deadline=2**40
    )
    lone.set_policy(eip712_default_policy="allow")
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(refused, IntentRejected) and refused.code == Code.EIP712_SPEND_AUTHORIZATION_REFUSED

    lone.set_policy(eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID),))
    # Allowlisting the domain is not enough: the token must be an asset of the policy, with room.
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=permit)))
    assert isinstance(refused, IntentRejected) and refused.code == Code.ASSET_NOT_IN_POLICY
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
    assert refused.code == Code.EIP712_CHAIN_MISMATCH

    # Values the schema cannot see are checked when the signer encodes them: refused with the path.
    lone.set_policy(eip712_default_policy="allow")
    bad = mail_document()
    bad["types"]["Mail"] = [{"name": "contents", "type": "uint8"}]
    bad["message"] = {"contents": 256}
    refused, _, _ = run(lone.handle(lone.intent(new_typed_data_intent, typed_data=bad)))
    assert refused.code == Code.TYPED_DATA_INVALID and "message.contents" in refused.reason


def test_an_unsigned_or_re_signed_intent_of_a_new_kind_is_refused_by_the_signer(
    lone: LoneSigner, run: Callable[..., Any]
) -> None:
    lone.set_policy(message_signing_enabled=True)
    intent = lone.intent(new_message_intent, message="pay me")
    tampered = intent.model_copy(update={"message": "0x" + b"pay mallory".hex()})
    refused, _, _ = run(lone.handle(tampered))
    assert refused.code == Code.AGENT_SIGNATURE_INVALID
    forged = sign_intent(intent.model_copy(update={"signature": ""}), Ed25519PrivateKey.generate())
    refused, _, _ = run(lone.handle(forged))
    assert refused.code == Code.AGENT_SIGNATURE_INVALID
    # Neither forgery decided the real intent, which came after them with the same id.
    signed, _, _ = run(lone.handle(intent))
    assert isinstance(signed, SignedMessage) and signed.intent_digest == intent.digest()


def test_signer_refuses_a_delegation_its_policy_does_not_allow(lone: LoneSigner, run: Callable[..., Any]) -> None:
    delegation: dict[str, Any] = dict(
        to=lone.address,
        value="0",
        tx_type=4,
        broadcast=False,
        authorization_list=({"chain_id": ANVIL_ID, "address": DELEGATE},),
    )
    refused, _, _ = run(lone.handle(lone.intent(**delegation)))
    assert refused.code == Code.EIP7702_DELEGATE_NOT_ALLOWLISTED
    lone.set_policy(eip7702_delegate_allowlist=(DELEGATE,))
    anywhere = dict(delegation, authorization_list=({"chain_id": 0, "address": DELEGATE},))
    refused, _, _ = run(lone.handle(lone.intent(**anywhere)))
    assert refused.code == Code.EIP7702_ANY_CHAIN_REFUSED
    # The authorization's nonce is the account's next after the transaction; any other is refused.
    stale = dict(delegation, authorization_list=({"chain_id": ANVIL_ID, "address": DELEGATE, "nonce": 0},))
    refused, _, _ = run(lone.handle(lone.intent(**stale)))
    assert refused.code == Code.EIP7702_NONCE_MISMATCH and "is 1" in refused.reason
    signed, audits, _ = run(lone.handle(lone.intent(**delegation)))
    assert isinstance(signed, SignedTransaction) and signed.tx_type == 4 and signed.status == "sign_only"
    raw = bytes.fromhex(signed.signed_tx[2:])
    assert raw[0] == 4 and Account.recover_transaction(raw) == lone.address
    assert audits[0].details["delegates"] == [DELEGATE]
    # The delegation used the next nonce too: the signer's next transaction skips it.
    follow, _, _ = run(lone.handle(lone.intent(to=DEST, value="0", broadcast=False)))
    assert follow.nonce == signed.nonce + 2


def test_signer_refuses_blobs_that_are_not_the_named_hashes(lone: LoneSigner, run: Callable[..., Any]) -> None:
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
    assert refused.code == Code.BLOB_HASH_MISMATCH and "blobs[0]" in refused.reason


def test_a_policy_changed_after_its_admin_signed_it_is_refused_though_its_signature_is_the_held_ones(
    lone: LoneSigner, run: Callable[..., Any]
) -> None:
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
        assert isinstance(refused, IntentRejected) and refused.code == Code.POLICY_SIGNATURE_INVALID, refused
        assert to_send is None
