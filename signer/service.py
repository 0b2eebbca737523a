"""The signer: the last word before a key is touched.

It trusts nothing outside its VM: not the streams worker, not the broker, not
whoever can write to ``warden.intents.approved``. For every approved intent it
judges under the newest admin-signed policy it holds itself (`signer.policies`,
fed from ``warden.policies``), verifies the agent's signature, refuses stale or
future-dated intents, and runs every guardrail again with its own state: chain,
allowlist, fee ceiling, per-transaction cap and rolling 24 h limit on spend
(value + worst-case fee, priced with its own node), and simulation whenever the
intent or the policy asks for it. It picks the nonce itself (an intent may name
one only to replace a transaction it signed at that nonce), decrypts the key,
signs exactly the gas and fees it checked, wipes the key, records the result
durably and only then publishes it. A redelivered intent gets the same signed
bytes back, never a second nonce.

Every approved intent ends with exactly one outcome: a `SignedTransaction`, or an
`IntentRejected` at stage ``signing`` (which releases the worker's reservation).
An unexpected error is an outcome too (``SIGNER_ERROR``), never only a log
line, and the state written for one intent is all or nothing. Every outcome
carries the intent's digest and is signed with the signer's service key: only
a signer-signed refusal releases the worker's reservation, and clients believe
nothing else about a signature.

`Signer` wires the parts and handles one record (`Signer.handle`): `signer.judging` (the policy
in force, admission, the judge's stages, human approval), `signer.signing` (keys, nonce, the
signed transaction or message), `signer.outcomes` (refusals, records, audit, transitions) and
`signer.tracking` (send, track, receipts, gaps, and the fee bump in `signer.bump`). It knows
nothing of Kafka; `run_signer` moves records.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from solders.signature import Signature

from btc import psbt as bitcoin_psbts
from evm import messages, typed_data
from rules import bitcoin, judge, solana
from runtime.admins import Admins
from runtime.clock import US_PER_SECOND, Clock
from runtime.registry import REGISTRY
from runtime.rpc import Node, RpcError, RpcUnavailable
from runtime.trust import KeysNow
from schemas.auth import ServiceKeys, intent_signature_valid, outcome_forgery
from schemas.codes import Code
from schemas.emit import Emit, Source
from schemas.errors import Problem, explain
from schemas.intent import INTENT_MAX_AGE_US, TransactionIntent
from schemas.outcomes import (
    IntentAbandoned,
    IntentApproved,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from schemas.policy import AgentPolicy
from signer import chain_keys, lifecycle
from signer.bitcoin_tracking import BitcoinTracking
from signer.custody.keys import KeyStore
from signer.judging import Judging
from signer.outcomes import SERVICE, Outcomes, SigningRefused, SigningResult, digest_of
from signer.policies import PolicyBook
from signer.sealing import SealingKeyPair
from signer.sign_only import SignOnly
from signer.signing import Sidecars, Signing, authorization_nonces, sidecar_of
from signer.solana_tracking import SolanaTracking, copies_possible
from signer.state import AgentStates, SignerState
from signer.tracking import Tracking
from svm import messages as solana_messages
from svm import transactions as solana_transactions

__all__ = ["SERVICE", "Signer", "SigningRefused"]

log = logging.getLogger("warden.signer")

# What signing one intent gives: what to publish, and the transaction to send and follow, if any.
# A transaction signed to send, which a family's tracker follows to final.
Followed = SignedTransaction | SignedSolanaTransaction | SignedBitcoinTransaction
Signed = tuple[list[Emit], Followed | None]


class Tracker(Protocol):
    """Follows a family's sent transactions to final (`signer.tracking`, `signer.solana_tracking`)."""

    async def send(self, signed: Any, now: datetime) -> tuple[list[Emit], Any]: ...

    async def resume(
        self, state: SignerState, clock: Clock, publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> Sequence[Followed]: ...

    def followed_unsent(self, signed: Any) -> bool: ...

    async def keep(self, signed: Any, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]) -> object: ...


class Signer:
    def __init__(
        self,
        state: AgentStates,
        keys: KeyStore,
        admins: Admins,
        node_for: Callable[[str], Node],
        service_key: tuple[str, Ed25519PrivateKey],
        tee: str = "none",
        sealing: SealingKeyPair | None = None,
        policies: PolicyBook | None = None,
        max_age_us: int = INTENT_MAX_AGE_US,
        replace_after_us: int = 60 * US_PER_SECOND,
        max_bumps: int = 3,
        persist: Callable[[str], Awaitable[None]] | None = None,
        service_keys: ServiceKeys | None = None,
    ):
        self.state = state
        # The pinned workers' keys: only a worker's abandonment is believed (`abandoned`). None: no
        # abandonment is, and each is dead-lettered.
        self.service_keys = service_keys
        self.keys = keys
        self.admins = admins
        self.node_for = node_for
        self.tee = tee
        self.outcomes = Outcomes(state, service_key, tee)
        self.judging = Judging(
            state, admins, policies if policies is not None else PolicyBook(admins), max_age_us, REGISTRY
        )
        self.signing = Signing(state, keys, sealing or SealingKeyPair())
        self.sidecars = Sidecars(state)
        # A broadcast transaction not mined this long after it was sent is replaced (fee bump),
        # at most max_bumps times (WARDEN_TX_REPLACE_AFTER_S, WARDEN_TX_MAX_BUMPS). ``persist`` makes
        # an agent's written state durable before something leaves the signer that depends on it (a
        # fee bump sent to the chain): the changelog append in the signer process; a commit here.
        self.tracking = Tracking(
            state,
            node_for,
            self.outcomes,
            self.sidecars,
            self.judging,
            self.signing,
            replace_after_us,
            max_bumps,
            persist or self._commit,
        )
        self.solana_tracking = SolanaTracking(state, node_for, self.outcomes)
        self.bitcoin_tracking = BitcoinTracking(
            state, node_for, self.outcomes, lambda chain: self.judging.chains.get(chain).confirmations
        )
        # How each kind of intent is signed, by family (`schemas.families.FORMS`): what it
        # publishes, and the transaction to send and follow, if any.
        self._signs: dict[str, Callable[[IntentApproved, datetime], Awaitable[Signed]]] = {
            "transaction": self._sign_and_record,
            "personal_sign": self._sign_message,
            "typed_data": self._sign_message,
            "solana_transaction": self._sign_solana,
            "solana_message": self._sign_solana_message,
            "bitcoin_psbt": self._sign_bitcoin,
        }
        # Who follows a sent transaction of each family to final.
        self._trackers: dict[type, Tracker] = {
            SignedTransaction: self.tracking,
            SignedSolanaTransaction: self.solana_tracking,
            SignedBitcoinTransaction: self.bitcoin_tracking,
        }
        # Sign-only transactions followed until their nonce is taken, and cancelled when asked.
        self.sign_only = SignOnly(
            state,
            node_for,
            self.outcomes,
            self.signing,
            self.judging.policies,
            admins,
            persist or self._commit,
            max_age_us,
            lambda chain: self.judging.chains.get(chain).confirmations,
        )

    async def _commit(self, agent_id: str) -> None:
        self.state.agent(agent_id).file.commit()

    def kinds_signed(self) -> frozenset[str]:
        """The intent kinds this signer signs."""
        return frozenset(self._signs)

    def families_tracked(self) -> frozenset[type]:
        """The kinds of sent transaction this signer follows to final."""
        return frozenset(self._trackers)

    async def resume(
        self, state: SignerState, clock: Clock, publish: Callable[[list[Emit]], Awaitable[None]]
    ) -> list[Followed]:
        """A partition taken over, by each family's tracker: what each compares with the chain
        first (publishing what that changes), then every record to follow again."""
        followed: list[Followed] = []
        for tracker in self._trackers.values():
            followed += await tracker.resume(state, clock, publish)
        return followed

    def followed_unsent(self, signed: Followed) -> bool:
        """Whether ``signed``, handed back by `handle`, is followed without being sent (a sign-only
        Solana transaction, watched for copies of its message)."""
        return self._trackers[type(signed)].followed_unsent(signed)

    async def follow(
        self,
        signed: Followed,
        clock: Clock,
        emit: Callable[[list[Emit]], Awaitable[object]],
    ) -> object:
        """``signed``, sent, followed to final by its family's tracker."""
        return await self._trackers[type(signed)].keep(signed, clock, emit)

    async def handle(self, raw: bytes | None, source: Source, now: datetime) -> Signed:
        """One approved record → what to publish, and the signed tx to broadcast (if the intent asks)
        or, final already, a sign-only Solana transaction to watch for copies of its message.

        Never raises for a record it could read: whatever goes wrong while signing becomes the
        intent's one rejection, and nothing of that intent stays in the signer's state."""
        try:
            # Its chain names against the networks in force here (an unknown one: a dead letter).
            approved = IntentApproved.model_validate_json(raw or b"", context=REGISTRY.context)
        except ValidationError as exc:
            return self.dead_letter(
                raw, source, now, f"invalid IntentApproved: {'; '.join(explain(exc))}", explain(exc)
            ), None
        intent = approved.intent
        misplaced = self._off_partition(intent, "an approval", raw, source, now)
        if misplaced is not None:
            return misplaced, None
        decided = self._decided(intent, now)
        if decided is not None:
            # A refusal is final too (NO_OUTCOME for an intent given up included), so a client told
            # REJECTED is never signed for later by a redelivery or a copy of the same intent.
            return decided, None
        agent = self.state.agent(intent.agent_id)
        try:
            with agent.file.intent_scope():
                return await self._signs[intent.intent_type](approved, now)
        except SigningRefused as refused:
            # A record that is not provably the agent's (or its policy not an admin's) must not
            # decide the fate of the real intent with the same id: refused, but not remembered.
            return self.outcomes.refuse(intent, refused, now, record=refused.attributable), None
        except Exception as exc:  # noqa: BLE001 - any failure must still end the intent; the scope rolled back its state
            log.exception("signer error on intent %s; refused SIGNER_ERROR", intent.intent_id)
            return self.outcomes.refuse(
                intent,
                SigningRefused(
                    Code.SIGNER_ERROR,
                    f"the signer failed on this intent ({exc.__class__.__name__}) and did not sign it; "
                    "nothing was reserved. Submit a new intent, and report this intent id if it repeats",
                ),
                now,
            ), None

    async def abandoned(self, raw: bytes | None, source: Source, now: datetime) -> tuple[list[Emit], None]:
        """The worker that owns an intent's partition gave it up, undecided, when its redelivery
        watch found it overdue (`IntentAbandoned`): the signer has the last word on it. An intent it decided already gets that outcome again, and nothing else;
        any other is refused NO_OUTCOME here and recorded, so every approval of it that comes later
        (the worker's, or a topic writer's copy) gets that refusal again, never a signature.
        Whichever of the two this signer reads first decides; the client hears one outcome.

        Believed only when a pinned worker signed it, about the intent it carries, on that agent's
        partition, and the intent signed by the agent under the policy in force here (a forged copy
        must not take a real intent's id): anything else is dead-lettered and decides nothing."""
        try:
            abandoned = IntentAbandoned.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.dead_letter(
                raw,
                source,
                now,
                f"invalid IntentAbandoned: {'; '.join(explain(exc))}; not decided: only a streams worker gives an "
                "intent up",
                explain(exc),
            ), None
        intent = abandoned.intent
        forged = (
            Problem("no worker keys are pinned here")
            if self.service_keys is None
            else outcome_forgery(abandoned, KeysNow(self.service_keys), intent.digest())
        )
        if forged is not None:
            return self.dead_letter(
                raw,
                source,
                now,
                f"IntentAbandoned for intent {intent.intent_id} not signed by a pinned worker key ({forged}); not "
                "decided: only a streams worker gives an intent up",
            ), None
        misplaced = self._off_partition(intent, "an abandonment", raw, source, now)
        if misplaced is not None:
            return misplaced, None
        policy = self.judging.policies.current(intent.agent_id)
        if policy is not None and not intent_signature_valid(intent, policy):
            return self.dead_letter(
                raw,
                source,
                now,
                f"IntentAbandoned for intent {intent.intent_id}: the intent's Ed25519 signature does not verify "
                f"against the agent's public key in its policy v{policy.version}; not decided (the worker refused "
                "this copy AGENT_SIGNATURE_INVALID)",
            ), None
        decided = self._decided(intent, now)
        if decided is not None:
            return decided, None
        refused = SigningRefused(
            Code.NO_OUTCOME,
            "the pipeline produced no outcome for this intent in time and gave it up; the signer will not sign "
            "it. Check `warden status`, then submit a new intent",
        )
        return self.outcomes.refuse(intent, refused, now, record=True), None

    def _off_partition(
        self, intent: TransactionIntent, what: str, raw: bytes | None, source: Source, now: datetime
    ) -> list[Emit] | None:
        """The dead letter of a record about ``intent`` read off its agent's partition, else None."""
        home = self.state.partition_of(intent.agent_id)
        if home is None or source.partition == home:
            return None
        # The agent's state is in the partition its records land in; a record written to another
        # one (by hand: the worker keys by agent) would be decided with another partition's state,
        # by a signer that may not hold the agent's spend. Not decided here: dead-lettered.
        return self.dead_letter(
            raw,
            source,
            now,
            (
                f"{what} for agent {intent.agent_id!r} on partition {source.partition} of {source.topic}; its "
                f"records belong on partition {home} (keyed by agent_id). "
                "Not signed; publish it keyed by its agent id"
            ),
        )

    def _decided(self, intent: TransactionIntent, now: datetime) -> list[Emit] | None:
        """What to publish for an intent whose id this signer decided already, else None: exactly
        what was published before; for another intent under that id, its own refusal."""
        prior = self.state.agent(intent.agent_id).outcome(intent.intent_id)
        if prior is None:
            return None
        if digest_of(prior[1]) != intent.digest():
            # The same id on a different intent: the first keeps its outcome; this one gets its
            # own refusal, bound to its digest, and is not recorded under the shared id.
            return self.outcomes.refuse(
                intent,
                SigningRefused(
                    Code.INTENT_ID_REUSED,
                    f"intent id {intent.intent_id!r} was already decided here for a different "
                    "intent; every intent needs its own id",
                ),
                now,
                record=False,
            )
        return [Emit(prior[0], intent.agent_id, prior[1])]

    async def _sign_and_record(
        self, approved: IntentApproved, now: datetime
    ) -> tuple[list[Emit], SignedTransaction | None]:
        signing = await self._sign(approved, now)
        emits, signed = self.outcomes.transaction_signed(approved, signing, now)
        # A copy for a reused idempotency key follows its original's transaction to a final status.
        follow = signing.copy_of is not None and signed.status in lifecycle.OPEN
        return emits, signed if (signed.status == "signed" and signing.counts) or follow else None

    async def _sign(self, approved: IntentApproved, now: datetime) -> SigningResult:
        intent = approved.intent
        judging = self.judging
        policy, judged, reused = await judging.opening(
            approved, now, SignedTransaction, self.state.agent(intent.agent_id).signed_record
        )
        chain = REGISTRY.get(intent.chain)
        slot = intent.idempotency_slot
        if reused is not None:
            return SigningResult(reused[1], policy, copy_of=reused[0])
        spent = judging.spent(intent, now)
        judged = await judging.run_stages(
            intent, policy, judge.Context(spent=spent, chains=judging.chains), judged
        )  # with the signer's record
        judging.require_human_approval(approved, policy, judged.asset_spend, now)
        sidecar = sidecar_of(intent)
        with self.signing.agent_key(intent) as agent:
            node = self.node_for(intent.chain)
            try:
                nonce = await self.signing.nonce(intent, agent.address, node, now)
            except RpcError as exc:
                raise SigningRefused(
                    Code.CHAIN_RPC_FAILED, f"could not read the account's nonce: {exc.message}"
                ) from None
            except RpcUnavailable as exc:
                raise SigningRefused(Code.CHAIN_RPC_FAILED, f"could not read the account's nonce: {exc}") from None
            # The rest on the signer's own node, simulated and priced as the real sender.
            judged = await judging.run_stages(
                intent,
                policy,
                judge.Context(spent=spent, node=node, sender=agent.address, now=now, chains=judging.chains),
                judged,
                complete=True,
            )
            quote = judged.quote
            if quote is None:  # cannot be: every stage passed, the fee stage's quote with it
                raise RuntimeError(f"intent {intent.intent_id} passed every stage without a fee quote")
            auth_nonces = authorization_nonces(intent, nonce)
            signed = self.signing.transaction(intent, agent, chain.chain_id, nonce, quote, auth_nonces)
        # "from" is the address derived from this very key (`Signing.agent_key`), already in EIP-55 form.
        if sidecar is not None and intent.broadcast:  # kept until the transaction's status is final
            self.sidecars.keep("0x" + signed.tx_hash.hex(), sidecar)
        result = SignedTransaction(
            intent_id=intent.intent_id,
            agent_id=intent.agent_id,
            chain=intent.chain,
            chain_id=chain.chain_id,
            signed_tx="0x" + signed.raw.hex(),
            tx_hash="0x" + signed.tx_hash.hex(),
            **{"from": agent.address},
            to=intent.to,
            nonce=nonce,
            value_wei=intent.value_wei,
            tx_type=intent.tx_type,
            status="signed" if intent.broadcast else "sign_only",
            final=not intent.broadcast,  # never sent: nothing the chain does changes it
            tee=self.tee,
            signed_at=now,
            max_spend_wei=quote.spend_wei(intent),
            intent_digest=intent.digest(),
        )
        return SigningResult(
            result,
            policy,
            slot=slot,
            key=(agent.path, agent.version),
            last_nonce=max((nonce, *auth_nonces)),
            assets=dict(judged.asset_spend),
        )

    async def _sign_message(self, approved: IntentApproved, now: datetime) -> tuple[list[Emit], None]:
        """EIP-191 personal_sign or EIP-712 typed data: judged like a transaction (the policy in
        force, the agent's signature, freshness, chain, then the kind's own rule), signed with the
        agent's key for the chain, recorded, then published on warden.messages.signed."""
        intent = approved.intent
        judging = self.judging
        policy, judged, reused = await judging.opening(
            approved, now, SignedMessage, self.state.agent(intent.agent_id).message_record
        )
        chain = REGISTRY.get(intent.chain)
        slot, copy_of, assets = intent.idempotency_slot, None, None
        if reused is not None:
            copy_of, result = reused
            slot = None
        else:
            judged = await judging.run_stages(
                intent,
                policy,
                judge.Context(
                    spent=judging.spent(intent, now),
                    node=self.node_for(intent.chain),
                    now=now,
                    chains=judging.chains,
                ),
                judged,
                complete=True,
            )
            assets = dict(judged.asset_spend)
            judging.require_human_approval(approved, policy, assets, now)
            document, typed = None, None  # a typed_data intent's, and its hash
            if intent.intent_type == "personal_sign":
                if intent.message is None:  # the schema requires it of a personal_sign intent
                    raise ValueError(f"intent {intent.intent_id} is a personal_sign without its message")
                digest = messages.personal_sign_hash(bytes.fromhex(intent.message[2:]))
            else:
                document = intent.typed_data
                if document is None:  # the schema requires it of a typed_data intent
                    raise ValueError(f"intent {intent.intent_id} is a typed_data without its document")
                try:
                    typed = typed_data.hash_typed_data(document.as_document())
                except typed_data.InvalidTypedData as exc:
                    raise SigningRefused(Code.TYPED_DATA_INVALID, f"the typed data does not encode: {exc}") from None
                digest = typed.digest
            with self.signing.agent_key(intent) as agent:
                signature = self.signing.message(intent, agent, digest)
            result = SignedMessage(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                kind=intent.intent_type,
                chain=intent.chain,
                chain_id=chain.chain_id,
                **{"from": agent.address},
                message_hash="0x" + digest.hex(),
                signature="0x" + signature.hex(),
                primary_type=None if document is None else document.primaryType,
                verifying_contract=None if document is None else document.verifying_contract,
                domain_separator=None if typed is None else "0x" + typed.domain_separator.hex(),
                tee=self.tee,
                signed_at=now,
                intent_digest=intent.digest(),
            )
        return self.outcomes.message_signed(intent, result, policy, now, slot, assets, copy_of), None

    async def _sign_solana(
        self, approved: IntentApproved, now: datetime
    ) -> tuple[list[Emit], SignedSolanaTransaction | None]:
        """A Solana transaction: judged like any intent (the policy in force, the agent's
        signature, freshness, chain, then its instructions and the node's simulation with the
        signer's own spend record and node, as the key's own address), signed in the agent's slot
        with its Solana key from custody, recorded, then published on warden.solana.signed."""
        intent = approved.intent
        judging = self.judging
        policy, judged, reused = await judging.opening(
            approved, now, SignedSolanaTransaction, self.state.agent(intent.agent_id).solana_record
        )
        slot, copy_of, assets = intent.idempotency_slot, None, None
        if reused is not None:
            copy_of, result = reused
            slot = None
        else:
            with self.signing.agent_key(intent) as agent:
                self._solana_address_is_the_policys(agent.address, policy)
                judged = await judging.run_stages(
                    intent,
                    policy,
                    judge.Context(
                        spent=judging.spent(intent, now),
                        node=self.node_for(intent.chain),
                        sender=agent.address,
                        now=now,
                        chains=judging.chains,
                    ),
                    judged,
                    complete=True,
                )
                assets = dict(judged.asset_spend)
                judging.require_human_approval(approved, policy, assets, now)
                raw = self.signing.solana_transaction(intent, agent)
            tx = solana_transactions.read(raw)
            missing = [k for k in tx.signers if k not in tx.signatures]
            if intent.broadcast and missing:
                raise SigningRefused(
                    Code.SOLANA_SIGNATURES_MISSING,
                    f"broadcast needs every signature, and {', '.join(missing)} has not signed: sign only, and "
                    "send it once the other signers have",
                )
            prefix = solana.asset_key(intent.chain, "")
            result = SignedSolanaTransaction(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                chain=intent.chain,
                **{"from": agent.address},
                signature=tx.signature_of(agent.address),
                tx_signature=tx.signature_of(tx.fee_payer) if tx.fee_payer in tx.signatures else None,
                signed_tx=base64.b64encode(raw).decode(),
                recent_blockhash=tx.recent_blockhash,
                spend={key.removeprefix(prefix): str(n) for key, n in assets.items()},
                status="signed" if intent.broadcast else "sign_only",
                final=not intent.broadcast,  # never sent: nothing the chain does changes it
                tee=self.tee,
                signed_at=now,
                intent_digest=intent.digest(),
            )
        emits, signed = self.outcomes.solana_signed(intent, result, policy, now, slot, assets, copy_of)
        # Sent once its record is durable (the caller flushes first) and followed to final. An
        # idempotent copy of one not final yet is followed too: the same bytes again change
        # nothing on Solana (the network keeps one transaction per signature). A sign-only one
        # another key pays for is watched, not sent: its fee payer can land copies of it.
        if intent.broadcast and not signed.final:
            return emits, signed
        return emits, signed if copy_of is None and copies_possible(signed) else None

    async def _sign_solana_message(self, approved: IntentApproved, now: datetime) -> tuple[list[Emit], None]:
        """A Solana off-chain message: judged like any intent (the policy in force, the agent's
        signature, freshness, chain, then the message's own rule, as the key's own address),
        signed with the agent's Solana key from custody, recorded, then published on
        warden.solana.messages.signed."""
        intent = approved.intent
        judging = self.judging
        policy, judged, reused = await judging.opening(
            approved, now, SignedSolanaMessage, self.state.agent(intent.agent_id).solana_message_record
        )
        slot, copy_of = intent.idempotency_slot, None
        if reused is not None:
            copy_of, result = reused
            slot = None
        else:
            with self.signing.agent_key(intent) as agent:
                self._solana_address_is_the_policys(agent.address, policy)
                await judging.run_stages(
                    intent,
                    policy,
                    judge.Context(sender=agent.address, now=now, chains=judging.chains),
                    judged,
                    complete=True,
                )
                judging.require_human_approval(approved, policy, {}, now)
                signature = self.signing.solana_message(intent, agent)
            raw = intent.solana_message_bytes
            message = solana_messages.read(raw)
            result = SignedSolanaMessage(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                chain=intent.chain,
                **{"from": agent.address},
                signature=str(Signature.from_bytes(signature)),
                message=base64.b64encode(raw).decode(),
                message_sha256=hashlib.sha256(raw).hexdigest(),
                version=message.version,
                application_domain=message.application_domain,
                signatories=message.signatories,
                tee=self.tee,
                signed_at=now,
                intent_digest=intent.digest(),
            )
        return self.outcomes.solana_message_signed(intent, result, policy, now, slot, copy_of), None

    async def _sign_bitcoin(
        self, approved: IntentApproved, now: datetime
    ) -> tuple[list[Emit], SignedBitcoinTransaction | None]:
        """A Bitcoin PSBT: judged like any intent (the policy in force, the agent's signature,
        freshness, chain, then its inputs, outputs and fee against the signer's own node and spend
        record, as the key's own public key), every input signed with the agent's Bitcoin key from
        custody, recorded, then published on warden.bitcoin.signed and, asked to, sent."""
        intent = approved.intent
        judging = self.judging
        policy, judged, reused = await judging.opening(
            approved, now, SignedBitcoinTransaction, self.state.agent(intent.agent_id).bitcoin_record
        )
        slot, copy_of, assets, key = intent.idempotency_slot, None, None, None
        if reused is not None:
            copy_of, result = reused
            slot = None
        else:
            with self.signing.agent_key(intent) as agent:
                key = (agent.path, agent.version)
                public_key = self._bitcoin_key_is_the_policys(agent.address, policy)
                judged = await judging.run_stages(
                    intent,
                    policy,
                    judge.Context(
                        spent=judging.spent(intent, now),
                        node=self.node_for(intent.chain),
                        sender=public_key,
                        now=now,
                        chains=judging.chains,
                        claimed=judging.claimed(intent),
                    ),
                    judged,
                    complete=True,
                )
                assets = dict(judged.asset_spend)
                judging.require_human_approval(approved, policy, assets, now)
                tx = self.signing.bitcoin_transaction(intent, agent, policy)
            psbt = bitcoin_psbts.read(intent.bitcoin_psbt_bytes)
            result = SignedBitcoinTransaction(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                chain=intent.chain,
                public_key=public_key,
                txid=tx.txid,
                signed_tx=tx.raw.hex(),
                inputs=tuple(f"{i.txid}:{i.vout}" for i in psbt.inputs),
                spend={bitcoin.BTC: str(assets.get(bitcoin.asset_key(intent.chain), 0))},
                fee_sats=psbt.fee() or 0,
                vsize=tx.vsize,
                status="signed" if intent.broadcast else "sign_only",
                final=not intent.broadcast,  # never sent: nothing the chain does changes it
                tee=self.tee,
                signed_at=now,
                intent_digest=intent.digest(),
            )
        emits, signed = self.outcomes.bitcoin_signed(intent, result, policy, now, slot, assets, copy_of, key)
        # Sent once its record is durable (the caller flushes first) and followed to final; an
        # idempotent copy of one not final yet is followed too (the same bytes again change nothing).
        return emits, None if signed.final else signed

    @staticmethod
    def _bitcoin_key_is_the_policys(address: str, policy: AgentPolicy) -> str:
        """The policy's ``bitcoin.public_key`` when it is the custody key's (whose mainnet P2WPKH
        address is ``address``); SigningRefused otherwise."""
        named = None if policy.bitcoin is None else policy.bitcoin.public_key
        if named is None or chain_keys.address("bitcoin", bytes.fromhex(named)) != address:
            raise SigningRefused(
                Code.BITCOIN_KEY_MISMATCH,
                f"the agent's Bitcoin key (address {address} on mainnet) is not the policy's bitcoin.public_key "
                f"({named or 'not set'}): an admin sets it to the key's public key (`warden keys list --chain bitcoin --json`)",
            )
        return named

    @staticmethod
    def _solana_address_is_the_policys(address: str, policy: AgentPolicy) -> None:
        if policy.solana is None or address != policy.solana.address:
            raise SigningRefused(
                Code.SOLANA_ADDRESS_MISMATCH,
                f"the agent's Solana key has address {address}, but its policy's solana.address is "
                f"{policy.solana.address if policy.solana else 'not set'}: an admin sets it to the key's address",
            )

    async def send(self, signed: Followed, now: datetime) -> tuple[list[Emit], Followed | None]:
        """The signed bytes to the chain once, before the next intent is signed, by the tracker of
        their family (`Tracking.send`, `SolanaTracking.send`)."""
        return await self._trackers[type(signed)].send(signed, now)

    async def track(
        self,
        signed: SignedTransaction,
        now: Clock,
        emit: Callable[[list[Emit]], Awaitable[object]],
        resend: bool = False,
    ) -> SignedTransaction:
        """`Tracking.track`: one transaction followed until the chain decides it, every change through ``emit``."""
        return await self.tracking.track(signed, now, emit, resend)

    def dead_letter(
        self, raw: bytes | None, source: Source, now: datetime, reason: str, errors: tuple[str, ...] = ()
    ) -> list[Emit]:
        """A record the signer cannot process, dead-lettered under its signature."""
        return self.outcomes.dead_letter(raw, source, now, reason, errors)
