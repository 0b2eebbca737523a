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

`Signer.handle` knows nothing of Kafka; `run_signer` moves records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from evm import authorizations, blobs, messages, typed_data
from evm import transactions as txs
from rules import guardrails, judge, movements
from rules.window import SpendWindow
from runtime import metrics
from runtime.clock import US_PER_SECOND, Clock, to_us
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas import topics
from schemas.auth import human_approval_valid, sign_outcome
from schemas.chains import REGISTRY
from schemas.emit import Emit, Source, audit, dead_letter
from schemas.errors import explain
from schemas.intent import INTENT_MAX_AGE_US, INTENT_MAX_FUTURE_US, TransactionIntent
from schemas.outcomes import (
    HumanApproval,
    IntentApproved,
    IntentRejected,
    SignedMessage,
    SignedTransaction,
    StageVerdict,
)
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from signer import blocks, lifecycle
from signer.custody import fingerprint
from signer.custody._crypto import wipe
from signer.custody.errors import AttestationRequired, CustodyError, InvalidKey, ProviderUnavailable
from signer.policies import PolicyBook
from signer.sealing import NotSealedHere, SealingKeyPair
from signer.state import SignerState

log = logging.getLogger("warden.signer")
SERVICE = "service:signer"
# A tracker asks for its receipt when its chain's block watch (signer.blocks) sees one of its
# transactions in a block. The nonce, the mempool and the replacement rules are looked at after
# a block is read (the nonce may have moved) or when the replacement delay or the nonce's settle
# time runs out, and at most once a second.
STEP_EVERY_US = US_PER_SECOND
# An idempotent copy looks at its original's record (local state) twice a second.
FOLLOW_EVERY_S = 0.5


CLIENT_SHARE_INVALID = "CLIENT_SHARE_INVALID"
# One answer for a missing, wrong or tampered client share: which of them it was is not told.
CLIENT_SHARE_INVALID_REASON = (
    "the client share is missing or does not open the signing key; seal the share shown when the vault was "
    "created to the signer's current sealing key (SDK: Client.client_share) and submit a new intent"
)
CMEK_INVALID = "CMEK_INVALID"
CMEK_INVALID_REASON = (
    "the signing-key vault has a customer-managed key, and the intent's is missing or is not the current one; "
    "seal the current key to the signer's sealing key (SDK: Client.cmek) and submit a new intent"
)


class SigningRefused(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def build_transaction(
    intent: TransactionIntent, chain_id: int, nonce: int, gas: int, fees: dict[str, int], authorization_list: tuple = ()
):
    """The transaction for an intent, with exactly the gas and fees the signer priced and checked
    (and, for type 4, the authorizations the signer signed)."""
    to = bytes.fromhex(intent.to[2:])
    data = bytes.fromhex(intent.data[2:])
    access = tuple(
        (bytes.fromhex(e.address[2:]), tuple(bytes.fromhex(k[2:]) for k in e.storage_keys)) for e in intent.access_list
    )
    if intent.tx_type == 0:
        return txs.LegacyTransaction(nonce, fees["gas_price"], gas, to, intent.value_wei, data)
    if intent.tx_type == 1:
        return txs.AccessListTransaction(chain_id, nonce, fees["gas_price"], gas, to, intent.value_wei, data, access)
    tip, cap = fees["max_priority_fee_per_gas"], fees["max_fee_per_gas"]
    if intent.tx_type == 3:
        hashes = tuple(bytes.fromhex(h[2:]) for h in intent.blob_versioned_hashes)
        return txs.BlobTransaction(
            chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access, intent.max_fee_per_blob_gas, hashes
        )
    if intent.tx_type == 4:
        return txs.SetCodeTransaction(
            chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access, authorization_list
        )
    return txs.FeeMarketTransaction(chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access)


class Signer:
    def __init__(
        self,
        state: SignerState,
        keys,
        admin_keys: dict[str, str],
        node_for: Callable[[str], Node],
        service_key: tuple[str, Ed25519PrivateKey],
        tee: str = "none",
        sealing: SealingKeyPair | None = None,
        policies: PolicyBook | None = None,
        max_age_us: int = INTENT_MAX_AGE_US,
        replace_after_us: int = 60 * US_PER_SECOND,
        max_bumps: int = 3,
        persist: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.state = state
        # Makes an agent's written state durable before something leaves the signer that depends on
        # it (a fee bump sent to the chain): the changelog append in the signer process; a commit here.
        self.persist = persist or self._commit
        self.keys = keys
        self.sealing = sealing or SealingKeyPair()
        self.admin_keys = admin_keys
        self.policies = policies if policies is not None else PolicyBook(admin_keys)
        self.node_for = node_for
        self.key_id, self._service_key = service_key
        self.tee = tee
        self.max_age_us = max_age_us
        # A broadcast transaction not mined this long after it was sent is replaced (fee bump),
        # at most max_bumps times (WARDEN_TX_REPLACE_AFTER_S, WARDEN_TX_MAX_BUMPS).
        self.replace_after_us = replace_after_us
        self.max_bumps = max_bumps
        self._addresses: dict[tuple[str, int], str] = {}  # (key path, version) → address: public
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}  # (chain, address) → (pending nonce, asked at µs)
        # Blob tx hash → its blobs, commitments and proofs, while it may be sent (again).
        self._sidecars: dict[str, blobs.Sidecar] = {}
        self._watches: dict[str, blocks.BlockWatch] = {}  # chain → its reader of new blocks

    async def _commit(self, agent_id: str) -> None:
        self.state.agent(agent_id).file.commit()

    async def handle(
        self, raw: bytes | None, source: Source, now: datetime
    ) -> tuple[list[Emit], SignedTransaction | None]:
        """One approved record → what to publish, and the signed tx to broadcast (if the intent asks).

        Never raises for a record it could read: whatever goes wrong while signing becomes the
        intent's one rejection, and nothing of that intent stays in the signer's state."""
        try:
            approved = IntentApproved.model_validate_json(raw or b"")
        except ValidationError as exc:
            return self.dead_letter(
                raw, source, now, f"invalid IntentApproved: {'; '.join(explain(exc))}", explain(exc)
            ), None
        intent = approved.intent
        home = self.state.partition_of(intent.agent_id)
        if home is not None and source.partition != home:
            # The agent's state is in the partition its records land in; a record written to another
            # one (by hand: the worker keys by agent) would be decided with another partition's state,
            # by a signer that may not hold the agent's spend. Not decided here: dead-lettered.
            return self.dead_letter(
                raw,
                source,
                now,
                (
                    f"an approval for agent {intent.agent_id!r} on partition {source.partition} of {source.topic}; its "
                    f"records belong on partition {home} (keyed by agent_id). "
                    "Not signed; publish it keyed by its agent id"
                ),
            ), None
        prior = self.state.agent(intent.agent_id).outcome(intent.intent_id)
        if prior is not None:
            if _digest_of(prior[1]) != intent.digest():
                # The same id on a different intent: the first keeps its outcome; this one gets its
                # own refusal, bound to its digest, and is not recorded under the shared id.
                return self._refuse(
                    intent,
                    SigningRefused(
                        "INTENT_ID_REUSED",
                        f"intent id {intent.intent_id!r} was already decided here for a different "
                        "intent; every intent needs its own id",
                    ),
                    now,
                    record=False,
                ), None
            # Redelivered: publish exactly what was published before. A refusal is final too, so a
            # client told REJECTED is never signed for later by a redelivery of the same intent.
            return [Emit(prior[0], intent.agent_id, prior[1])], None
        try:
            with self.state.agent(intent.agent_id).file.intent_scope():
                if intent.intent_type != "transaction":
                    return await self._sign_message(approved, now)
                return await self._sign_and_record(approved, now)
        except SigningRefused as refused:
            # A record that is not provably the agent's (or its policy not an admin's) must not
            # decide the fate of the real intent with the same id: refused, but not remembered.
            return self._refuse(intent, refused, now, record=refused.code not in _NOT_ATTRIBUTABLE), None
        except Exception as exc:  # noqa: BLE001 - any failure must still end the intent; the scope rolled back its state
            log.exception("signer error on intent %s; refused SIGNER_ERROR", intent.intent_id)
            return self._refuse(
                intent,
                SigningRefused(
                    "SIGNER_ERROR",
                    f"the signer failed on this intent ({exc.__class__.__name__}) and did not sign it; "
                    "nothing was reserved. Submit a new intent, and report this intent id if it repeats",
                ),
                now,
            ), None

    async def _sign_and_record(
        self, approved: IntentApproved, now: datetime
    ) -> tuple[list[Emit], SignedTransaction | None]:
        intent = approved.intent
        signing = await self._sign(approved, now)
        signed = self._signed(signing.record)
        record = signed.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("signed", "SIGNED").inc()
        metrics.TXS.labels(signed.status).inc()
        self.state.agent(intent.agent_id).record_signed(
            intent_id=intent.intent_id,
            record=record,
            now_us=to_us(now),
            chain=intent.chain,
            address=signed.from_,
            nonce=signed.nonce,
            spend_wei=signed.max_spend_wei,
            counts=signing.counts,
            policy_version=signing.policy.version,
            idempotency_slot=signing.slot,
            tx_hash=signed.tx_hash if signing.counts else None,
            last_nonce=signing.last_nonce,
            assets=signing.assets,
            context=(intent.to_bytes(), *signing.key) if signing.key else None,
            copy_of=signing.copy_of,
        )
        emits = [
            Emit(topics.TXS_SIGNED, intent.agent_id, record),
            audit(
                SERVICE,
                "tx.signed",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                chain=intent.chain,
                chain_id=signed.chain_id,
                tx_hash=signed.tx_hash,
                **{"from": signed.from_},
                to=signed.to,
                nonce=signed.nonce,
                value_wei=str(signed.value_wei),
                max_spend_wei=str(signed.max_spend_wei),
                policy_version=signing.policy.version,
                status=signed.status,
                tee=self.tee,
                kind="transaction",
                tx_type=signed.tx_type,
                asset_spend={k: str(v) for k, v in (signing.assets or {}).items()},
                approved_by=approved.human_approval.admin_key_id if approved.human_approval else None,
                **intent.type_facts(),
            ),
        ]
        # A copy for a reused idempotency key follows its original's transaction to a final status.
        follow = signing.copy_of is not None and signed.status in lifecycle.OPEN
        return emits, signed if (signed.status == "signed" and signing.counts) or follow else None

    async def _sign(self, approved: IntentApproved, now: datetime) -> _Signing:
        intent = approved.intent
        policy = self._verify(approved, now)
        judged = await self._judge(intent, policy, judge.Context())  # what the policy alone decides
        chain = REGISTRY.get(intent.chain)
        slot = intent.idempotency_slot
        reused = self._reused_key(intent, now, SignedTransaction, self.state.agent(intent.agent_id).signed_record)
        if reused is not None:
            return _Signing(reused[1], policy, copy_of=reused[0])
        spent = self._spent(intent, now)
        judged = await self._judge(intent, policy, judge.Context(spent=spent), judged)  # with the signer's record
        self._require_human_approval(approved, policy, judged.asset_spend, now)
        sidecar = self._sidecar(intent)
        with self._agent_key(intent) as agent:
            node = self.node_for(intent.chain)
            try:
                nonce = await self._nonce(intent, agent.address, node, now)
            except RpcError as exc:
                raise SigningRefused("CHAIN_RPC_FAILED", f"could not read the account's nonce: {exc.message}") from None
            except RpcUnavailable as exc:
                raise SigningRefused("CHAIN_RPC_FAILED", f"could not read the account's nonce: {exc}") from None
            # The rest on the signer's own node, simulated and priced as the real sender.
            judged = await self._judge(
                intent, policy, judge.Context(spent=spent, node=node, sender=agent.address), judged, complete=True
            )
            quote = judged.quote
            auth_nonces = self._authorization_nonces(intent, nonce)
            with self._private_key(intent, agent) as key:
                signed_auths = tuple(
                    authorizations.sign_authorization(
                        authorizations.Authorization(request.chain_id, bytes.fromhex(request.address[2:]), auth_nonce),
                        key,
                    )
                    for request, auth_nonce in zip(intent.authorization_list, auth_nonces)
                )
                tx = build_transaction(
                    intent, chain.chain_id, nonce, quote.gas_limit, quote.fees(intent.tx_type), signed_auths
                )
                signed = txs.sign_transaction(tx, key, chain.chain_id, sender=bytes.fromhex(agent.address[2:]))
        # "from" is the address derived from this very key (`_address`), already in EIP-55 form.
        if sidecar is not None and intent.broadcast:  # kept until the transaction's status is final
            self._sidecars["0x" + signed.tx_hash.hex()] = sidecar
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
            tee=self.tee,
            signed_at=now,
            max_spend_wei=quote.spend_wei(intent),
            intent_digest=intent.digest(),
        )
        return _Signing(
            result,
            policy,
            slot=slot,
            key=(agent.path, agent.version),
            last_nonce=max((nonce, *auth_nonces)),
            assets=dict(judged.asset_spend),
        )

    def _reused_key(self, intent: TransactionIntent, now: datetime, model, read) -> tuple[str, object] | None:
        """When the intent's idempotency key was used within 24 h: (the first intent's id, its signed
        record under this intent's id and digest). The first must have been signed, as this kind."""
        slot = intent.idempotency_slot
        original = None if slot is None else self.state.agent(intent.agent_id).idempotent_original(slot, to_us(now))
        if original is None:
            return None
        cached = read(original)
        if cached is None:
            raise SigningRefused(
                "IDEMPOTENT_ORIGINAL_NOT_SIGNED",
                (f"idempotency key was used by intent {original}, which was not signed as a {intent.intent_type}"),
            )
        return original, model.from_bytes(cached).model_copy(
            update={"intent_id": intent.intent_id, "signed_at": now, "intent_digest": intent.digest()}
        )

    @contextlib.contextmanager
    def _agent_key(self, intent: TransactionIntent) -> Iterator[_AgentKey]:
        """The agent's signing key version for the intent's chain and its address, with the
        client-held secrets it needs (unsealed from the intent, wiped when the block ends)."""
        try:
            path = self.keys.resolve_signing_path(
                intent.agent_id, intent.chain, intent.signing_key_path, (f"agents/{intent.agent_id}/", "keys/")
            )
            version = self.keys.active_version(path)
        except Exception as exc:  # custody errors are deliberately opaque; say what to do
            raise self._key_unavailable(intent, exc) from None
        share = self._client_share(intent)
        try:
            cmek = self._cmek(intent)
        except SigningRefused:
            wipe(share)
            raise
        try:
            with self._custody_errors(intent, share, cmek):
                address = self._address(path, version, share, cmek)
            yield _AgentKey(path, version, address, share, cmek)
        finally:
            wipe(share)
            wipe(cmek)

    @contextlib.contextmanager
    def _private_key(self, intent: TransactionIntent, agent: _AgentKey) -> Iterator[bytearray]:
        # The exact version whose address the nonce was taken for, never "whatever is newest now".
        with (
            self._custody_errors(intent, agent.share, agent.cmek),
            self.keys.open_private_key(agent.path, agent.version, client_share=agent.share, cmek=agent.cmek) as key,
        ):
            yield key

    @staticmethod
    def _authorization_nonces(intent: TransactionIntent, nonce: int) -> tuple[int, ...]:
        """EIP-7702: the sender's nonce is raised before the authorization list is applied, so an
        authorization by the sender itself is valid only at the transaction's nonce + 1. One the
        agent names must be exactly that, or it would be signed and then skipped by the chain."""
        wanted = tuple(nonce + 1 + index for index in range(len(intent.authorization_list)))
        for request, expected in zip(intent.authorization_list, wanted):
            if request.nonce is not None and request.nonce != expected:
                raise SigningRefused(
                    "EIP7702_NONCE_MISMATCH",
                    (
                        f"the authorization names nonce {request.nonce}, but the account's next nonce after this "
                        f"transaction (nonce {nonce}) is {expected}; leave the authorization's nonce out and the signer "
                        "sets it"
                    ),
                )
        try:
            for authorization_nonce in wanted:
                txs.check_nonce(authorization_nonce)
        except txs.InvalidTransaction:
            raise SigningRefused(
                "NONCE_EXHAUSTED", "the authorization's nonce would pass what EIP-2681 allows"
            ) from None
        return wanted

    def _sidecar(self, intent: TransactionIntent) -> blobs.Sidecar | None:
        """Blob transactions with their blobs: the KZG commitments and proofs, and the check that
        the blobs are the ones the signed versioned hashes name."""
        if not intent.blobs:
            return None
        try:
            sidecar = blobs.make_sidecar(tuple(bytes.fromhex(blob[2:]) for blob in intent.blobs))
        except blobs.InvalidBlob as exc:
            raise SigningRefused("BLOB_INVALID", f"{exc}") from None
        named = tuple(bytes.fromhex(h[2:]) for h in intent.blob_versioned_hashes)
        if tuple(sidecar.versioned_hashes) != named:
            index = next(i for i, (a, b) in enumerate(zip(sidecar.versioned_hashes, named)) if a != b)
            raise SigningRefused(
                "BLOB_HASH_MISMATCH",
                (
                    f"blobs[{index}] commits to versioned hash 0x{sidecar.versioned_hashes[index].hex()}, but "
                    f"blob_versioned_hashes[{index}] is 0x{named[index].hex()}; the hashes must be the blobs' own"
                ),
            )
        return sidecar

    async def _sign_message(self, approved: IntentApproved, now: datetime) -> tuple[list[Emit], None]:
        """EIP-191 personal_sign or EIP-712 typed data: judged like a transaction (the policy in
        force, the agent's signature, freshness, chain, then the kind's own rule), signed with the
        agent's key for the chain, recorded, then published on warden.messages.signed."""
        intent = approved.intent
        policy = self._verify(approved, now)
        judged = await self._judge(intent, policy, judge.Context())  # what the policy alone decides
        chain = REGISTRY.get(intent.chain)
        slot, copy_of, assets = intent.idempotency_slot, None, None
        reused = self._reused_key(intent, now, SignedMessage, self.state.agent(intent.agent_id).message_record)
        if reused is not None:
            copy_of, result = reused
            slot = None
        else:
            judged = await self._judge(
                intent, policy, judge.Context(spent=self._spent(intent, now)), judged, complete=True
            )
            assets = dict(judged.asset_spend)
            self._require_human_approval(approved, policy, assets, now)
            typed = None
            if intent.intent_type == "personal_sign":
                digest = messages.personal_sign_hash(bytes.fromhex(intent.message[2:]))
            else:
                try:
                    typed = typed_data.hash_typed_data(intent.typed_data.as_document())
                except typed_data.InvalidTypedData as exc:
                    raise SigningRefused("TYPED_DATA_INVALID", f"the typed data does not encode: {exc}") from None
                digest = typed.digest
            with self._agent_key(intent) as agent, self._private_key(intent, agent) as key:
                signature = messages.sign_digest(digest, key)
            result = SignedMessage(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                kind=intent.intent_type,
                chain=intent.chain,
                chain_id=chain.chain_id,
                **{"from": agent.address},
                message_hash="0x" + digest.hex(),
                signature="0x" + signature.hex(),
                primary_type=None if typed is None else intent.typed_data.primaryType,
                verifying_contract=None if typed is None else intent.typed_data.verifying_contract,
                domain_separator=None if typed is None else "0x" + typed.domain_separator.hex(),
                tee=self.tee,
                signed_at=now,
                intent_digest=intent.digest(),
            )
        signed = self._signed(result)
        record = signed.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("signed", "SIGNED").inc()
        self.state.agent(intent.agent_id).record_message(
            intent_id=intent.intent_id,
            record=record,
            now_us=to_us(now),
            policy_version=policy.version,
            idempotency_slot=slot,
            assets=assets,
        )
        return [
            Emit(topics.MESSAGES_SIGNED, intent.agent_id, record),
            audit(
                SERVICE,
                "message.signed",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                kind=signed.kind,
                chain=intent.chain,
                chain_id=signed.chain_id,
                **{"from": signed.from_},
                message_hash=signed.message_hash,
                primary_type=signed.primary_type,
                verifying_contract=signed.verifying_contract,
                domain_separator=signed.domain_separator,
                policy_version=policy.version,
                tee=self.tee,
                idempotent_copy_of=copy_of,
            ),
        ], None

    def _verify(self, approved: IntentApproved, now: datetime) -> AgentPolicy:
        """Admission: the policy in force (the signer's own), the agent's signature under it and
        freshness. Returns the policy to judge under."""
        intent = approved.intent
        policy = self._policy_in_force(approved)
        # An intent that waited for an admin is as old as its wait; the admin's fresh approval vouches for it.
        max_age = self.max_age_us + (
            policy.approval_timeout_s * US_PER_SECOND if self._human_approval(approved, now) is not None else 0
        )
        admitted = judge.admit(intent, policy, now, max_age)
        if not admitted.passed:
            raise SigningRefused(admitted.code, f"signer re-check failed: {admitted.reason}")
        return policy

    @staticmethod
    async def _judge(
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
                "STAGE_NOT_JUDGED", f"the {judged.next_stage(intent)} stage was not judged; nothing is signed"
            )
        return judged

    def _spent(self, intent: TransactionIntent, now: datetime) -> Callable[[str], int]:
        """The signer's own record of the agent's last 24 h, per asset key: the native spend
        leaves out the intent's own (a fee bump replaces it; a new intent has none)."""
        now_us, state = to_us(now), self.state.agent(intent.agent_id)

        def spent(asset: str) -> int:
            if asset == movements.NATIVE:
                return state.spent(now_us, excluding=intent.intent_id)
            return SpendWindow(state.asset_entries(asset, now_us)).spent(now_us)

        return spent

    def _human_approval(self, approved: IntentApproved, now: datetime) -> HumanApproval | None:
        """The admin's approval the record carries, if it is one this signer believes: signed by a
        pinned admin key, an approval of exactly this intent (id and digest), and fresh."""
        approval, intent = approved.human_approval, approved.intent
        if approval is None or approval.decision != "approve" or not human_approval_valid(approval, self.admin_keys):
            return None
        if (approval.intent_id, approval.agent_id, approval.intent_digest) != (
            intent.intent_id,
            intent.agent_id,
            intent.digest(),
        ):
            return None
        age = to_us(now) - to_us(approval.decided_at)
        return approval if -INTENT_MAX_FUTURE_US <= age < self.max_age_us else None

    def _require_human_approval(
        self, approved: IntentApproved, policy: AgentPolicy, assets: dict[str, int], now: datetime
    ) -> None:
        """Above a threshold of the signer's own policy, nothing is signed without an admin's approval."""
        why = guardrails.approval_needed(approved.intent, policy, assets)
        if why is not None and self._human_approval(approved, now) is None:
            raise SigningRefused(
                "HUMAN_APPROVAL_REQUIRED",
                (
                    f"{why}, and the record carries no valid admin approval of this intent (signed by a pinned admin key, "
                    "bound to its digest, fresh); it waits for `warden approvals approve` through the pipeline"
                ),
            )

    def _policy_in_force(self, approved: IntentApproved) -> AgentPolicy:
        intent, offered = approved.intent, approved.policy
        if not self.policies.signed(offered):
            raise SigningRefused("POLICY_SIGNATURE_INVALID", "the policy is not signed by a pinned admin key")
        if offered.agent_id != intent.agent_id:
            raise SigningRefused("POLICY_AGENT_MISMATCH", "the policy belongs to another agent")
        self.policies.offer(offered)  # a newer signed policy than the topic has brought yet is adopted
        held = self.policies.current(intent.agent_id)
        newest = max(held.version, self.state.agent(intent.agent_id).policy_version())
        if offered.version < newest:
            raise SigningRefused(
                "POLICY_SUPERSEDED",
                f"approved under policy v{offered.version}, but this agent's "
                f"policy is now v{newest}; submit the intent again to be "
                "judged under the current policy",
            )
        return held

    def _spend_refusal(
        self, intent: TransactionIntent, policy: AgentPolicy, quote: FeeQuote, now: datetime
    ) -> StageVerdict | None:
        """The first of fee ceiling, cap and rolling limit that the fee bump's ``quote`` fails, if any."""
        checked = judge.check_spend(intent, policy, quote, self._spent(intent, now)(movements.NATIVE))
        return None if checked[-1].passed else checked[-1]

    def _address(self, path: str, version: int, share: bytearray | None, cmek: bytearray | None) -> str:
        # Derived once per key version from the key itself, not from metadata someone could edit.
        # With client-held keys it is derived every time: that checks them before any RPC, so a
        # wrong one always gets the same answer, whatever the chain is doing.
        if (path, version) not in self._addresses or share is not None or cmek is not None:
            with self.keys.open_private_key(path, version, client_share=share, cmek=cmek) as key:
                self._addresses[(path, version)] = txs.checksum(txs.address_of(key))
        return self._addresses[(path, version)]

    def _client_share(self, intent: TransactionIntent) -> bytearray | None:
        """In the client-custody modes: the client's share, unsealed from the intent. The caller wipes it."""
        if not self.keys.client_custody:
            return None
        try:
            return self.sealing.open_client_share(intent)
        except NotSealedHere:
            raise self._sealed_to_old_key(
                "CLIENT_SHARE_SEALED_TO_OLD_KEY", intent.sealed_client_share, "client share"
            ) from None
        except InvalidKey:
            raise SigningRefused(CLIENT_SHARE_INVALID, CLIENT_SHARE_INVALID_REASON) from None

    def _cmek(self, intent: TransactionIntent) -> bytearray | None:
        """When the vault has a customer-managed key: that key, unsealed from the intent and checked
        against the vault's (public) fingerprint, so a wrong CMEK is told apart from a wrong client
        share without telling anything about the share. The caller wipes it."""
        expected = self.keys.cmek_fingerprint
        if expected is None:
            return None
        try:
            cmek = self.sealing.open_cmek(intent)
        except NotSealedHere:
            raise self._sealed_to_old_key(
                "CMEK_SEALED_TO_OLD_KEY", intent.sealed_cmek, "customer-managed key"
            ) from None
        except InvalidKey:
            raise SigningRefused(CMEK_INVALID, CMEK_INVALID_REASON) from None
        if not hmac.compare_digest(fingerprint(cmek), expected):
            wipe(cmek)
            raise SigningRefused(CMEK_INVALID, CMEK_INVALID_REASON)
        return cmek

    def _sealed_to_old_key(self, code: str, copies, what: str) -> SigningRefused:
        return SigningRefused(
            code,
            f"the {what} is sealed to signer key(s) {[c.key_id for c in copies]}, not to this signer's current "
            f"key {self.sealing.key_id} (the signer restarted since): read warden.signer.sealing again and submit "
            "a new intent",
        )

    @contextlib.contextmanager
    def _custody_errors(
        self, intent: TransactionIntent, share: bytearray | None, cmek: bytearray | None
    ) -> Iterator[None]:
        """Custody failures become refusals, so a failed key is an outcome, not a silence."""
        try:
            yield
        except SigningRefused:
            raise
        except InvalidKey:
            # The CMEK was checked against its fingerprint already, so with a share in play the
            # share is what did not fit: the one opaque answer.
            if share is not None:
                raise SigningRefused(CLIENT_SHARE_INVALID, CLIENT_SHARE_INVALID_REASON) from None
            if cmek is not None:  # a version still wrapped under a retiring CMEK, mid-rotation
                raise SigningRefused(CMEK_INVALID, CMEK_INVALID_REASON) from None
            raise self._key_unavailable(intent, InvalidKey()) from None
        except CustodyError as exc:
            raise self._key_unavailable(intent, exc) from None

    @staticmethod
    def _key_unavailable(intent: TransactionIntent, exc: Exception) -> SigningRefused:
        if isinstance(exc, AttestationRequired):
            # The vault's key goes only to an attested signer; the release gate audited the refusal.
            return SigningRefused(AttestationRequired.code, str(exc))
        if isinstance(exc, ProviderUnavailable):
            # Names the provider and what failed; never key material (custody's messages carry none).
            return SigningRefused("ROOT_PROVIDER_UNAVAILABLE", f"the signing key could not be unwrapped: {exc}")
        return SigningRefused(
            "SIGNING_KEY_UNAVAILABLE",
            f"no usable signing key for agent {intent.agent_id!r} on {intent.chain}: "
            f"{exc.__class__.__name__}; provision one with `warden keys provision`",
        )

    async def _nonce(self, intent: TransactionIntent, address: str, node, now: datetime) -> int:
        if intent.nonce is not None:
            # Naming a nonce is for replacing a transaction this signer signed at it; any other
            # would let an agent open a gap that stalls every later transaction of the address.
            if not self.state.agent(intent.agent_id).signed_at_nonce(intent.chain, address, intent.nonce):
                raise SigningRefused(
                    "NONCE_NOT_ALLOWED",
                    f"nonce {intent.nonce} is not one this signer signed at for "
                    f"{address} on {intent.chain}; leave nonce unset (the "
                    "signer picks it) or name one only to replace a "
                    "transaction",
                )
            return intent.nonce
        tracked = self.state.agent(intent.agent_id).last_nonce(intent.chain, address)
        pending = await self._pending_nonce(intent.chain, address, node, now)
        nonce = pending if tracked is None else max(tracked + 1, pending)
        try:
            txs.check_nonce(nonce)
        except txs.InvalidTransaction:
            raise SigningRefused("NONCE_EXHAUSTED", f"{address} has used every nonce EIP-2681 allows") from None
        return nonce

    async def _pending_nonce(self, chain: str, address: str, node, now: datetime) -> int:
        # Asking the node on every intent costs a round trip; its answer only matters when it is
        # ahead of what this signer tracked (someone else used the address), so a 1 s old answer
        # is as good for that purpose.
        now_us = to_us(now)
        cached = self._pending.get((chain, address))
        if cached is not None and 0 <= now_us - cached[1] < US_PER_SECOND:
            return cached[0]
        pending = int(await node.call("eth_getTransactionCount", address, "pending"), 16)
        self._pending[(chain, address)] = (pending, now_us)
        return pending

    def _refuse(
        self, intent: TransactionIntent, refused: SigningRefused, now: datetime, record: bool = True
    ) -> list[Emit]:
        rejected = self._signed(
            IntentRejected(
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                stage="signing",
                code=refused.code,
                reason=refused.reason,
                decided_at=now,
                intent_digest=intent.digest(),
                tee=self.tee,
            )
        )
        raw = rejected.to_bytes()
        metrics.SIGNER_OUTCOMES.labels("refused", refused.code).inc()
        if record:
            self.state.agent(intent.agent_id).record_refused(intent_id=intent.intent_id, record=raw, now_us=to_us(now))
        return [
            Emit(topics.INTENTS_REJECTED, intent.agent_id, raw),
            audit(
                SERVICE,
                "tx.sign_failed",
                f"intent:{intent.intent_id}",
                now,
                intent.intent_id,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                code=refused.code,
                reason=refused.reason,
                tee=self.tee,
            ),
        ]

    async def send(self, signed: SignedTransaction, now: datetime) -> tuple[list[Emit], SignedTransaction | None]:
        """Hand the signed bytes to the chain: (what to publish, the record to `track`, or None
        when the node refused it). Called before the next intent is signed, so when the node
        refuses, the nonce can be given back without leaving a gap. An idempotent copy is not
        sent: its original was."""
        if self.state.agent(signed.agent_id).original_of(signed.intent_id) is not None:
            return [], signed
        try:
            await self.node_for(signed.chain).call("eth_sendRawTransaction", self._network_form(signed))
        except RpcError as exc:
            # "nonce too low" at the first send: another transaction has the nonce; the tracker
            # reports it dropped (or replaced). The nonce is not given back: it is used.
            if not _already_sent(exc.message):
                # Never on chain: its nonce goes back to the next intent and its spend is settled to nothing.
                self.state.agent(signed.agent_id).release_nonce(
                    signed.chain, signed.from_, signed.nonce, last=self._last_nonce(signed)
                )
                self.state.agent(signed.agent_id).settle_spend(signed.intent_id, 0, executed=False)
                emits, _ = self._transition(
                    signed, {"status": "failed", "error": f"node refused the transaction: {exc.message}"}, now
                )
                return emits, None
        except RpcUnavailable:
            # The node may or may not have it: not a refusal. The tracker sends it again.
            return [], signed
        return self._transition(signed, {"status": "broadcast"}, now)

    async def track(
        self,
        signed: SignedTransaction,
        now: Clock,
        emit: Callable[[list[Emit]], Awaitable[object]],
        resend: bool = False,
    ) -> SignedTransaction:
        """Follow one transaction for the chain until its status is final, publishing every
        change through ``emit``; returns the final record.

        Mined or failed come from a receipt of any of its transactions (a fee bump may have
        been outrun by the original); replaced or dropped when the chain's nonce passed it with
        none of them mined. Not mined within the replacement delay, it is sent again if the node
        lost it, else replaced with a fee bump the current policy allows (ceiling, cap and the
        rolling limit count the bump), else reported stuck with the reason; a nonce gap is
        reported too. While the node cannot answer, nothing is reported: an outcome is only ever
        what the chain said. With ``resend`` (after a restart), or while the record is still
        ``signed`` (the node did not answer the send), the same bytes are sent first."""
        original = self.state.agent(signed.agent_id).original_of(signed.intent_id)
        if original is not None:
            return await self._follow(signed, original, now, emit)
        node = self.node_for(signed.chain)
        if resend or signed.status == "signed":
            error = await self._send_again(signed, node)
            if error is None and signed.status == "signed":
                emits, signed = self._transition(signed, {"status": "broadcast"}, now())
                await emit(emits)
        hashes = [h for h in self.state.agent(signed.agent_id).attempts(signed.intent_id) if h != signed.tx_hash] + [
            signed.tx_hash
        ]
        watch = self.watch_for(signed.chain)
        # Waiting before the first look: a block that comes after it wakes this tracker.
        ticket = watch.ticket(hashes)
        tracked = _Tracked(signed, sent_us=to_us(now()), hashes=hashes, ticket=ticket)
        check_us = look_us = 0
        stepped_at = -1  # the watch's reading at the last step

        def idle() -> bool:
            # A step that said Wait says the same until a block is read or its time comes.
            return tracked.waiting is not None and watch.reading == stepped_at

        def step_due_us() -> int:
            return max(check_us, tracked.waiting.until_us) if idle() else check_us

        try:
            while True:
                try:
                    # Its receipt is asked for when a block holds one of its transactions (and
                    # once in a while in case the watch missed it), not on every turn.
                    if ticket.take() or to_us(now()) >= look_us:
                        look_us = to_us(now()) + int(blocks.RECHECK_S * US_PER_SECOND)
                        final = await self._receipt(tracked, node, now())
                    else:
                        final = None
                    if final is None and to_us(now()) >= step_due_us():
                        check_us, stepped_at = to_us(now()) + STEP_EVERY_US, watch.reading
                        final = await self._step(tracked, node, watch, now(), emit)
                    if final is not None:
                        await emit(final[0])
                        return final[1]
                except (RpcError, RpcUnavailable) as exc:
                    log.warning(
                        "tracking %s of intent %s: the node did not answer (%s); asking again",
                        tracked.record.tx_hash,
                        signed.intent_id,
                        exc,
                    )
                    look_us, tracked.waiting = to_us(now()) + STEP_EVERY_US, None
                except Exception:  # noqa: BLE001 - a tracker that dies leaves its intent without an outcome
                    log.exception("tracking %s of intent %s failed; retrying", tracked.record.tx_hash, signed.intent_id)
                    look_us, tracked.waiting = to_us(now()) + STEP_EVERY_US, None
                wake_us = min(look_us, step_due_us())
                await ticket.wait((wake_us - to_us(now())) / US_PER_SECOND, any_block=idle())
        finally:
            ticket.close()

    def watch_for(self, chain: str) -> blocks.BlockWatch:
        """The chain's one reader of new blocks, shared by every tracker on it."""
        watch = self._watches.get(chain)
        if watch is None:
            watch = self._watches[chain] = blocks.BlockWatch(self.node_for(chain))
        return watch

    async def _follow(
        self, copy: SignedTransaction, original_id: str, now: Clock, emit: Callable[[list[Emit]], Awaitable[object]]
    ) -> SignedTransaction:
        """An intent answered with another's result (same idempotency key) reports each status
        the original's transaction reaches, under its own id and digest, until it is final."""
        while copy.status in lifecycle.OPEN:
            try:
                original = SignedTransaction.from_bytes(self.state.agent(copy.agent_id).signed_record(original_id))
                changed = {
                    name: getattr(original, name)
                    for name in _FOLLOWED
                    if getattr(original, name) != getattr(copy, name)
                }
                if changed and original.status != "signed":
                    emits, followed = self._transition(copy, {"status": original.status, **changed}, now())
                    await emit(emits)
                    copy = followed
                    continue
            except Exception:  # noqa: BLE001 - a follower that dies leaves its intent without an outcome
                log.exception("following intent %s for intent %s failed; retrying", original_id, copy.intent_id)
            await asyncio.sleep(FOLLOW_EVERY_S)
        return copy

    async def _step(
        self, tracked: _Tracked, node: Node, watch: blocks.BlockWatch, at: datetime, emit
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """One look at the chain for a transaction with no receipt; what to publish and the final
        record if it is final now. Updates ``tracked`` (a bump, a stuck report, a new send)."""
        signed = tracked.record
        chain_next = await watch.nonce(signed.from_)
        if chain_next > signed.nonce and tracked.nonce_passed_us is None:
            tracked.nonce_passed_us = to_us(at)
        step = lifecycle.next_step(
            signed.nonce,
            chain_next,
            tracked.sent_us,
            to_us(at),
            len(signed.replaces),
            self.replace_after_us,
            self.max_bumps,
            tracked.nonce_passed_us,
        )
        tracked.waiting = step if isinstance(step, lifecycle.Wait) else None
        if isinstance(step, lifecycle.Wait):
            return None
        if isinstance(step, lifecycle.NonceUsed):
            # Mined between the two questions, or another transaction took the nonce.
            return await self._receipt(tracked, node, at) or await self._nonce_used(signed, node, at)
        tracked.sent_us = to_us(at)  # whatever happens below, the next look is a replacement delay away
        if await node.call("eth_getTransactionByHash", signed.tx_hash) is None:
            # The node lost it (restarted, evicted it): the same bytes again before paying more.
            # Refused again (priced out, say), it goes on to the step like a pending one.
            if await self._send_again(signed, node) is None:
                return None
        if isinstance(step, lifecycle.Gap):
            reason = self._gap(signed, step.missing)
        elif isinstance(step, lifecycle.Stuck):
            reason = step.reason
        else:
            bumped, reason = await self._bump(tracked, node, at)
            if bumped is not None:
                await emit(bumped[0])
                tracked.record = bumped[1]
                return None
        if reason is not None and (signed.status != "stuck" or signed.error != reason):
            emits, tracked.record = self._transition(signed, {"status": "stuck", "error": reason}, at)
            await emit(emits)
        return None

    async def _send_again(self, signed: SignedTransaction, node: Node) -> str | None:
        """The same bytes to the chain again; None if it has them (or mined them), else why not."""
        try:
            await node.call("eth_sendRawTransaction", self._network_form(signed))
        except RpcError as exc:
            return None if _already_sent(exc.message) else exc.message
        except RpcUnavailable as exc:
            return str(exc)
        return None

    def _network_form(self, signed: SignedTransaction) -> str:
        """What a node is sent: the signed transaction, or for a blob transaction its network form
        with the blobs, commitments and proofs (the intent's blobs, kept in the signer's record so a
        restart can send it again)."""
        if signed.tx_type != 3:
            return signed.signed_tx
        sidecar = self._sidecars.get(signed.tx_hash)
        if sidecar is None:
            context = self.state.agent(signed.agent_id).tx_context(signed.intent_id)
            if context is None:
                return signed.signed_tx
            sidecar = self._sidecar(TransactionIntent.model_validate_json(context[0]))
            if sidecar is None:
                return signed.signed_tx
            self._sidecars[signed.tx_hash] = sidecar
        return "0x" + blobs.network_encoding(bytes.fromhex(signed.signed_tx[2:]), sidecar).hex()

    def _last_nonce(self, signed: SignedTransaction) -> int:
        """The highest nonce of its address a transaction uses: a type-4 transaction signed by the
        agent for its own account uses one more per authorization."""
        if signed.tx_type != 4:
            return signed.nonce
        tx, _, _, _ = txs.decode_signed(bytes.fromhex(signed.signed_tx[2:]))
        return signed.nonce + len(tx.authorization_list)

    async def _receipt(
        self, tracked: _Tracked, node: Node, at: datetime
    ) -> tuple[list[Emit], SignedTransaction] | None:
        """Final, if any transaction of this intent has a receipt: mined (executed) or failed
        (reverted); the spend settles to what the chain took."""
        signed, hashes = tracked.record, tracked.hashes
        for tx_hash in reversed(hashes):  # the newest is the likeliest
            receipt = await node.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                break
        else:
            return None
        winner = (
            signed
            if tx_hash == signed.tx_hash
            else SignedTransaction.from_bytes(self.state.agent(signed.agent_id).attempts(signed.intent_id)[tx_hash])
        )
        ok = int(receipt["status"], 16) == 1
        gas_used = int(receipt["gasUsed"], 16)
        fee = gas_used * int(receipt["effectiveGasPrice"], 16)
        # A blob transaction also paid blob gas × blob gas price (EIP-4844 receipt fields).
        fee += int(receipt.get("blobGasUsed") or "0x0", 16) * int(receipt.get("blobGasPrice") or "0x0", 16)
        # Settled: the worst case reserved at signing gives way to what the chain took.
        self.state.agent(signed.agent_id).settle_spend(
            signed.intent_id, (signed.value_wei if ok else 0) + fee, executed=ok
        )
        others = tuple(h for h in hashes if h != tx_hash)
        return self._transition(
            signed,
            {
                "signed_tx": winner.signed_tx,
                "tx_hash": tx_hash,
                "max_spend_wei": winner.max_spend_wei,
                "replaces": others,
                "status": "mined" if ok else "failed",
                "block_number": int(receipt["blockNumber"], 16),
                "gas_used": gas_used,
                "fee_wei": fee,
                "error": None if ok else "execution reverted",
            },
            at,
        )

    async def _nonce_used(
        self, signed: SignedTransaction, node: Node, at: datetime
    ) -> tuple[list[Emit], SignedTransaction]:
        """The chain's nonce passed this transaction and none of its hashes was mined: replaced,
        when another transaction this signer signed at the nonce was mined; dropped otherwise."""
        self.state.agent(signed.agent_id).settle_spend(
            signed.intent_id, 0, executed=False
        )  # none of this intent's transactions executed
        for other in self.state.agent(signed.agent_id).intents_at_nonce(signed.chain, signed.from_, signed.nonce):
            if other == signed.intent_id:
                continue
            for tx_hash in self.state.agent(signed.agent_id).attempts(other):
                receipt = await node.call("eth_getTransactionReceipt", tx_hash)
                if receipt is not None:
                    return self._transition(
                        signed,
                        {
                            "status": "replaced",
                            "replaced_by": tx_hash,
                            "error": (
                                f"nonce {signed.nonce} was used by transaction {tx_hash} of intent {other}, mined in block "
                                f"{int(receipt['blockNumber'], 16)}; this one can no longer be mined"
                            ),
                        },
                        at,
                    )
        return self._transition(
            signed,
            {
                "status": "dropped",
                "error": (
                    f"nonce {signed.nonce} of {signed.from_} on {signed.chain} was used by a transaction this signer did "
                    "not sign; this one can no longer be mined and nothing it would have spent is counted. If the address "
                    "is used outside Warden, stop that: it races the signer's nonces"
                ),
            },
            at,
        )

    def _gap(self, signed: SignedTransaction, missing: range) -> str | None:
        """Nonces below this transaction's are unused on chain: the reason to report if any of them
        has no open transaction this signer holds. One that has is followed by its own tracker,
        which sends it again if the node lost it; sending it from here too cost every transaction
        behind it a send per look, N² sends for N pending transactions of one address."""
        unfilled, sign_only = [], []
        for nonce in missing:
            held = [
                SignedTransaction.from_bytes(record)
                for intent_id in self.state.agent(signed.agent_id).intents_at_nonce(signed.chain, signed.from_, nonce)
                if (record := self.state.agent(signed.agent_id).signed_record(intent_id)) is not None
            ]
            if not any(record.status in lifecycle.OPEN for record in held):
                unfilled.append(nonce)
                sign_only += [record.intent_id for record in held if record.status == "sign_only"]
        if not unfilled:
            return None
        log.warning("nonce gap before %s of intent %s: nonces %s unused", signed.tx_hash, signed.intent_id, unfilled)
        held_by_client = (
            f" Sign-only transaction(s) of intent(s) {', '.join(sign_only[:5])} hold some of them: broadcast those."
            if sign_only
            else ""
        )
        return (
            f"nonce gap: the chain's next nonce for {signed.from_} on {signed.chain} is {missing.start}, this "
            f"transaction has {signed.nonce}, and nonce(s) {_ranges(unfilled)} have no pending transaction this "
            f"signer can send, so it cannot be mined until they are used.{held_by_client} The signer signs only "
            "what an intent asks for: it does not fill the gap by itself"
        )

    async def _bump(
        self, tracked: _Tracked, node: Node, at: datetime
    ) -> tuple[tuple[list[Emit], SignedTransaction] | None, str | None]:
        """Sign the intent again at the same nonce with higher fees, if the current policy
        allows it: (what to publish and the new record, or None and why not)."""
        signed = tracked.record
        context = self.state.agent(signed.agent_id).tx_context(signed.intent_id)
        if context is None:
            return None, (
                "not mined, and it was signed before replacements were recorded; submit an intent "
                f"naming nonce {signed.nonce} with higher fees to replace it"
            )
        if self.keys.client_custody or self.keys.cmek_fingerprint is not None:
            return None, (
                "not mined, and its key needs the client's share or customer-managed key, which the "
                f"signer does not keep; submit an intent naming nonce {signed.nonce} with higher fees "
                "to replace it"
            )
        raw_intent, path, version = context
        intent = TransactionIntent.model_validate_json(raw_intent)
        if intent.tx_type in (3, 4):
            # A blob replacement must also double the blob fee, and a set-code one re-sign its
            # authorizations; neither is done automatically.
            return None, (
                f"not mined, and type-{intent.tx_type} transactions are not fee-bumped by the signer; "
                f"submit an intent naming nonce {signed.nonce} with higher fees to replace it"
            )
        policy = self.policies.current(intent.agent_id)
        if policy is None or not policy.intents_api_enabled:
            return None, "not mined, and not replaced: the agent's intents API is disabled now"
        tx, _, _, _ = txs.decode_signed(bytes.fromhex(signed.signed_tx[2:]))
        if intent.tx_type == 2:
            fee, tip = tx.max_fee_per_gas, tx.max_priority_fee_per_gas
            market = int((await node.call("eth_getBlockByNumber", "latest", False))["baseFeePerGas"], 16)
        else:
            fee, tip = tx.gas_price, None
            market = int(await node.call("eth_gasPrice"), 16)
        try:
            new_fee, new_tip = lifecycle.bumped_fees(intent.tx_type, fee, tip, market, policy.tx_max_fee_per_gas)
        except lifecycle.BumpRefused as refused:
            return None, f"not mined at {fee} wei per gas, and not replaced: {refused}"
        quote = FeeQuote(
            gas_limit=tx.gas,
            fee_per_gas=new_fee,
            priority_fee_per_gas=new_tip,
            base_fee_per_gas=market if intent.tx_type == 2 else None,
        )
        # The judge again under the policy in force now: its policy stages (the call and its
        # assets are the ones already signed and counted), then the spend stages on the new fee,
        # the intent counted once.
        judged = await judge.run_stages(intent, policy, judge.Context())
        failed = judged.refusal or self._spend_refusal(intent, policy, quote, at)
        if failed is not None:
            return None, f"not mined at {fee} wei per gas, and a bump to {new_fee} is refused: {failed.reason}"
        chain = REGISTRY.get(intent.chain)
        replacement = build_transaction(intent, chain.chain_id, signed.nonce, tx.gas, quote.fees(intent.tx_type))
        try:
            with self.keys.open_private_key(path, version) as key:
                raw = txs.sign_transaction(replacement, key, chain.chain_id, sender=bytes.fromhex(signed.from_[2:]))
        except CustodyError as exc:
            return None, f"not mined, and not replaced: {self._key_unavailable(intent, exc).reason}"
        bumped = self._signed(
            signed.model_copy(
                update={
                    "signed_tx": "0x" + raw.raw.hex(),
                    "tx_hash": "0x" + raw.tx_hash.hex(),
                    "signed_at": at,
                    "max_spend_wei": quote.spend_wei(intent),
                    "replaces": (signed.tx_hash, *signed.replaces),
                    "status": "signed",
                    "error": None,
                }
            )
        )
        await self.state.agent(intent.agent_id).file.scope_closed()  # an intent's savepoint must not be committed
        self.state.agent(intent.agent_id).record_replacement(
            intent_id=intent.intent_id,
            tx_hash=bumped.tx_hash,
            record=bumped.to_bytes(),
            now_us=to_us(at),
            spend_wei=bumped.max_spend_wei,
        )
        await self.persist(intent.agent_id)  # durable before the chain can see it
        tracked.attempt(bumped.tx_hash)  # its receipt counts from now on, even if the node refuses it
        error = await self._send_again(bumped, node)
        if error is not None:  # recorded all the same: if it is ever mined, it was within policy
            return None, f"not mined at {fee} wei per gas, and the node refused a replacement at {new_fee}: {error}"
        emits, current = self._transition(
            signed,
            {
                "signed_tx": bumped.signed_tx,
                "tx_hash": bumped.tx_hash,
                "signed_at": at,
                "max_spend_wei": bumped.max_spend_wei,
                "replaces": bumped.replaces,
                "status": "broadcast",
                "error": None,
            },
            at,
        )
        emits.append(
            audit(
                SERVICE,
                "tx.fee_bumped",
                f"intent:{intent.intent_id}",
                at,
                intent.intent_id,
                current.tx_hash,
                intent_id=intent.intent_id,
                agent_id=intent.agent_id,
                replaced_tx_hash=signed.tx_hash,
                tx_hash=current.tx_hash,
                nonce=signed.nonce,
                fee_per_gas_wei=str(new_fee),
                previous_fee_per_gas_wei=str(fee),
                max_spend_wei=str(current.max_spend_wei),
                tee=self.tee,
            )
        )
        return (emits, current), None

    def _transition(
        self, signed: SignedTransaction, update: dict, at: datetime
    ) -> tuple[list[Emit], SignedTransaction]:
        """One status change of the lifecycle: checked, signed, recorded (a redelivery re-publishes
        the newest) and reported on the topic and the ledger."""
        lifecycle.check_transition(signed.status, update["status"])
        result = self._signed(signed.model_copy(update=update))
        raw = result.to_bytes()
        self.state.agent(signed.agent_id).replace_record(signed.intent_id, raw)
        if result.status not in lifecycle.OPEN:
            self._sidecars.pop(signed.tx_hash, None)  # never sent again
        metrics.TXS.labels(result.status).inc()
        return [
            Emit(topics.TXS_SIGNED, signed.agent_id, raw),
            audit(
                SERVICE,
                f"tx.{result.status}",
                f"intent:{signed.intent_id}",
                at,
                signed.intent_id,
                result.tx_hash,
                result.status,
                result.error or "",
                intent_id=signed.intent_id,
                agent_id=signed.agent_id,
                tx_hash=result.tx_hash,
                nonce=result.nonce,
                status=result.status,
                block_number=result.block_number,
                gas_used=result.gas_used,
                fee_wei=None if result.fee_wei is None else str(result.fee_wei),
                error=result.error,
                replaces=list(result.replaces),
                replaced_by=result.replaced_by,
                tee=self.tee,
            ),
        ], result

    def dead_letter(
        self, raw: bytes | None, source: Source, now: datetime, reason: str, errors: tuple[str, ...] = ()
    ) -> list[Emit]:
        """A record the signer cannot process, dead-lettered under its signature."""
        return dead_letter(SERVICE, raw, source, now, reason, errors, sign=self._signed)

    def _signed(self, record):
        return sign_outcome(record, self._service_key, self.key_id)


@dataclass(frozen=True)
class _Signing:
    """What `_sign` produced: the record, the policy judged under, and either the idempotency
    slot it claims and the key version that signed it (a new transaction: it counts as spend)
    or the intent whose result it copies (a reused idempotency key)."""

    record: SignedTransaction
    policy: AgentPolicy
    slot: str | None = None
    key: tuple[str, int] | None = None
    copy_of: str | None = None
    last_nonce: int | None = None  # the highest nonce it uses: a self-sponsored EIP-7702 delegation uses two
    assets: dict[str, int] | None = None  # token units it moves or approves, per asset (chain:token)

    @property
    def counts(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class _AgentKey:
    """The key version an intent is signed with, its address, and the client-held secrets that open it."""

    path: str
    version: int
    address: str
    share: bytearray | None
    cmek: bytearray | None


@dataclass
class _Tracked:
    """A transaction the tracker follows: its current record (a bump replaces it), when it
    was last sent, the hashes of every attempt, and since when the chain's nonce has been past it."""

    record: SignedTransaction
    sent_us: int
    hashes: list[str]  # every transaction signed for the intent, oldest first: any may be mined
    ticket: blocks.Ticket
    nonce_passed_us: int | None = None
    waiting: lifecycle.Wait | None = None  # what the last step said, if it said wait

    def attempt(self, tx_hash: str) -> None:
        """A new transaction for the intent (a fee bump): followed before it is sent, so the block
        that holds it wakes the tracker."""
        if tx_hash not in self.hashes:
            self.hashes.append(tx_hash)
            self.ticket.follow([tx_hash])


# What an idempotent copy takes from its original's record as that transaction moves on.
_FOLLOWED = (
    "status",
    "signed_tx",
    "tx_hash",
    "max_spend_wei",
    "block_number",
    "gas_used",
    "fee_wei",
    "error",
    "replaces",
    "replaced_by",
)


# Refusals of a record nobody can be held to: anyone can write one with a real intent's id.
_NOT_ATTRIBUTABLE = frozenset({"AGENT_SIGNATURE_INVALID", "POLICY_SIGNATURE_INVALID", "POLICY_AGENT_MISMATCH"})


def _already_sent(message: str) -> bool:
    """A node's refusal that means it has the transaction, or mined its nonce already: the
    receipt (or the nonce) will tell which."""
    message = message.lower()
    return "already known" in message or "nonce too low" in message or "already imported" in message


def _ranges(nonces: list[int]) -> str:
    return ", ".join(str(n) for n in nonces[:10]) + (f" and {len(nonces) - 10} more" if len(nonces) > 10 else "")


def _digest_of(record: bytes) -> str | None:
    """The intent digest an outcome this signer recorded is bound to."""
    return orjson.loads(record).get("intent_digest")
