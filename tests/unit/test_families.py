"""A chain family's seam: each kind of intent belongs to one family, and each layer (reading,
judging, the ledger's description, signing, following to final) has its entry for it; a network is
of one family and named across families by its CAIP-2 id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from rules.stage_table import IntentKind, stages_for
from runtime.registry import ChainRegistry
from schemas.chains import FAMILY_OF_KEY_CHAIN, KEY_CHAIN, NAMESPACE, Family
from schemas.families import FAMILY_OF_KIND, FORMS
from schemas.intent import IntentType, TransactionIntent
from schemas.outcomes import SignedBitcoinTransaction, SignedSolanaTransaction, SignedTransaction
from schemas.stages import Stage
from signer import chain_keys
from streams.admission import WHAT_BY_KIND
from tests.signer_support import LoneSigner

KINDS = set(get_args(IntentType))


def test_each_family_has_its_key_chain_namespace_and_form() -> None:
    assert set(FORMS) == set(Family) == set(KEY_CHAIN) == set(NAMESPACE)
    assert set(FAMILY_OF_KEY_CHAIN) <= set(chain_keys.KEY_CHAINS)
    for family, form in FORMS.items():
        assert form.family is family and form.kinds


def test_each_kind_of_intent_is_one_familys_and_is_judged_described_and_signed(tmp_path: Path) -> None:
    assert set(FAMILY_OF_KIND) == KINDS  # each kind in exactly one family's form
    assert sum(len(form.kinds) for form in FORMS.values()) == len(KINDS)
    for kind in KINDS:
        stages = stages_for(IntentKind(kind))
        assert stages[0] == Stage.CHAIN and len(stages) > 1, kind
    assert set(WHAT_BY_KIND) == KINDS
    signer = LoneSigner(tmp_path, "http://127.0.0.1:9").signer
    assert signer.kinds_signed() == KINDS
    assert signer.families_tracked() == {SignedTransaction, SignedSolanaTransaction, SignedBitcoinTransaction}


def test_an_address_is_read_in_its_familys_one_form() -> None:
    evm, solana = FORMS[Family.EVM].address, FORMS[Family.SOLANA].address
    assert evm("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed") == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55
    assert solana("11111111111111111111111111111111") == "11111111111111111111111111111111"
    with pytest.raises(ValueError, match="must be a Solana address"):
        solana("0x" + "ab" * 20)
    with pytest.raises(ValueError):
        evm("11111111111111111111111111111111")


def test_every_network_is_of_one_family_with_a_caip2_id_of_its_namespace() -> None:
    for chain in ChainRegistry().all().values():
        namespace, reference = chain.caip2.split(":")
        assert namespace == NAMESPACE[chain.family] and re.fullmatch(r"[-_a-zA-Z0-9]{1,32}", reference), chain
        assert chain.key_chain == KEY_CHAIN[chain.family]


@pytest.mark.parametrize(
    ("chain", "kind", "words"),
    [
        ("base", "solana_message", "chain 'base' is an EVM network: its intents are intent_type transaction, "),
        ("solana-devnet", "personal_sign", "chain 'solana-devnet' is a Solana network: its intents are intent_type "),
        ("solana-devnet", "transaction", "a transaction names an EVM network"),
    ],
)
def test_a_kind_of_intent_on_another_familys_network_is_refused_saying_which_kinds_it_takes(
    chain: str, kind: str, words: str
) -> None:
    fields = {
        "intent_id": "i-1",
        "agent_id": "a",
        "chain": chain,
        "intent_type": kind,
        "created_at": "2026-11-29T00:00:00Z",
        "message": "0x00",
        "solana_message": "AAAA",
        "to": "0x" + "11" * 20,
        "value": "0.1",
    }
    with pytest.raises(ValidationError) as refused:
        TransactionIntent.model_validate(fields)
    assert words in str(refused.value)
