"""An agent's next policy as an admin builds it, unsigned: `warden agents create|update` and the
console's agents page fill it from the same options (each as its text, as a flag or a form field
gives it) over the policy in force, so both make exactly the same record; the CLI signs it with
the admin's Ed25519 key, the console has the admin's passkey sign its bytes on their device."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from runtime.registry import REGISTRY
from schemas.errors import WardenError, explain
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
) -> AgentPolicy:
    """The next version of ``agent_id``'s policy: ``current``'s fields (none: the defaults) with
    ``fields`` over them, its intents' key ``public_key`` (None: the one in force), issued ``now``
    and naming ``admin_id`` as the admin whose signature it waits for. PolicyInvalid says which
    fields are wrong and how."""
    base = {} if current is None else current.model_dump(exclude=_SIGNED)
    key = public_key if public_key is not None else (None if current is None else current.agent_public_key)
    if not key:
        raise PolicyInvalid("agent_public_key: a new agent needs the Ed25519 public key it signs its intents with")
    record = {
        **base,
        **fields,
        "agent_id": agent_id,
        "agent_public_key": key,
        "version": (current.version + 1) if current else 1,
        "issued_at": now,
        "admin_key_id": admin_id,
    }
    try:
        return AgentPolicy.model_validate(record, context=REGISTRY.context)
    except ValidationError as exc:
        raise PolicyInvalid(f"the policy is not valid: {'; '.join(explain(exc))}") from None
