"""What Warden reads of each chain family: the kinds of intent its networks take, its addresses
and its native unit.

This is the reading part of a family's seam; each family has one entry in `FORMS`. The judging
part is the stages of those intent kinds (`rules.stage_table`), the signing, tracking and key
part `signer.families`. CONTRIBUTING's "A chain family" says what a new family adds to each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from schemas.chains import Family
from schemas.fields import parse_address, parse_bitcoin_address, parse_solana_address


@dataclass(frozen=True)
class FamilyForm:
    """What one family's intents and addresses look like."""

    family: Family
    # The intent_type values its networks take: the transfer first, then what else they sign.
    kinds: tuple[str, ...]
    # An address of the family in its one written form (EIP-55, base58): ValueError if it is none.
    address: Callable[[object], str]
    # That form in words, for a message that names what is allowed.
    address_form: str
    # Where a person reads how to write one of its intents.
    guide: str
    # A person writes an amount in the network's currency ("0.25", `Chain.currency`); its records
    # count in the base unit, that many decimals below (wei, lamports).
    native_decimals: int
    base_unit: str


FORMS: Mapping[Family, FamilyForm] = MappingProxyType(
    {
        Family.EVM: FamilyForm(
            Family.EVM,
            kinds=("transaction", "personal_sign", "typed_data"),
            address=parse_address,
            address_form="0x-prefixed 20-byte hex",
            guide="docs/producing-intents.md",
            native_decimals=18,
            base_unit="wei",
        ),
        Family.SOLANA: FamilyForm(
            Family.SOLANA,
            kinds=("solana_transaction", "solana_message"),
            address=parse_solana_address,
            address_form="base58 of 32 bytes",
            guide="docs/solana.md",
            native_decimals=9,
            base_unit="lamports",
        ),
        Family.BITCOIN: FamilyForm(
            Family.BITCOIN,
            kinds=("bitcoin_psbt",),
            address=parse_bitcoin_address,
            address_form="a Bitcoin address (bech32 bc1…, tb1…, bcrt1…, or base58)",
            guide="docs/bitcoin.md",
            native_decimals=8,
            base_unit="satoshis",
        ),
    }
)

FAMILY_OF_KIND: Mapping[str, Family] = MappingProxyType(
    {kind: form.family for form in FORMS.values() for kind in form.kinds}
)


def wrong_kind(chain: str, family: Family, kind: str) -> str:
    """Why an intent of ``kind`` on ``chain``, a network of ``family``, is refused: which kinds its
    networks take, and which networks take ``kind``."""
    form = FORMS[family]
    takes = FAMILY_OF_KIND.get(kind)
    elsewhere = f"; a {kind} names {takes.a_network}" if takes is not None else ""
    kinds = form.kinds[0] if len(form.kinds) == 1 else ", ".join(form.kinds[:-1]) + " or " + form.kinds[-1]
    return f"chain {chain!r} is {family.a_network}: its intents are intent_type {kinds} (see {form.guide}){elsewhere}"
