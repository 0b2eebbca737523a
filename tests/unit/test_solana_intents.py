"""Solana intents at their fields: the kind, the network and the transaction must agree, and an
intent says nothing an EVM intent says."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from schemas.intent import TransactionIntent
from sdk import solana as sol
from sdk.client import new_intent, new_solana_intent

KEY = Ed25519PrivateKey.generate()
AGENT, ALICE = Keypair().pubkey(), Keypair().pubkey()
RECENT = Hash.new_unique()
RAW = sol.unsigned(AGENT, [sol.sol_transfer(AGENT, ALICE, 1)], RECENT)
NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def solana(**fields: Any) -> TransactionIntent:
    base = dict(
        intent_id="i-1",
        agent_id="a-1",
        chain="solana-local",
        intent_type="solana_transaction",
        solana_transaction=base64.b64encode(RAW).decode(),
        created_at=NOW,
    )
    return TransactionIntent(**{**base, **fields})


def test_a_solana_intent_carries_its_transaction_in_its_signing_bytes() -> None:
    intent = new_solana_intent(KEY, agent_id="a-1", chain="solana-local", transaction=RAW)
    assert intent.solana_transaction_bytes == RAW
    assert b'"solana_transaction":"' in intent.signing_bytes()
    more = sol.unsigned(AGENT, [sol.sol_transfer(AGENT, ALICE, 2)], RECENT)
    other = new_solana_intent(KEY, agent_id="a-1", chain="solana-local", transaction=more)
    assert intent.request_fields()["solana_transaction"] != other.request_fields()["solana_transaction"]


@pytest.mark.parametrize(
    "fields, words",
    [
        (
            {"chain": "anvil"},
            "chain 'anvil' is an EVM network: its intents are intent_type transaction, personal_sign or typed_data .* a solana_transaction names a Solana network",
        ),
        ({"intent_type": "transaction"}, "its intents are intent_type solana_transaction"),
        ({"solana_transaction": None}, "needs solana_transaction"),
        ({"solana_transaction": "not base64!"}, "not base64"),
        ({"solana_transaction": base64.b64encode(b"\x01\x02").decode()}, "not a Solana transaction"),
        ({"to": "0x" + "11" * 20}, "belong to an EVM intent"),
        ({"gas_limit": 21000}, "belong to an EVM intent"),
        ({"message": "0x00"}, "belong to an EVM intent"),
    ],
)
def test_what_does_not_agree_is_refused_with_what_to_do(fields: dict[str, str | int | None], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        solana(**fields)


def test_an_evm_intent_names_no_solana_network_nor_transaction() -> None:
    with pytest.raises(ValidationError, match="is a Solana network"):
        new_intent(KEY, agent_id="a-1", chain="solana", to="0x" + "11" * 20, value="1")
    with pytest.raises(
        ValidationError,
        match="solana_transaction, solana_message and bitcoin_psbt are for the intent_type of the same name only",
    ):
        new_intent(KEY, agent_id="a-1", chain="anvil", to="0x" + "11" * 20, value="1", solana_transaction="AA==")


def test_broadcast_and_simulate_first_are_a_solana_intents_to_ask() -> None:
    assert solana(broadcast=True, simulate_first=True).broadcast


def test_a_transaction_with_address_lookup_tables_is_refused_at_intake() -> None:
    table = AddressLookupTableAccount(Keypair().pubkey(), [ALICE])
    message = MessageV0.try_compile(AGENT, [sol.sol_transfer(AGENT, ALICE, 1)], [table], Hash.new_unique())
    raw = bytes(VersionedTransaction.populate(message, [Signature.default()]))
    with pytest.raises(ValidationError, match="address lookup tables"):
        solana(solana_transaction=base64.b64encode(raw).decode())


def test_a_parked_solana_intent_is_reported_awaiting_approval_not_as_no_outcome() -> None:
    """What MCP and HTTP answer for a Solana intent an admin must approve first."""
    from datetime import timedelta

    from schemas.outcomes import IntentParked
    from sdk.transaction_results import solana_transaction_of

    intent = solana()
    parked = IntentParked.model_construct(
        intent_id=intent.intent_id,
        agent_id=intent.agent_id,
        reason="above the threshold",
        parked_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        intent=intent,
    )
    found = solana_transaction_of(intent.intent_id, intent.agent_id, intent.chain, "k", parked, 0)
    assert found.status == "awaiting_approval" and found.awaiting_approval is not None
    assert found.awaiting_approval.reason == "above the threshold"
