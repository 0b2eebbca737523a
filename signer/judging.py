"""The signer's own judgement of an approved intent, before any key is touched.

It trusts nothing the worker says: it judges under the newest admin-signed policy it holds itself
(`signer.policies`, fed from ``warden.policies``), admits the intent with the one judge's `admit`
(the agent's signature, the intents API, freshness), runs the judge's stages (`rules.judge`) over
its own spend record and, for the stages that need it, its own node and the real sender, and
requires an admin's approval above the policy's threshold. Every failure is a `SigningRefused`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from rules import judge, movements, sign_only
from rules.judge import approval_needed
from runtime.admins import Admins
from runtime.clock import US_PER_SECOND, to_us
from runtime.rpc import Node
from schemas.auth import human_approval_problem, human_approval_valid
from schemas.chains import ChainLookup
from schemas.codes import Code
from schemas.errors import Problem
from schemas.intent import INTENT_MAX_FUTURE_US, TransactionIntent, idempotency_conflict
from schemas.outcomes import (
    HumanApproval,
    IntentApproved,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from signer.outcomes import SigningRefused
from signer.policies import PolicyBook
from signer.state import AgentStates

# What a signature's record is, by kind: an idempotent copy answers with the first intent's, as that kind.
SignedT = TypeVar(
    "SignedT", SignedTransaction, SignedMessage, SignedSolanaTransaction, SignedSolanaMessage, SignedBitcoinTransaction
)


class Judging:
    """The signer's policy book, the pinned admin keys that sign policies and approvals, the
    agent state it reads spend from, how old an intent may be (``max_age_us``) and the networks
    in force (``chains``), which every `judge.Context` of the signer hands to the judge."""

    def __init__(self, state: AgentStates, admins: Admins, policies: PolicyBook, max_age_us: int, chains: ChainLookup):
        self.state = state
        self.admins = admins
        self.policies = policies
        self.max_age_us = max_age_us
        self.chains = chains

    def verify(self, approved: IntentApproved, now: datetime) -> AgentPolicy:
        """Admission: the policy in force (the signer's own), the agent's signature under it and
        freshness. Returns the policy to judge under."""
        intent = approved.intent
        policy = self.policy_in_force(approved)
        # An intent that waited for an admin is as old as its wait; the admin's fresh approval vouches for it.
        max_age = self.max_age_us + (
            policy.approval_timeout_s * US_PER_SECOND if self.human_approval(approved, now) is not None else 0
        )
        admitted = judge.admit(intent, policy, now, max_age)
        if not admitted.passed:
            raise SigningRefused(admitted.code, f"signer re-check failed: {admitted.reason}")
        return policy

    async def opening(
        self, approved: IntentApproved, now: datetime, model: type[SignedT], read: Callable[[str], bytes | None]
    ) -> tuple[AgentPolicy, judge.Judgement, tuple[str, SignedT] | None]:
        """Every signature's first steps: the policy in force (`verify`), what that policy alone
        decides with the networks in force (the stages that need no spend record nor node), and,
        when the intent's idempotency key was used within 24 h, the first intent's id and its
        ``model`` record read by ``read`` (`reused_key`)."""
        policy = self.verify(approved, now)
        judged = await self.run_stages(approved.intent, policy, judge.Context(chains=self.chains))
        return policy, judged, self.reused_key(approved.intent, now, model, read)

    @staticmethod
    async def run_stages(
        intent: TransactionIntent,
        policy: AgentPolicy,
        ctx: judge.Context,
        so_far: judge.Judgement = judge.Judgement(),
        complete: bool = False,
    ) -> judge.Judgement:
        """The judge's stages from where ``so_far`` left off, as far as ``ctx`` supplies; the
        first refusal refuses the signature. ``complete``: every stage must have been judged."""
        judged = await judge.run_stages(intent, policy, ctx, so_far)
        if judged.refusal is not None:
            raise SigningRefused(judged.refusal.code, f"signer re-check failed: {judged.refusal.reason}")
        if complete and judged.next_stage(intent) is not None:
            raise SigningRefused(
                Code.STAGE_NOT_JUDGED, f"the {judged.next_stage(intent)} stage was not judged; nothing is signed"
            )
        return judged

    def spent(self, intent: TransactionIntent, now: datetime) -> Callable[[str], int]:
        """The signer's own record of the agent's last 24 h, per asset key (the USD window's
        included), each leaving out the intent's own reservation (a fee bump replaces it; a new
        intent has none): the intent is counted once, as judged now."""
        now_us, state = to_us(now), self.state.agent(intent.agent_id)

        def spent(asset: str) -> int:
            if asset == movements.NATIVE:
                return state.spent(now_us, excluding=intent.intent_id)
            if asset == sign_only.OUTSTANDING:
                return state.outstanding(now_us, excluding=intent.intent_id)
            held_of = sign_only.outstanding_asset(asset)
            if held_of is not None:
                return state.outstanding(now_us, excluding=intent.intent_id, asset=held_of)
            return state.asset_spent(asset, now_us, excluding=intent.intent_id)

        return spent

    def claimed(self, intent: TransactionIntent) -> Callable[[str], str | None]:
        """Which other intent of the agent, in the signer's own record, has a Bitcoin payment not
        final yet that spends an output (`rules.bitcoin.claims_refused`)."""
        state = self.state.agent(intent.agent_id)
        return lambda outpoint: state.bitcoin_claimed_by(outpoint, intent.intent_id)

    def human_approval(self, approved: IntentApproved, now: datetime) -> HumanApproval | None:
        """The admin's approval the record carries, if it is one this signer believes: signed by a
        pinned admin key, an approval of exactly this intent (id and digest), and fresh."""
        approval, intent = approved.human_approval, approved.intent
        if approval is None or approval.decision != "approve" or not human_approval_valid(approval, self.admins):
            return None
        if (approval.intent_id, approval.agent_id, approval.intent_digest) != (
            intent.intent_id,
            intent.agent_id,
            intent.digest(),
        ):
            return None
        age = to_us(now) - to_us(approval.decided_at)
        return approval if -INTENT_MAX_FUTURE_US <= age < self.max_age_us else None

    def require_human_approval(
        self, approved: IntentApproved, policy: AgentPolicy, asset_spend: Mapping[str, int], now: datetime
    ) -> None:
        """Above a threshold of the signer's own policy, nothing is signed without an admin's approval."""
        why = approval_needed(approved.intent, policy, asset_spend)
        if why is None or self.human_approval(approved, now) is not None:
            return
        refused = self._passkey_refused(approved.human_approval)
        if refused is not None:
            raise SigningRefused(
                Code.PASSKEY_ASSERTION_INVALID,
                f"{why}, and the admins' approval the record carries is refused: {refused}",
            )
        raise SigningRefused(
            Code.HUMAN_APPROVAL_REQUIRED,
            (
                f"{why}, and the record carries no valid admin approval of this intent (signed by the pinned admins' "
                "quorum for approvals, bound to its digest, fresh); it waits for `warden approvals approve` through "
                "the pipeline"
            ),
        )

    def _passkey_refused(self, approval: HumanApproval | None) -> Problem | None:
        """Why an approval falls short of its quorum for a passkey's assertion that does not verify
        (over other bytes, for another origin or relying party, without the user verified, a
        counter met over other bytes, malformed), the refusal's own code; None for any other reason."""
        if approval is None or approval.decision != "approve":
            return None
        problem = human_approval_problem(approval, self.admins)
        return problem if problem is not None and problem.code == Code.PASSKEY_ASSERTION_INVALID else None

    def policy_in_force(self, approved: IntentApproved) -> AgentPolicy:
        intent, offered = approved.intent, approved.policy
        if not self.policies.signed(offered):
            problem = self.admins.quorum_problem(offered, "policy") or Problem("the signatures do not verify")
            raise SigningRefused(
                problem.code or Code.POLICY_SIGNATURE_INVALID,
                f"the policy is not signed by the admins' quorum: {problem}",
                attributable=False,  # anyone can write a policy record: it decides nothing about the real intent
            )
        if offered.agent_id != intent.agent_id:
            raise SigningRefused(Code.POLICY_AGENT_MISMATCH, "the policy belongs to another agent")
        self.policies.offer(offered)  # a newer signed policy than the topic has brought yet is adopted
        held = self.policies.current(intent.agent_id)
        if held is None:  # cannot be: the offered policy is signed, so it was held already or adopted just now
            raise RuntimeError(f"no policy in force for agent {intent.agent_id!r} after its signed policy was offered")
        newest = max(held.version, self.state.agent(intent.agent_id).policy_version())
        if offered.version < newest:
            raise SigningRefused(
                Code.POLICY_SUPERSEDED,
                f"approved under policy v{offered.version}, but this agent's "
                f"policy is now v{newest}; submit the intent again to be "
                "judged under the current policy",
            )
        return held

    async def judge_bump(
        self, intent: TransactionIntent, policy: AgentPolicy, quote: FeeQuote, node: Node, sender: str, now: datetime
    ) -> judge.Judgement:
        """The judge again for a fee bump, under the policy in force now: every stage, on the
        signer's own node as the real sender, with the bump's ``quote`` in place of the fee
        stage's, so every limit (fee ceiling, native cap and rolling limit, each asset's, the USD
        cap and rolling limit, priced by the feeds now) counts the intent once, at the new fee.
        Judging stops at the first refusal (`Judgement.refusal`)."""
        ctx = judge.Context(
            spent=self.spent(intent, now), node=node, sender=sender, now=now, quote=quote, chains=self.chains
        )
        return await judge.run_stages(intent, policy, ctx)

    def reused_key(
        self, intent: TransactionIntent, now: datetime, model: type[SignedT], read: Callable[[str], bytes | None]
    ) -> tuple[str, SignedT] | None:
        """When the intent's idempotency key was used within 24 h: (the first intent's id, its signed
        record under this intent's id and digest). The first must have been signed, as this kind,
        for the same request: an approval written straight to the topic gets no other payment's
        answer either."""
        slot = intent.idempotency_slot
        state = self.state.agent(intent.agent_id)
        original = None if slot is None else state.idempotent_original(slot, to_us(now))
        if original is None:
            return None
        conflict = idempotency_conflict(original, state.idempotency_request(original), intent)
        if conflict is not None:
            raise SigningRefused(Code.IDEMPOTENCY_KEY_REUSED, f"signer re-check failed: {conflict}")
        cached = read(original)
        if cached is None:
            raise SigningRefused(
                Code.IDEMPOTENT_ORIGINAL_NOT_SIGNED,
                (f"idempotency key was used by intent {original}, which was not signed as a {intent.intent_type}"),
            )
        return original, model.from_bytes(cached).model_copy(
            update={"intent_id": intent.intent_id, "signed_at": now, "intent_digest": intent.digest()}
        )
