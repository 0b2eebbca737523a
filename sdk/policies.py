"""An agent's next policy as an admin builds it, unsigned: `warden agents create|update` and the
console's agents page fill it from the same options (each as its text, as a flag or a form field
gives it) over the policy in force, so both make exactly the same record; the CLI signs it with
the admin's Ed25519 key, the console has the admin's passkey sign its bytes on their device."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from runtime.registry import REGISTRY
from schemas.chains import KEY_CHAIN, Family, UnknownChain
from schemas.errors import WardenError, explain
from schemas.families import FORMS
from schemas.fields import parse_token_amount
from schemas.policy import AgentPolicy

# Each option (the flag ``--max-value``, the form field ``max_value``) and the policy field it sets.
OPTIONS = {
    "chains": "tx_allowed_chains",
    "allowlist": "tx_to_allowlist",
    "max_value": "tx_max_value_eth",
    "daily_limit": "tx_daily_limit_eth",
    "max_fee_per_gas": "tx_max_fee_per_gas",
    "require_simulation": "require_simulation",
    "intents_api": "intents_api_enabled",
    "sender": "sender_address",
    "approval_threshold": "approval_threshold_eth",
    "approval_timeout": "approval_timeout_s",
}
_LISTS = ("chains", "allowlist")
_OR_NONE = ("max_value", "daily_limit", "max_fee_per_gas", "approval_threshold")
_SWITCHES = ("require_simulation", "intents_api")
# Who signed is not what an admin fills in: the builder leaves these to the signature.
_SIGNED = {"signature", "cosignatures", "issued_at", "admin_key_id", "schema_version"}


@dataclass(frozen=True)
class _PlainFields:
    """Where a family keeps what the plain options say: the recipients, the per-transaction cap
    and the rolling 24 h limit, in its policy ``section`` (None: the policy's own fields)."""

    section: str | None
    allowlist: str
    max_value: str
    daily_limit: str
    # The section's field that names the agent's own wallet, from its key: an address, or (Bitcoin,
    # whose addresses differ per network) the public key.
    own: str = "address"


# The options `--allowlist`, `--max-value` and `--daily-limit` read the same for every family:
# addresses in the family's form, amounts in the network's currency. EVM networks keep them in
# the policy's own fields as decimals; Solana networks in `solana`, in lamports; Bitcoin networks in
# `bitcoin`, in satoshis.
_PLAIN_FIELDS = {
    Family.EVM: _PlainFields(None, "tx_to_allowlist", "tx_max_value_eth", "tx_daily_limit_eth"),
    Family.SOLANA: _PlainFields("solana", "allowlist", "max_lamports_per_tx", "daily_limit_lamports"),
    Family.BITCOIN: _PlainFields("bitcoin", "allowlist", "max_sats_per_tx", "daily_limit_sats", own="public_key"),
}
_EVM_PLAIN = _PLAIN_FIELDS[Family.EVM]
# What names the agent in each family's section (`unsigned_policy`'s ``own`` gives it).
OWN_FIELDS = {family: plain.own for family, plain in _PLAIN_FIELDS.items() if plain.section is not None}


class PolicyInvalid(WardenError, ValueError):
    """The options do not make a valid policy: the message names each field and what is wrong."""


def policy_fields(options: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The policy fields ``options`` set (an option absent or None is left as it is): a list as
    comma-separated text (empty: any), a cap or limit as a decimal or ``none``, a switch as
    ``on`` or ``off``, the sender as an address (empty: none). ``extra``: further policy fields
    (asset_limits, usd_daily_limit, contract_calls, ...), which the options override."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise PolicyInvalid(f"{', '.join(unknown)}: not an option of a policy; the options are {', '.join(OPTIONS)}")
    fields = dict(extra or {})
    for option, value in options.items():
        if value is None:
            continue
        name = OPTIONS[option]
        if option in _LISTS:
            fields[name] = tuple(item.strip() for item in str(value).split(",") if item.strip())
        elif option in _OR_NONE:
            fields[name] = None if str(value).strip() == "none" else str(value).strip()
        elif option in _SWITCHES:
            if value not in ("on", "off"):
                raise PolicyInvalid(f"{name}: must be on or off, got {str(value)[:40]!r}")
            fields[name] = value == "on"
        elif option == "sender":
            fields[name] = str(value).strip() or None
        else:
            fields[name] = value
    return fields


def unsigned_policy(
    agent_id: str,
    current: AgentPolicy | None,
    public_key: str | None,
    fields: Mapping[str, Any],
    now: datetime,
    admin_id: str = "",
    own: Mapping[Family, str] | None = None,
) -> AgentPolicy:
    """The next version of ``agent_id``'s policy: ``current``'s fields (none: the defaults) with
    ``fields`` over them, its intents' key ``public_key`` (None: the one in force), issued ``now``
    and naming ``admin_id`` as the admin whose signature it waits for. The recipients, cap and
    daily limit go to each family's fields (`_PLAIN_FIELDS`) of the networks the policy allows;
    ``own``: the agent's address per family, for a family's section made here. PolicyInvalid
    says which fields are wrong and how."""
    base = {} if current is None else current.model_dump(exclude=_SIGNED)
    evm_plain = (_EVM_PLAIN.allowlist, _EVM_PLAIN.max_value, _EVM_PLAIN.daily_limit)
    plain = {name: value for name, value in fields.items() if name in evm_plain}
    key = public_key if public_key is not None else (None if current is None else current.agent_public_key)
    if not key:
        raise PolicyInvalid("agent_public_key: a new agent needs the Ed25519 public key it signs its intents with")
    record = {
        **base,
        **{name: value for name, value in fields.items() if name not in plain},
        "agent_id": agent_id,
        "agent_public_key": key,
        "version": (current.version + 1) if current else 1,
        "issued_at": now,
        "admin_key_id": admin_id,
    }
    _place_by_family(record, plain, own or {})
    try:
        return AgentPolicy.model_validate(record, context=REGISTRY.context)
    except ValidationError as exc:
        raise PolicyInvalid(f"the policy is not valid: {'; '.join(explain(exc))}") from None


def _families(record: Mapping[str, Any]) -> set[Family]:
    """The families of the networks a policy allows; with none listed (any network), EVM and
    each family whose section the policy has."""
    listed = record.get("tx_allowed_chains") or ()
    if not listed:
        return {Family.EVM} | {f for f, plain in _PLAIN_FIELDS.items() if plain.section and record.get(plain.section)}
    families = set()
    for name in listed:
        try:
            families.add(REGISTRY.get(name).family)
        except UnknownChain:
            continue  # the policy's own check names it
    return families


def _family_of(address: object, families: set[Family]) -> Family:
    """The family among ``families`` whose address form ``address`` is written in."""
    for family in sorted(families):
        try:
            FORMS[family].address(address)
        except ValueError:
            continue
        return family
    forms = "; ".join(f"{family.a_network} takes {FORMS[family].address_form}" for family in sorted(families))
    raise PolicyInvalid(
        f"allowlist: {str(address)[:80]!r} is an address of none of the networks the policy allows ({forms})"
    )


def _place_by_family(record: dict[str, Any], plain: Mapping[str, Any], own: Mapping[Family, str]) -> None:
    """Writes the recipients, cap and daily limit ``plain`` gives (under EVM's field names, as the
    options set them) into the fields of each family of the networks the policy allows. Without
    them nothing is placed: an update of another field makes no family's section."""
    if not plain:
        return
    families = _families(record)
    allowlist = plain.get(_EVM_PLAIN.allowlist)
    recipients: dict[Family, list[Any]] = {family: [] for family in families}
    for address in allowlist or ():
        # One family: its own field check names a malformed address (`tx_to_allowlist.0: ...`).
        recipients[next(iter(families)) if len(families) == 1 else _family_of(address, families)].append(address)
    for family in sorted(families):
        where = _PLAIN_FIELDS[family]
        fields = record if where.section is None else _section(record, where, family, own)
        if allowlist is not None:
            fields[where.allowlist] = tuple(recipients[family])
        for evm_name, name in ((_EVM_PLAIN.max_value, where.max_value), (_EVM_PLAIN.daily_limit, where.daily_limit)):
            if evm_name in plain:
                fields[name] = _in_base_units(plain[evm_name], family, where, name)


def _section(record: dict[str, Any], where: _PlainFields, family: Family, own: Mapping[Family, str]) -> dict[str, Any]:
    """The policy's section of ``family``, made with the agent's address (or key) ``own`` gives
    when it names none."""
    name = str(where.section)
    section = dict(record.get(name) or {})
    if where.own not in section:
        if family not in own:
            what = "key" if where.own == "public_key" else "address"
            raise PolicyInvalid(
                f"{name}.{where.own}: the policy allows {family.a_network} and the agent has no {what} there yet; "
                f"provision its key (`warden keys provision --agent {record['agent_id']} --chain "
                f"{KEY_CHAIN[family]}`) or give {name}.{where.own} in --fields"
            )
        section[where.own] = own[family]
    record[name] = section
    return section


def _in_base_units(value: Any, family: Family, where: _PlainFields, name: str) -> Any:
    """An amount as ``family`` keeps it in ``name``: EVM's decimal as written; another family's in
    its base unit. None (no cap) stays None."""
    if value is None or where.section is None:
        return value
    form = FORMS[family]
    try:
        return parse_token_amount(value, form.native_decimals, "the network's currency", form.base_unit)
    except ValueError as exc:
        raise PolicyInvalid(f"{where.section}.{name}: {exc}") from None
