"""``warden agents``: an agent's admin-signed policy, created, updated or shown."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.clock import utcnow
from runtime.config import Settings, load
from schemas.chains import KEY_CHAIN, Family
from schemas.policy import AgentPolicy


def _policy_fields(args: argparse.Namespace) -> dict[str, Any]:
    from sdk.policies import OPTIONS, policy_fields  # with the policy's model: see cmd_agents

    extra = None
    if args.fields is not None:
        # The policy fields the flags below do not cover (asset_limits, contract_calls, EIP-712
        # allowlists, ...), as one JSON object; the schema refuses unknown or malformed ones by name.
        try:
            extra = orjson.loads(Path(args.fields).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise SystemExit(f"warden agents: --fields {args.fields}: {exc}") from None
        if not isinstance(extra, dict):
            raise SystemExit(f"warden agents: --fields {args.fields} must hold one JSON object of policy fields")
    return policy_fields({option: getattr(args, option) for option in OPTIONS}, extra)


def _agent_address(
    settings: Settings, agent_id: str, key_chain: str = "ethereum", public_key: bool = False
) -> str | None:
    """The agent's active address (``public_key``: its public key, hex) of ``key_chain`` from the
    key store (public): an EVM one for simulation, another family's for its policy section."""
    from signer.custody_wiring import keystore_from_settings  # the key store: only when an address is needed

    try:
        keys = keystore_from_settings(settings).list_keys("admin:local-admin", agent_id=agent_id, chain=key_chain)
    except Exception:  # no key store configured here: simulation then runs without a sender
        return None
    active = [k.public_key_hex if public_key else k.address for k in keys if k.active]
    return active[-1] if active else None


def _intent_key(settings: Settings, args: argparse.Namespace, current: AgentPolicy | None) -> str:
    """The key the agent's intents must be signed with: ``--public-key`` when given; else, on an
    update, the one in force (an agent whose key is held elsewhere keeps it: this home's key file
    is not the agent's); else, on create, this home's key file for the agent, made on first use."""
    from schemas.auth import public_key_hex
    from sdk.client import load_or_create_agent_key

    if args.public_key is not None:
        return str(args.public_key)
    if current is not None:
        return current.agent_public_key
    return public_key_hex(load_or_create_agent_key(settings.home, args.agent))


def _own_addresses(settings: Settings, agent_id: str) -> dict[Family, str]:
    """The agent's address (or public key: `sdk.policies.OWN_FIELDS`) per family that keeps its
    policy in a section, from the key store: a section a plain option (`--allowlist`,
    `--max-value`, ...) makes for that family names it."""
    from sdk.policies import OWN_FIELDS

    own: dict[Family, str] = {}
    for family, field in OWN_FIELDS.items():
        address = _agent_address(settings, agent_id, KEY_CHAIN[family], public_key=field == "public_key")
        if address is not None:
            own[family] = address
    return own


def cmd_agents(args: argparse.Namespace) -> int:
    settings = load()
    if args.action == "api-key":
        return _api_key(settings, args)
    # Kafka and the admins' signatures: `api-key` (files under WARDEN_HOME) needs none of them
    from schemas.auth import sign_policy
    from sdk.admin import load_or_create_admin_key
    from sdk.client import policy_in_force
    from sdk.policies import PolicyInvalid, unsigned_policy
    from sdk.records import admins_in_force

    current = asyncio.run(policy_in_force(settings, args.agent))
    if args.action == "show":
        return _show(current, args)
    if args.action == "create" and current is not None:
        note(f"agent {args.agent!r} exists (policy v{current.version}); use `warden agents update`")
        return 1
    if args.action == "update" and current is None:
        note(f"agent {args.agent!r} has no policy yet; use `warden agents create`")
        return 1
    if args.sender is None and (current is None or not current.sender_address):
        args.sender = _agent_address(settings, args.agent)
    try:
        unsigned = unsigned_policy(
            args.agent,
            current,
            _intent_key(settings, args, current),
            _policy_fields(args),
            utcnow(),
            own=_own_addresses(settings, args.agent),
        )
    except PolicyInvalid as exc:
        note(f"agent {args.agent}: {exc}")
        return 2
    admin = load_or_create_admin_key(settings.home, settings.admin_id)
    policy = sign_policy(unsigned, admin, settings.admin_id)
    what_if = None
    if args.what_if is not None:  # what the new policy would have decided, before it is published
        if current is None:
            note(f"agent {args.agent}: --what-if needs a policy in force to compare with")
            return 2
        # The ledger's readers (chDB or ClickHouse, pyarrow) and the judge: only for --what-if
        from infra.cli.policy import render as render_what_if
        from infra.cli.policy import run_what_if

        try:
            what_if = run_what_if(settings, args.agent, policy, args.what_if)
        except ValueError as exc:
            note(f"agent {args.agent}: {exc}")
            return 2
        if not args.json:
            print(render_what_if(what_if))

    needed = asyncio.run(admins_in_force(settings)).threshold("policy")
    if needed > 1:  # the others sign with `warden approvals sign`; the last signature publishes it
        return _propose(settings, args, policy, needed)
    return _publish(settings, args, policy, what_if)


def _show(current: AgentPolicy | None, args: argparse.Namespace) -> int:
    """``warden agents show``: the policy in force, field by field or as one JSON document."""
    if current is None:
        note(f"no policy for agent {args.agent!r}")
        return 1
    doc = current.model_dump(mode="json")
    if args.json:
        print_json(doc)
    else:
        for key, value in doc.items():
            print(f"{key:22} {value}")
    return 0


def _propose(settings: Settings, args: argparse.Namespace, policy: AgentPolicy, needed: int) -> int:
    """Publish the signed policy as a proposal the other admins sign, when the quorum for
    ``policy`` is more than one admin, and say who must sign next."""
    from sdk.quorum import propose, publish_proposal  # the admins' signatures: see cmd_agents

    proposal = propose(policy, "policy", utcnow())
    asyncio.run(publish_proposal(settings, proposal))
    if args.json:
        print_json({"proposal_id": proposal.proposal_id, "signed_by": [policy.admin_key_id], "needed": needed})
    else:
        print(
            f"agent {args.agent}: policy v{policy.version} proposed ({proposal.proposal_id[:16]}), signed by "
            f"{policy.admin_key_id}; {needed} admins must sign: another admin runs "
            f"`warden approvals sign {proposal.proposal_id[:16]}`"
        )
    return 0


def _publish(settings: Settings, args: argparse.Namespace, policy: AgentPolicy, what_if: Any) -> int:
    """Publish the signed policy, which one admin's signature puts in force, and wait for the
    worker's verdict on it; print the policy (with the what-if report under ``--json``)."""
    from schemas.actions import AuditAction  # with Kafka's client: see cmd_agents
    from sdk.client import Client

    async def publish() -> Any:
        async with Client(settings) as client:
            return await client.publish_policy(policy, wait_s=args.wait)

    verdict = asyncio.run(publish())
    if verdict == AuditAction.POLICY_REFUSED:
        note(f"agent {args.agent}: the worker refused policy v{policy.version}; see `warden audit query`")
        return 1
    if args.json:
        print_json(policy.model_dump(mode="json") | ({"what_if": what_if} if what_if is not None else {}))
    else:
        print(f"agent {args.agent}: policy v{policy.version} signed by {policy.admin_key_id} and published")
    return 0


def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    """The HTTP API's keys of an agent (`gateway.http_api.api_keys`): issue one (shown once, kept as a hash),
    revoke one, or list them."""
    from gateway.http_api.api_keys import (  # only `api-key` uses them
        CredentialRefused,
        api_keys,
        issue_api_key,
        revoke_api_key,
    )

    now = utcnow()
    if args.expires_at is not None and args.expires_at.tzinfo is None:
        return fail("warden agents api-key", "--expires-at needs a zone, e.g. 2027-01-01T00:00:00+00:00", 2)
    try:
        if args.revoke:
            record = revoke_api_key(settings.home, args.agent, args.revoke, now)
            shown = record.view(now)
            print_json(shown) if args.json else print(f"API key {record.key_id} of {args.agent}: revoked")
            return 0
        if args.list:
            listed = [r.view(now) for r in api_keys(settings.home, args.agent)]
            if args.json:
                print_json({"agent_id": args.agent, "keys": listed})
            else:
                for row in listed:
                    print(f"{row['key_id']}  {row['state']:8} created {row['created_at']}  expires {row['expires_at']}")
                if not listed:
                    print(
                        f"agent {args.agent} has no API keys; issue one with `warden agents api-key --agent {args.agent}`"
                    )
            return 0
        key, record = issue_api_key(settings.home, args.agent, now, args.expires_at)
    except CredentialRefused as exc:
        return fail("warden agents api-key", exc, 2)
    if args.json:
        print_json({"agent_id": args.agent, "api_key": key, **record.view(now)})
    else:
        print(f"API key {record.key_id} for agent {args.agent} (shown once; Warden keeps only its hash):")
        print(key)
        print('trade it for a token: POST /v1/auth/agent-token {"agent_id": ..., "api_key": ...}')
    return 0


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_agents)
    add_json_flag(p)
    p.add_argument("action", choices=("create", "update", "show", "api-key"))
    p.add_argument("--agent", required=True)
    p.add_argument(
        "--expires-at",
        type=datetime.fromisoformat,
        metavar="TIME",
        help="api-key: when the new key stops working (ISO 8601 with zone; default: never)",
    )
    p.add_argument("--revoke", metavar="KEY_ID", help="api-key: revoke this key (its tokens stop at once)")
    p.add_argument("--list", action="store_true", help="api-key: list the agent's keys (ids and states, never keys)")
    p.add_argument("--chains", help="comma-separated allowed chains (empty: any)")
    p.add_argument(
        "--allowlist",
        help="comma-separated recipient addresses, each in its network's form (0x hex, Solana base58); "
        "empty: an EVM network pays anyone, a Solana network only the agent itself",
    )
    p.add_argument("--max-value", help='per-transaction cap in each network\'s currency (ETH, SOL, ...), or "none"')
    p.add_argument("--daily-limit", help='rolling 24 h limit in each network\'s currency, or "none"')
    p.add_argument(
        "--max-fee-per-gas", help='fee ceiling per unit of gas in wei (max_fee_per_gas or gas_price), or "none"'
    )
    p.add_argument("--require-simulation", choices=("on", "off"))
    p.add_argument("--intents-api", choices=("on", "off"))
    p.add_argument("--sender", help="the agent's EVM address for simulation (default: its provisioned key)")
    p.add_argument(
        "--public-key",
        metavar="HEX",
        help="the Ed25519 public key the agent signs its intents with, 0x + 64 hex digits. Default: on create, "
        "the key file under $WARDEN_HOME/agents made for it; on update, the key in force, unchanged",
    )
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the worker to apply it")
    p.add_argument(
        "--what-if",
        metavar="SINCE",
        help="first replay the agent's recorded intents of the last SINCE (30d, 12h) under the new policy and "
        "print what would change (`warden policy what-if`)",
    )
    p.add_argument("--approval-threshold", help='value above which an admin must approve, native unit, or "none"')
    p.add_argument("--approval-timeout", type=int, help="seconds an intent waits for an admin (default 3600)")
    p.add_argument(
        "--fields",
        metavar="FILE",
        help="a JSON object of further policy fields, e.g. asset_limits, contract_calls, block_unlimited_approvals",
    )
