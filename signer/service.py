"""The signer: the last word before a key is touched.

It trusts nothing outside its VM. For every approved intent it re-verifies the
admin-signed policy (against pinned admin keys, never older than one it has
seen), the agent's signature, the stateless guardrails and its own rolling
spend record; then it picks the nonce, decrypts the key, signs, wipes the key,
records the result durably and only then publishes it. A redelivered intent
gets the same signed bytes back, never a second nonce.

Every approved intent ends with exactly one outcome: a `SignedTransaction`, or an
`IntentRejected` at stage ``signing`` (which releases the worker's reservation).
An unexpected error is an outcome too (``SIGNER_ERROR``), never only a log
line, and the state written for one intent is all or nothing.

`Signer.handle` knows nothing of Kafka; `run_signer` moves records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from pydantic import ValidationError

from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas import topics
from schemas.auth import intent_signature_valid, policy_signature_valid
from schemas.chains import REGISTRY
from runtime.clock import US_PER_SECOND, Clock, to_us
from schemas.emit import Emit, Source, audit, dead_letter
from schemas.models import IntentApproved, IntentRejected, SignedTransaction, TransactionIntent
from signer.evm import transactions as txs
from signer.custody._crypto import wipe
from signer.custody.errors import CustodyError, InvalidKey, ProviderUnavailable
from signer.custody import fingerprint
from signer.sealing import NotSealedHere, SealingKeyPair
from signer.state import SignerState
from streams import guardrails
from streams.window import SpendWindow
from schemas.errors import explain

log = logging.getLogger("warden.signer")
SERVICE = "service:signer"


CLIENT_SHARE_INVALID = "CLIENT_SHARE_INVALID"
# One answer for a missing, wrong or tampered client share: which of them it was is not told.
CLIENT_SHARE_INVALID_REASON = (
    "the client share is missing or does not open the signing key; seal the share shown when the vault was "
    "created to the signer's current sealing key (SDK: Client.client_share) and submit a new intent")
CMEK_INVALID = "CMEK_INVALID"
CMEK_INVALID_REASON = (
    "the signing-key vault has a customer-managed key, and the intent's is missing or is not the current one; "
    "seal the current key to the signer's sealing key (SDK: Client.cmek) and submit a new intent")


class SigningRefused(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def build_transaction(intent: TransactionIntent, chain_id: int, nonce: int, gas: int, fees: dict[str, int]):
    to = bytes.fromhex(intent.to[2:])
    data = bytes.fromhex(intent.data[2:])
    access = tuple((bytes.fromhex(e.address[2:]), tuple(bytes.fromhex(k[2:]) for k in e.storage_keys))
                   for e in intent.access_list)
    if intent.tx_type == 0:
        return txs.LegacyTransaction(nonce, fees["gas_price"], gas, to, intent.value_wei, data)
    if intent.tx_type == 1:
        return txs.AccessListTransaction(chain_id, nonce, fees["gas_price"], gas, to, intent.value_wei, data, access)
    return txs.FeeMarketTransaction(chain_id, nonce, fees["max_priority_fee_per_gas"], fees["max_fee_per_gas"], gas,
                                    to, intent.value_wei, data, access)


class Signer:
    def __init__(self, state: SignerState, keys, admin_keys: dict[str, str],
                 node_for: Callable[[str], Node], tee: str = "none",
                 sealing: SealingKeyPair | None = None):
        self.state = state
        self.keys = keys
        self.sealing = sealing or SealingKeyPair()
        self.admin_keys = admin_keys
        self.node_for = node_for
        self.tee = tee
        self._addresses: dict[tuple[str, int], str] = {}  # (key path, version) → address: public
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}  # (chain, address) → (pending nonce, asked at µs)

    async def handle(self, raw: bytes | None, source: Source, now: datetime) -> tuple[list[Emit], SignedTransaction | None]:
        """One approved record → what to publish, and the signed tx to broadcast (if the intent asks).

        Never raises for a record it could read: whatever goes wrong while signing becomes the
        intent's one rejection, and nothing of that intent stays in the signer's state."""
        try:
            approved = IntentApproved.model_validate_json(raw or b"")
        except ValidationError as exc:
            return dead_letter(SERVICE, raw, source, now, f"invalid IntentApproved: {'; '.join(explain(exc))}",
                               explain(exc)), None
        intent = approved.intent
        prior = self.state.outcome(intent.intent_id)
        if prior is not None:
            # Redelivered: publish exactly what was published before. A refusal is final too, so a
            # client told REJECTED is never signed for later by a redelivery of the same intent.
            return [Emit(prior[0], intent.agent_id, prior[1])], None
        try:
            with self.state.intent_scope():
                return await self._sign_and_record(approved, now)
        except SigningRefused as refused:
            return self._refuse(intent, refused, now), None
        except Exception as exc:  # noqa: BLE001 - any failure must still end the intent; the scope rolled back its state
            log.exception("signer error on intent %s; refused SIGNER_ERROR", intent.intent_id)
            return self._refuse(intent, SigningRefused(
                "SIGNER_ERROR", f"the signer failed on this intent ({exc.__class__.__name__}) and did not sign it; "
                "nothing was reserved. Submit a new intent, and report this intent id if it repeats"), now), None

    async def _sign_and_record(self, approved: IntentApproved, now: datetime) -> tuple[list[Emit], SignedTransaction | None]:
        intent = approved.intent
        signed, counts, slot = await self._sign(approved, now)
        record = signed.to_bytes()
        self.state.record_signed(intent_id=intent.intent_id, agent_id=intent.agent_id, record=record,
                                 now_us=to_us(now), chain=intent.chain, address=signed.from_, nonce=signed.nonce,
                                 value_wei=intent.value_wei, counts=counts, policy_version=approved.policy.version,
                                 idempotency_slot=slot)
        emits = [
            Emit(topics.TXS_SIGNED, intent.agent_id, record),
            audit(SERVICE, "tx.signed", f"intent:{intent.intent_id}", now, intent.intent_id,
                  intent_id=intent.intent_id, agent_id=intent.agent_id, chain=intent.chain,
                  chain_id=signed.chain_id, tx_hash=signed.tx_hash, **{"from": signed.from_}, to=signed.to,
                  nonce=signed.nonce, value_wei=str(signed.value_wei), status=signed.status, tee=self.tee),
        ]
        return emits, signed if signed.status == "broadcast" and counts else None

    async def _sign(self, approved: IntentApproved, now: datetime) -> tuple[SignedTransaction, bool, str | None]:
        intent = approved.intent
        self._verify(approved, now)
        chain = REGISTRY.get(intent.chain)
        slot = intent.idempotency_slot
        if slot is not None:
            original = self.state.idempotent_original(slot, to_us(now))
            if original is not None:
                cached = self.state.signed_record(original)
                if cached is None:
                    raise SigningRefused("IDEMPOTENT_ORIGINAL_NOT_SIGNED",
                                         f"idempotency key was used by intent {original}, which was not signed")
                # Cached result for the key: the original's signed bytes, under this intent's id.
                first = SignedTransaction.from_bytes(cached)
                return first.model_copy(update={"intent_id": intent.intent_id, "signed_at": now}), False, None
        try:
            path = self.keys.resolve_signing_path(intent.agent_id, intent.chain, intent.signing_key_path,
                                                  (f"agents/{intent.agent_id}/", "keys/"))
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
            node = self.node_for(intent.chain)
            try:
                nonce = await self._nonce(intent, address, node, now)
                gas = intent.gas_limit or await self._estimate_gas(intent, address, node)
                fees = await self._fees(intent, node)
            except (RpcError, RpcUnavailable) as exc:
                raise SigningRefused("CHAIN_RPC_FAILED", f"could not prepare the transaction: {exc}") from None
            tx = build_transaction(intent, chain.chain_id, nonce, gas, fees)
            # The exact version whose address the nonce was taken for, never "whatever is newest now".
            with self._custody_errors(intent, share, cmek), \
                    self.keys.open_private_key(path, version, client_share=share, cmek=cmek) as key:
                signed = txs.sign_transaction(tx, key, chain.chain_id, sender=bytes.fromhex(address[2:]))
        finally:
            wipe(share)
            wipe(cmek)
        result = SignedTransaction(
            intent_id=intent.intent_id, agent_id=intent.agent_id, chain=intent.chain, chain_id=chain.chain_id,
            signed_tx="0x" + signed.raw.hex(), tx_hash="0x" + signed.tx_hash.hex(),
            **{"from": txs.checksum(signed.sender)}, to=intent.to, nonce=nonce, value_wei=intent.value_wei,
            tx_type=intent.tx_type, status="broadcast" if intent.broadcast else "sign_only", tee=self.tee,
            signed_at=now,
        )
        return result, True, slot

    def _verify(self, approved: IntentApproved, now: datetime) -> None:
        intent, policy = approved.intent, approved.policy
        if not policy_signature_valid(policy, self.admin_keys):
            raise SigningRefused("POLICY_SIGNATURE_INVALID", "the policy is not signed by a pinned admin key")
        if policy.agent_id != intent.agent_id:
            raise SigningRefused("POLICY_AGENT_MISMATCH", "the policy belongs to another agent")
        if policy.version < self.state.policy_version(intent.agent_id):
            raise SigningRefused("POLICY_SUPERSEDED", f"policy version {policy.version} is older than one already "
                                                      "enforced for this agent")
        if not intent_signature_valid(intent, policy):
            raise SigningRefused("AGENT_SIGNATURE_INVALID", "the intent's signature does not verify against the "
                                                            "agent's public key")
        if not policy.intents_api_enabled:
            raise SigningRefused("INTENTS_API_DISABLED", "the intents API is disabled for this agent")
        now_us = to_us(now)
        spent = SpendWindow(self.state.spend_entries(intent.agent_id, now_us)).spent(now_us)
        for verdict in (guardrails.check_chain(intent, policy), guardrails.check_allowlist(intent, policy),
                        guardrails.check_value_cap(intent, policy),
                        guardrails.check_daily_limit(intent, policy, spent)):
            if not verdict.passed:
                raise SigningRefused(verdict.code, f"signer re-check failed: {verdict.reason}")

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
            raise self._sealed_to_old_key("CLIENT_SHARE_SEALED_TO_OLD_KEY", intent.sealed_client_share,
                                          "client share") from None
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
            raise self._sealed_to_old_key("CMEK_SEALED_TO_OLD_KEY", intent.sealed_cmek, "customer-managed key") from None
        except InvalidKey:
            raise SigningRefused(CMEK_INVALID, CMEK_INVALID_REASON) from None
        if not hmac.compare_digest(fingerprint(cmek), expected):
            wipe(cmek)
            raise SigningRefused(CMEK_INVALID, CMEK_INVALID_REASON)
        return cmek

    def _sealed_to_old_key(self, code: str, copies, what: str) -> SigningRefused:
        return SigningRefused(
            code, f"the {what} is sealed to signer key(s) {[c.key_id for c in copies]}, not to this signer's current "
            f"key {self.sealing.key_id} (the signer restarted since): read warden.signer.sealing again and submit "
            "a new intent")

    @contextlib.contextmanager
    def _custody_errors(self, intent: TransactionIntent, share: bytearray | None,
                        cmek: bytearray | None) -> Iterator[None]:
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
        if isinstance(exc, ProviderUnavailable):
            # Names the provider and what failed; never key material (custody's messages carry none).
            return SigningRefused("ROOT_PROVIDER_UNAVAILABLE", f"the signing key could not be unwrapped: {exc}")
        return SigningRefused("SIGNING_KEY_UNAVAILABLE",
                              f"no usable signing key for agent {intent.agent_id!r} on {intent.chain}: "
                              f"{exc.__class__.__name__}; provision one with `warden keys provision`")

    async def _nonce(self, intent: TransactionIntent, address: str, node, now: datetime) -> int:
        if intent.nonce is not None:
            return intent.nonce
        tracked = self.state.last_nonce(intent.agent_id, intent.chain, address)
        pending = await self._pending_nonce(intent.chain, address, node, now)
        return pending if tracked is None else max(tracked + 1, pending)

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

    @staticmethod
    async def _estimate_gas(intent: TransactionIntent, address: str, node) -> int:
        call = guardrails.call_object(intent, address)
        estimate = int(await node.call("eth_estimateGas", call, "pending"), 16)
        return estimate * 6 // 5  # 20% headroom: state can move between estimate and inclusion

    @staticmethod
    async def _fees(intent: TransactionIntent, node) -> dict[str, int]:
        if intent.tx_type in (0, 1):
            price = intent.gas_price if intent.gas_price is not None else int(await node.call("eth_gasPrice"), 16)
            return {"gas_price": price}
        priority = intent.max_priority_fee_per_gas
        if priority is None:
            priority = int(await node.call("eth_maxPriorityFeePerGas"), 16)
        max_fee = intent.max_fee_per_gas
        if max_fee is None:
            block = await node.call("eth_getBlockByNumber", "latest", False)
            max_fee = 2 * int(block["baseFeePerGas"], 16) + priority
        return {"max_priority_fee_per_gas": min(priority, max_fee), "max_fee_per_gas": max_fee}

    def _refuse(self, intent: TransactionIntent, refused: SigningRefused, now: datetime) -> list[Emit]:
        rejected = IntentRejected(intent_id=intent.intent_id, agent_id=intent.agent_id, stage="signing",
                                  code=refused.code, reason=refused.reason, decided_at=now)
        record = rejected.to_bytes()
        self.state.record_refused(intent_id=intent.intent_id, agent_id=intent.agent_id, record=record,
                                  now_us=to_us(now))
        return [
            Emit(topics.INTENTS_REJECTED, intent.agent_id, record),
            audit(SERVICE, "tx.sign_failed", f"intent:{intent.intent_id}", now, intent.intent_id,
                  intent_id=intent.intent_id, agent_id=intent.agent_id, code=refused.code, reason=refused.reason,
                  tee=self.tee),
        ]

    async def send(self, signed: SignedTransaction, now: datetime) -> list[Emit]:
        """Hand the signed bytes to the chain. Called before the next intent is signed, so when
        the node refuses, the nonce can be given back without leaving a gap."""
        try:
            await self.node_for(signed.chain).call("eth_sendRawTransaction", signed.signed_tx)
        except RpcError as exc:
            if "already known" in exc.message:  # a redelivery re-sent it: not a failure
                return []
            self.state.release_nonce(signed.agent_id, signed.chain, signed.from_, signed.nonce)
            return self._final(signed, {"status": "failed", "error": f"node refused the transaction: {exc.message}"},
                               now)
        except RpcUnavailable as exc:
            self.state.release_nonce(signed.agent_id, signed.chain, signed.from_, signed.nonce)
            return self._final(signed, {"status": "failed", "error": str(exc)}, now)
        return []

    async def confirm(self, signed: SignedTransaction, now: Clock,
                      timeout_s: float = 60.0) -> list[Emit]:
        """Wait for the receipt and report mined or failed."""
        node = self.node_for(signed.chain)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                receipt = await node.call("eth_getTransactionReceipt", signed.tx_hash)
                if receipt is not None:
                    ok = int(receipt["status"], 16) == 1
                    return self._final(signed, {
                        "status": "mined" if ok else "failed", "block_number": int(receipt["blockNumber"], 16),
                        "gas_used": int(receipt["gasUsed"], 16), "error": None if ok else "execution reverted"}, now())
                await asyncio.sleep(0.05)
        except (RpcError, RpcUnavailable) as exc:
            return self._final(signed, {"status": "failed", "error": f"receipt unavailable: {exc}"}, now())
        return self._final(signed, {"status": "failed", "error": f"no receipt within {timeout_s:.0f} s"}, now())

    def _final(self, signed: SignedTransaction, update: dict, at: datetime) -> list[Emit]:
        result = signed.model_copy(update=update)
        self.state.replace_record(signed.intent_id, result.to_bytes())
        action = "tx.mined" if result.status == "mined" else "tx.failed"
        return [
            Emit(topics.TXS_SIGNED, signed.agent_id, result.to_bytes()),
            audit(SERVICE, action, f"intent:{signed.intent_id}", at, signed.intent_id, intent_id=signed.intent_id,
                  agent_id=signed.agent_id, tx_hash=signed.tx_hash, status=result.status,
                  block_number=result.block_number, gas_used=result.gas_used, error=result.error),
        ]
