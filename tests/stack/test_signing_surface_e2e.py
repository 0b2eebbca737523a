"""Messages, typed data, blob and set-code transactions through the whole pipeline on the real
embedded stack: the worker's guardrails, the signer, the outcome topics, Anvil and the audit trail.
Signatures are recovered with eth-account; Anvil mines the transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.structs import TopicPartition
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import to_checksum_address

from evm.constants import GAS_PER_BLOB
from infra.stack.demo_script import permit_typed_data
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedMessage, SignedTransaction
from schemas.policy import Eip712DomainRule
from schemas.stages import Stage
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    Outcome,
    blob_fields,
    new_intent,
    new_message_intent,
    new_typed_data_intent,
    wait_outcomes,
)
from tests.support import make_agent, read_topic

ANVIL_ID = 31337
TOKEN = to_checksum_address("0x0000000000000000000000000000000000700c3a")
OTHER_TOKEN = "0x0000000000000000000000000000000000700c3b"
SPENDER = "0x000000000000000000000000000000000000bad1"
CAROL = "0x000000000000000000000000000000000000ca01"
# EVM code that answers every call with the word 42: PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN.
ANSWER_42 = "0x602a60005260206000f3"
DELEGATE = to_checksum_address("0x00000000000000000000000000000000de1e9a7e")


async def _submit(
    settings: Settings, intents: list[TransactionIntent], timeout_s: float = 30.0
) -> tuple[dict[str, Outcome], dict[TopicPartition, int]]:
    start = await end_offsets(settings, OUTCOME_TOPICS + (topics.AUDIT_EVENTS,))
    async with Client(settings) as client:
        for intent in intents:
            await client.submit(intent)
    outcomes = await wait_outcomes(settings, intents, timeout_s, start)
    return outcomes, start


def test_messages_and_typed_data_are_signed_only_as_their_policy_allows(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings

    async def scenario() -> tuple[
        str, dict[str, TransactionIntent], dict[str, Outcome], list[AuditEvent], dict[str, Any]
    ]:
        key, address, _ = await make_agent(
            settings,
            "surface-msg",
            message_signing_enabled=True,
            message_max_bytes=256,
            eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN, chain_id=ANVIL_ID),),
            asset_limits=({"chain": "anvil", "token": TOKEN, "max_per_tx": "1"},),
        )
        closed_key, _, _ = await make_agent(settings, "surface-closed")
        ask: dict[str, Any] = dict(agent_id="surface-msg", chain="anvil")
        permit = permit_typed_data(
            TOKEN, ANVIL_ID, owner=address, spender=SPENDER, value=10**18, nonce=0, deadline=2**40
        )
        elsewhere = permit_typed_data(
            OTHER_TOKEN, ANVIL_ID, owner=address, spender=SPENDER, value=1, nonce=0, deadline=2**40
        )
        intents = {
            "hello": new_message_intent(key, message="hello, warden", idempotency_key="greeting", **ask),
            "hello-again": new_message_intent(
                key, message="hello, warden", idempotency_key="greeting", intent_id="raw-retry-greeting", **ask
            ),
            "long": new_message_intent(key, message="x" * 257, **ask),
            "permit": new_typed_data_intent(key, typed_data=permit, **ask),
            "permit-elsewhere": new_typed_data_intent(key, typed_data=elsewhere, **ask),
            "closed": new_message_intent(closed_key, agent_id="surface-closed", chain="anvil", message="hi"),
        }
        outcomes, start = await _submit(settings, list(intents.values()))
        await asyncio.sleep(0.5)
        audits = [e for v in await read_topic(settings, topics.AUDIT_EVENTS, start=start) for e in audit_events_of(v)]
        return address, intents, outcomes, audits, permit

    address, intents, outcomes, audits, permit = run(scenario())
    got = {name: outcomes[intent.intent_id] for name, intent in intents.items()}
    rejected = {name: (o.stage, o.code) for name, o in got.items() if isinstance(o, IntentRejected)}
    assert rejected == {
        "long": ("message", Code.MESSAGE_TOO_LARGE),
        "permit-elsewhere": ("typed_data", Code.EIP712_SPEND_AUTHORIZATION_REFUSED),
        "closed": ("message", Code.MESSAGE_SIGNING_DISABLED),
    }
    hello, again, signed_permit = got["hello"], got["hello-again"], got["permit"]
    for outcome in (hello, again, signed_permit):
        assert isinstance(outcome, SignedMessage) and outcome.from_ == address and outcome.tee == "none"
    assert (
        Account.recover_message(encode_defunct(text="hello, warden"), signature=bytes.fromhex(hello.signature[2:]))
        == address
    )
    # The same idempotency key under another id: the first signature, not a second one.
    assert again.signature == hello.signature and again.intent_id == "raw-retry-greeting"
    assert (
        Account.recover_message(
            encode_typed_data(full_message=permit), signature=bytes.fromhex(signed_permit.signature[2:])
        )
        == address
    )
    assert (signed_permit.primary_type, signed_permit.verifying_contract) == ("Permit", TOKEN)

    # The trail: what was asked, then what was signed, with its hash and, for typed data, what for.
    def trail(name: str) -> list[AuditEvent]:
        return [e for e in audits if e.intent_id == intents[name].intent_id]

    submitted = next(e for e in trail("permit") if e.action == AuditAction.INTENT_SUBMITTED).details
    assert (submitted["kind"], submitted["primary_type"], submitted["verifying_contract"]) == (
        "typed_data",
        "Permit",
        TOKEN,
    )
    signed = next(e for e in trail("permit") if e.action == AuditAction.MESSAGE_SIGNED).details
    assert signed["message_hash"] == signed_permit.message_hash and signed["verifying_contract"] == TOKEN
    assert signed["kind"] == "typed_data" and signed["domain_separator"] == signed_permit.domain_separator
    assert next(e for e in trail("hello") if e.action == AuditAction.MESSAGE_SIGNED).details["kind"] == "personal_sign"
    assert not any(e.action == AuditAction.MESSAGE_SIGNED for name in rejected for e in trail(name))


def test_a_delegation_is_mined_and_the_account_then_runs_the_delegates_code(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings

    async def scenario() -> tuple[str, list[Outcome], str, str, Outcome]:
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            await node.call("anvil_setCode", DELEGATE, ANSWER_42)
            key, address, _ = await make_agent(settings, "surface-7702", eip7702_delegate_allowlist=(DELEGATE,))
            ask: dict[str, Any] = dict(agent_id="surface-7702", chain="anvil", broadcast=True)
            delegation = new_intent(
                key,
                to=address,
                value="0",
                tx_type=4,
                authorization_list=({"chain_id": ANVIL_ID, "address": DELEGATE},),
                **ask,
            )
            elsewhere = new_intent(
                key,
                to=address,
                value="0",
                tx_type=4,
                authorization_list=({"chain_id": ANVIL_ID, "address": SPENDER},),
                **ask,
            )
            anywhere = new_intent(
                key, to=address, value="0", tx_type=4, authorization_list=({"chain_id": 0, "address": DELEGATE},), **ask
            )
            outcomes, _ = await _submit(settings, [delegation, elsewhere, anywhere])
            code = await node.call("eth_getCode", address, "latest")
            answer = await node.call("eth_call", {"to": address, "data": "0x"}, "latest")
            # The delegation took two nonces (the transaction's and the authorization's); the next
            # transfer is signed at the one after, and mined.
            after, _ = await _submit(settings, [new_intent(key, to=CAROL, value="0.001", **ask)])
            return (
                address,
                [outcomes[i.intent_id] for i in (delegation, elsewhere, anywhere)],
                code,
                answer,
                next(iter(after.values())),
            )
        finally:
            await node.close()

    address, (mined, elsewhere, anywhere), code, answer, transfer = run(scenario())
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert mined.tx_type == 4 and Account.recover_transaction(mined.signed_tx) == address
    assert code == "0xef0100" + DELEGATE[2:].lower()
    assert int(answer, 16) == 42
    assert (elsewhere.stage, elsewhere.code) == (Stage.DELEGATION, Code.EIP7702_DELEGATE_NOT_ALLOWLISTED)
    assert (anywhere.stage, anywhere.code) == (Stage.DELEGATION, Code.EIP7702_ANY_CHAIN_REFUSED)
    assert transfer.status == "mined" and transfer.nonce == mined.nonce + 2


def test_a_blob_transaction_is_mined_with_its_blobs_and_its_blob_gas_counts_as_spend(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings
    blob = bytes(range(256)) * 512  # 131072 bytes; every 32-byte field element below the BLS modulus
    blob = b"".join(b"\x00" + blob[i + 1 : i + 32] for i in range(0, len(blob), 32))
    cap_wei = 10**16

    async def scenario() -> tuple[str, TransactionIntent, list[Outcome], dict[str, Any], dict[str, Any]]:
        key, address, _ = await make_agent(settings, "surface-4844", tx_max_value_eth="0.01")
        ask: dict[str, Any] = dict(agent_id="surface-4844", chain="anvil", to=CAROL, value="0")
        carried = new_intent(key, max_fee_per_blob_gas=10**9, broadcast=True, **blob_fields([blob]), **ask)
        hashes_only = new_intent(
            key, tx_type=3, max_fee_per_blob_gas=10**9, blob_versioned_hashes=carried.blob_versioned_hashes, **ask
        )
        # Value 0 and a cheap gas fee, but its blob gas alone (131072 x max fee per blob gas) is over the cap.
        too_dear = new_intent(
            key,
            tx_type=3,
            max_fee_per_blob_gas=cap_wei // GAS_PER_BLOB + 1,
            blob_versioned_hashes=carried.blob_versioned_hashes,
            **ask,
        )
        outcomes, _ = await _submit(settings, [carried, hashes_only, too_dear], timeout_s=60)
        node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            mined = outcomes[carried.intent_id]
            assert isinstance(mined, SignedTransaction), mined
            receipt = await node.call("eth_getTransactionReceipt", mined.tx_hash)
            on_chain = await node.call("eth_getTransactionByHash", mined.tx_hash)
        finally:
            await node.close()
        return address, carried, [outcomes[i.intent_id] for i in (carried, hashes_only, too_dear)], receipt, on_chain

    address, carried, (mined, sign_only, too_dear), receipt, on_chain = run(scenario())
    assert isinstance(mined, SignedTransaction) and mined.status == "mined", mined
    assert mined.tx_type == 3 and Account.recover_transaction(mined.signed_tx) == address
    assert int(receipt["blobGasUsed"], 16) == GAS_PER_BLOB
    assert on_chain["blobVersionedHashes"] == list(carried.blob_versioned_hashes)
    # The fee reported is what the chain took: gas and blob gas.
    assert mined.fee_wei == (
        int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        + GAS_PER_BLOB * int(receipt["blobGasPrice"], 16)
    )
    assert mined.max_spend_wei >= GAS_PER_BLOB * 10**9
    assert sign_only.status == "sign_only" and Account.recover_transaction(sign_only.signed_tx) == address
    assert isinstance(too_dear, IntentRejected) and (too_dear.stage, too_dear.code) == (
        Stage.VALUE_CAP,
        Code.VALUE_OVER_CAP,
    )
    assert "blob gas" in too_dear.reason


def test_warden_sign_asks_for_each_kind_and_prints_the_outcome(
    stack: LocalStack, run: Callable[..., Any], tmp_path: Path
) -> None:
    from tests.support import warden

    settings = stack.settings
    _, address, _ = run(
        make_agent(
            settings,
            "surface-cli",
            message_signing_enabled=True,
            eip712_domain_allowlist=(Eip712DomainRule(verifying_contract=TOKEN),),
            asset_limits=({"chain": "anvil", "token": TOKEN, "max_per_tx": "1"},),
            eip7702_delegate_allowlist=(DELEGATE,),
        )
    )
    ask = ("--agent", "surface-cli", "--chain", "anvil", "--json")
    message = warden(settings, "sign", "message", "--text", "signed from the CLI", *ask)
    assert message.returncode == 0, message.stderr
    outcome = orjson.loads(message.stdout)["outcome"]
    assert (
        Account.recover_message(
            encode_defunct(text="signed from the CLI"), signature=bytes.fromhex(outcome["signature"][2:])
        )
        == address
    )
    document = tmp_path / "permit.json"
    document.write_bytes(
        orjson.dumps(
            permit_typed_data(TOKEN, ANVIL_ID, owner=address, spender=SPENDER, value=1, nonce=0, deadline=2**40)
        )
    )
    typed = warden(settings, "sign", "typed-data", "--file", str(document), *ask)
    assert typed.returncode == 0, typed.stderr
    assert orjson.loads(typed.stdout)["outcome"]["primary_type"] == "Permit"
    delegation = warden(settings, "sign", "tx", "--to", address, "--value", "0", "--delegate", DELEGATE, *ask)
    assert delegation.returncode == 0, delegation.stderr
    signed = orjson.loads(delegation.stdout)["outcome"]
    assert signed["tx_type"] == 4 and signed["status"] == "sign_only"
    assert Account.recover_transaction(signed["signed_tx"]) == address
    # Human output, and a clear refusal of a message asked for without one.
    human = warden(settings, "sign", "message", "--hex", "0x00ff", "--agent", "surface-cli", "--chain", "anvil")
    assert human.returncode == 0 and Code.SIGNED in human.stdout and "personal_sign" in human.stdout, human.stdout
    missing = warden(settings, "sign", "message", *ask)
    assert missing.returncode == 2 and "--text" in missing.stderr
