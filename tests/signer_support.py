"""A Signer with its own keys and vaults and no broker, for tests that ask the signer's checks
directly."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_utils import to_checksum_address

from runtime.admins import Admins
from runtime.clock import utcnow
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.audit import AuditEvent
from schemas.auth import outcome_forgery, public_key_hex, sign_policy
from schemas.emit import Source
from schemas.intent import TransactionIntent
from schemas.outcomes import HumanApproval, IntentApproved, IntentRejected, SignedMessage, SignedTransaction
from schemas.passkeys import RelyingParty
from schemas.policy import AgentPolicy
from sdk.client import new_intent
from signer.custody.keys import KeyStore
from signer.service import Signer
from signer.state import SignerState
from tests.custody_support import ADMIN, make_vaults

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


class LoneSigner:
    """An in-process signer with one agent's key, handed approved records straight, as anyone who
    can write to warden.intents.approved could: its own checks are all that stands."""

    def __init__(
        self,
        tmp: Path,
        rpc_url: str,
        passkeys: dict[str, str] | None = None,
        party: RelyingParty | None = None,
        **policy_fields: Any,
    ):
        """``passkeys``: passkey admins (id → pinned key) beside test-admin, whose assertions are
        believed for the relying party ``party``."""
        self.rpc_url = rpc_url
        self.node = JsonRpc(rpc_url, timeout_s=120)  # one per event loop: `run` starts a new loop for each call
        store = KeyStore(make_vaults(tmp), mode="standard")
        self.agent = f"surface-{os.urandom(3).hex()}"
        self.address = store.provision(self.agent, "ethereum", ADMIN).address
        self.admin_key, self.agent_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.service_key = Ed25519PrivateKey.generate()
        self.worker_key = Ed25519PrivateKey.generate()  # signs the abandonments a worker would write
        self.version = 0
        self.state = SignerState(tmp / f"{self.agent}.db")
        self.signer = Signer(
            self.state,
            store,
            Admins.with_threshold({"test-admin": public_key_hex(self.admin_key), **(passkeys or {})}, 1, party),
            node_for=lambda chain: self.node,
            service_key=("signer-test", self.service_key),
            service_keys=self,
        )
        self.set_policy(**policy_fields)
        self.offset = 0

    def set_policy(self, **fields: Any) -> None:
        self.version += 1
        fields.setdefault("tx_to_allowlist", (DEST, self.address))
        self.policy = sign_policy(
            AgentPolicy(
                agent_id=self.agent,
                version=self.version,
                agent_public_key=public_key_hex(self.agent_key),
                issued_at=utcnow(),
                tx_allowed_chains=("anvil",),
                **fields,
            ),
            self.admin_key,
            "test-admin",
        )

    def intent(self, make: Callable[..., TransactionIntent] = new_intent, **fields: Any) -> TransactionIntent:
        return make(self.agent_key, agent_id=self.agent, chain="anvil", **fields)

    async def handle(self, intent: TransactionIntent, human_approval: HumanApproval | None = None) -> Any:
        """The signer's outcome, audit records and what it sends, for ``intent`` approved under
        the policy in force (carrying ``human_approval``, an admin's decision, when given)."""
        self.node = JsonRpc(self.rpc_url, timeout_s=120)
        try:
            return await self._handle(intent, human_approval)
        finally:
            await self.node.close()

    async def _handle(self, intent: TransactionIntent, human_approval: HumanApproval | None = None) -> Any:
        now = datetime.now(timezone.utc)
        approved = IntentApproved(
            intent=intent, policy=self.policy, verdicts=(), approved_at=now, human_approval=human_approval
        )
        self.offset += 1
        emits, to_send = await self.signer.handle(
            approved.to_bytes(), Source(topics.INTENTS_APPROVED, 0, self.offset, self.agent.encode()), now
        )
        self.state.commit()
        outcomes = [e for e in emits if e.topic in (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.MESSAGES_SIGNED)]
        assert len(outcomes) == 1, emits
        model = {
            topics.INTENTS_REJECTED: IntentRejected,
            topics.TXS_SIGNED: SignedTransaction,
            topics.MESSAGES_SIGNED: SignedMessage,
        }[outcomes[0].topic]
        outcome: Any = model.from_bytes(outcomes[0].value)  # type: ignore[attr-defined]  # each of the three is a Record
        assert outcome_forgery(outcome, self, intent.digest()) is None
        audits = [AuditEvent.from_bytes(e.value) for e in emits if e.topic == topics.AUDIT_EVENTS]
        return outcome, audits, to_send

    def key(self, role: str, key_id: str | None) -> str | None:
        pinned = {("signer", "signer-test"): self.service_key, ("worker", "worker-test"): self.worker_key}
        return public_key_hex(pinned[(role, key_id)]) if key_id is not None and (role, key_id) in pinned else None


TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SPENDER = "0x000000000000000000000000000000000000bad1"
DELEGATE = to_checksum_address("0x00000000000000000000000000000000de1e9a7e")
ANVIL_ID = 31337


def mail_document(
    chain_id: int = ANVIL_ID, contract: str = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Mail": [{"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "chainId": chain_id, "verifyingContract": contract},
        "message": {"contents": "Hello, Bob!"},
    }
