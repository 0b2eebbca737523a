"""Who may do what in custody, and the audit record of every decision.

Actors are ``admin:<key id>``, ``service:<name>`` (the signer is ``service:signer``)
and ``agent:<id>``. Admins create and change vaults; admins and services read and
list. Agents read only paths an admin granted them, and:

* an agent with the Intents API enabled never reads key material
  (``private_key``, ``ssh_key``): it submits intents and the signer signs; an
  agent whose policy is unknown counts as enabled, the stricter case;
* no agent reads the signing-key vault ``__agent-keys``, whatever its grants;
* signing keys are never shown to a person, not even to an admin
  (``refuse_to_show``): only the signer opens them, to sign.

The rules decide and say why (a ``ReadRefusal``); ``Auditor`` audits the refusal and
raises it, and sends the record of every other read and change. Agents are judged before the secret is looked up, so a refusal never
tells an agent whether a path exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.actions import AuditAction
from schemas.emit import Emit, audit
from signer.custody.errors import PermissionDenied
from signer.custody.events import utc
from signer.custody.names import prefix_covers

AGENT_KEYS_VAULT = "__agent-keys"
# Key material an agent with the Intents API may never read: it signs through the signer instead.
KEY_MATERIAL = frozenset({"private_key", "ssh_key"})

# (agent id, prefix) → whether the grant stands, as the vault's state holds them.
Grants = Mapping[tuple[str, str], bool]


@dataclass(frozen=True)
class ReadRefusal:
    """Why a read is refused: ``reason`` for the audit trail, ``message`` for the reader."""

    reason: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


def parse_actor(actor: str) -> tuple[str, str]:
    kind, sep, ident = actor.partition(":")
    if not sep or kind not in ("admin", "agent", "service") or not ident:
        raise PermissionDenied(f"unknown actor {actor!r}: expected admin:<key id>, agent:<id> or service:<name>")
    return kind, ident


def require_admin(actor: str, action: str) -> None:
    kind, _ = parse_actor(actor)
    if kind != "admin":
        raise PermissionDenied(f"{action} is for admins only (actor {actor!r} is not admin:<key id>)")


def require_lister(actor: str) -> None:
    kind, _ = parse_actor(actor)
    if kind == "agent":
        raise PermissionDenied("listing a vault is for admins and services; agents read the paths they are granted")


def refuse_before_lookup(
    vault: str, path: str, actor: str, grants: Grants, intents_api_enabled: Callable[[str], bool]
) -> ReadRefusal | None:
    """An agent's read, judged on the path alone (nothing about the secret is known yet)."""
    kind, ident = parse_actor(actor)
    if kind != "agent":
        return None
    if vault == AGENT_KEYS_VAULT:
        # Signing keys are for the signer alone, whatever an agent's policy says.
        if intents_api_enabled(ident):
            return ReadRefusal(
                "intents_api_enabled", _intents_message(ident, "private_key"), {"secret_type": "private_key"}
            )
        return ReadRefusal("signing_keys", f"agent {ident!r} may not read signing keys: only the signer opens them")
    if not any(
        allowed and agent == ident and prefix_covers(prefix, path) for (agent, prefix), allowed in grants.items()
    ):
        return ReadRefusal(
            "no_grant",
            f"agent {ident!r} has no grant covering {path!r} in vault {vault!r}; an admin "
            "grants one with `warden vault grant`",
        )
    return None


def refuse_after_lookup(actor: str, secret_type: str, intents_api_enabled: Callable[[str], bool]) -> ReadRefusal | None:
    """An agent's read of a secret now known to exist (and to be granted to it)."""
    kind, ident = parse_actor(actor)
    if kind == "agent" and secret_type in KEY_MATERIAL and intents_api_enabled(ident):
        return ReadRefusal("intents_api_enabled", _intents_message(ident, secret_type), {"secret_type": secret_type})
    return None


def refuse_to_show(path: str, version: int, secret_type: str) -> ReadRefusal | None:
    """A read whose value would be shown to a person (``warden vault get``): never key material."""
    if secret_type not in KEY_MATERIAL:
        return None
    return ReadRefusal(
        "cli_never_shows_key_material",
        f"{path} version {version} is a {secret_type} secret, and Warden never shows signing keys, not even to "
        "admins: the signer uses them for transaction intents (`warden submit`). To replace one, `warden vault "
        "put` a new version; to retire it, `warden vault deactivate`.",
        {"secret_type": secret_type},
    )


def audit_record(
    actor: str,
    action: AuditAction,
    resource: str,
    ts: datetime,
    *id_parts: str,
    agent_id: str | None = None,
    **details: Any,
) -> Emit:
    """The audit record of a custody decision, built like every other one (``schemas.emit.audit``):
    its id is derived from ``action`` and ``id_parts``, so the same fact always has the same id.
    ``agent_id``: the agent the record is about; by default the acting agent, when an agent acts."""
    kind, ident = parse_actor(actor)
    if agent_id is None and kind == "agent":
        agent_id = ident
    return audit(actor, action, resource, ts, *id_parts, agent_id=agent_id, **details)


class Auditor:
    """Sends the audit record (an ``Emit`` for ``warden.audit.events``) of every read, refusal and change to ``sink``."""

    def __init__(self, sink: Callable[[Emit], None] | None = None):
        self._sink = sink or (lambda _record: None)

    def record(
        self, actor: str, action: AuditAction, resource: str, now: float, *id_parts: str, **details: Any
    ) -> Emit:
        record = audit_record(actor, action, resource, utc(now), *id_parts, **details)
        self._sink(record)
        return record

    def enforce(self, refusal: ReadRefusal | None, actor: str, resource: str, now: float) -> None:
        """Audit and raise ``refusal``, if there is one."""
        if refusal is None:
            return
        record = self.record(
            actor,
            AuditAction.SECRET_READ_REFUSED,
            resource,
            now,
            actor,
            resource,
            utc(now).isoformat(),
            refusal.reason,
            reason=refusal.reason,
            **refusal.details,
        )
        raise PermissionDenied(refusal.message, audit=record)


def _intents_message(agent_id: str, secret_type: str) -> str:
    return (
        f"agent {agent_id!r} has the Intents API enabled and may not read {secret_type} secrets; "
        "submit a transaction intent and the signer signs with the key instead"
    )
