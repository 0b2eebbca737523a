"""The signer's own view of every agent's policy.

The signer does not take the worker's word for which policy is in force: it
reads ``warden.policies`` itself (to the end before its first signature, then as
records arrive), keeps the newest admin-signed version per agent, and judges
every approval under that one. An approval carrying an older version is refused
(POLICY_SUPERSEDED), so a revocation or a removed recipient holds at the signer
even against a record written straight to ``warden.intents.approved``. A newer
validly signed policy carried by an approval is adopted (the topic may simply
not have reached this signer yet).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from runtime.admins import Admins
from runtime.registry import REGISTRY
from schemas.auth import policy_signature_valid
from schemas.policy import AgentPolicy

log = logging.getLogger("warden.signer")


class PolicyBook:
    def __init__(self, admins: Admins):
        self.admins = admins
        self._newest: dict[str, AgentPolicy] = {}

    def current(self, agent_id: str) -> AgentPolicy | None:
        return self._newest.get(agent_id)

    def offer(self, policy: AgentPolicy) -> bool:
        """Adopt ``policy`` if an admin signed it and it is newer than the one held; True if adopted."""
        held = self._newest.get(policy.agent_id)
        if (held is not None and held.version >= policy.version) or not policy_signature_valid(policy, self.admins):
            return False
        self._newest[policy.agent_id] = policy
        return True

    def signed(self, policy: AgentPolicy) -> bool:
        """True if a pinned admin key signed ``policy``. Every approval carries its policy, almost
        always the one held: equal in every field, signature included, it was verified when it
        was adopted, so the signature check per intent is the agent's alone."""
        held = self._newest.get(policy.agent_id)
        return (held is not None and held == policy) or policy_signature_valid(policy, self.admins)

    def read(self, raw: bytes | None) -> AgentPolicy | None:
        """A record from ``warden.policies``: the policy if it was adopted. An unreadable or
        unsigned record is skipped here: the streams worker dead-letters and audits it, and the
        signer only ever acts on policies that verify."""
        try:
            policy = AgentPolicy.model_validate_json(raw or b"", context=REGISTRY.context)
        except ValidationError:
            log.warning("unreadable record on warden.policies; ignored (the streams worker dead-letters it)")
            return None
        return policy if self.offer(policy) else None

    def __len__(self) -> int:
        return len(self._newest)
