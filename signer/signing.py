"""Signing: the agent's key, the nonce, and the signed transaction or message.

The key is opened through custody (`signer.custody`) for exactly the version whose address the
nonce was taken for, with the client-held secrets the vault needs (a client share, a
customer-managed key), unsealed from the intent and wiped when the block ends. Custody failures
become refusals, told without key material. The signer picks the nonce itself: an intent may
name one only to replace a transaction this signer signed at it. Blob transactions carry their
sidecar (`Sidecars`) until their status is final.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from btc import signing as bitcoin_signing
from evm import authorizations, blobs, messages
from evm import transactions as txs
from evm.authorizations import SignedAuthorization
from rules import bitcoin
from runtime.clock import US_PER_SECOND, to_us
from runtime.registry import REGISTRY
from runtime.rpc import Node
from schemas.codes import Code
from schemas.intent import SealedSecret, TransactionIntent
from schemas.outcomes import SignedTransaction
from schemas.policy import AgentPolicy
from schemas.quote import FeeQuote
from signer import chain_keys
from signer.custody import fingerprint
from signer.custody._crypto import wipe
from signer.custody.errors import AttestationRequired, CustodyError, InvalidKey, ProviderUnavailable
from signer.custody.keys import KeyStore
from signer.outcomes import SigningRefused
from signer.sealing import NotSealedHere, SealingKeyPair
from signer.state import AgentStates
from svm import messages as solana_messages
from svm import transactions as solana_transactions

# One answer for a missing, wrong or tampered client share: which of them it was is not told.
CLIENT_SHARE_INVALID_REASON = (
    "the client share is missing or does not open the signing key; seal the share shown when the vault was "
    "created to the signer's current sealing key (SDK: Client.client_share) and submit a new intent"
)
CMEK_INVALID_REASON = (
    "the signing-key vault has a customer-managed key, and the intent's is missing or is not the current one; "
    "seal the current key to the signer's sealing key (SDK: Client.cmek) and submit a new intent"
)


def build_transaction(
    intent: TransactionIntent,
    chain_id: int,
    nonce: int,
    gas: int,
    fees: dict[str, int],
    authorization_list: tuple[SignedAuthorization, ...] = (),
) -> txs.Transaction:
    """The transaction for an intent, with exactly the gas and fees the signer priced and checked
    (and, for type 4, the authorizations the signer signed)."""
    if intent.to is None:  # the schema requires it of a transaction intent
        raise ValueError(f"intent {intent.intent_id} is a transaction without a recipient (to)")
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
        if intent.max_fee_per_blob_gas is None:  # the schema requires it of a type-3 intent
            raise ValueError(f"intent {intent.intent_id} is a blob transaction without max_fee_per_blob_gas")
        hashes = tuple(bytes.fromhex(h[2:]) for h in intent.blob_versioned_hashes)
        return txs.BlobTransaction(
            chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access, intent.max_fee_per_blob_gas, hashes
        )
    if intent.tx_type == 4:
        return txs.SetCodeTransaction(
            chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access, authorization_list
        )
    return txs.FeeMarketTransaction(chain_id, nonce, tip, cap, gas, to, intent.value_wei, data, access)


def authorization_nonces(intent: TransactionIntent, nonce: int) -> tuple[int, ...]:
    """EIP-7702: the sender's nonce is raised before the authorization list is applied, so an
    authorization by the sender itself is valid only at the transaction's nonce + 1. One the
    agent names must be exactly that, or it would be signed and then skipped by the chain."""
    wanted = tuple(nonce + 1 + index for index in range(len(intent.authorization_list)))
    for request, expected in zip(intent.authorization_list, wanted, strict=True):
        if request.nonce is not None and request.nonce != expected:
            raise SigningRefused(
                Code.EIP7702_NONCE_MISMATCH,
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
            Code.NONCE_EXHAUSTED, "the authorization's nonce would pass what EIP-2681 allows"
        ) from None
    return wanted


def sidecar_of(intent: TransactionIntent) -> blobs.Sidecar | None:
    """Blob transactions with their blobs: the KZG commitments and proofs, and the check that
    the blobs are the ones the signed versioned hashes name."""
    if not intent.blobs:
        return None
    try:
        sidecar = blobs.make_sidecar(tuple(bytes.fromhex(blob[2:]) for blob in intent.blobs))
    except blobs.InvalidBlob as exc:
        raise SigningRefused(Code.BLOB_INVALID, f"{exc}") from None
    named = tuple(bytes.fromhex(h[2:]) for h in intent.blob_versioned_hashes)
    if tuple(sidecar.versioned_hashes) != named:
        # As many as the blobs: the intent's schema refuses any other count.
        index = next(i for i, (a, b) in enumerate(zip(sidecar.versioned_hashes, named, strict=True)) if a != b)
        raise SigningRefused(
            Code.BLOB_HASH_MISMATCH,
            (
                f"blobs[{index}] commits to versioned hash 0x{sidecar.versioned_hashes[index].hex()}, but "
                f"blob_versioned_hashes[{index}] is 0x{named[index].hex()}; the hashes must be the blobs' own"
            ),
        )
    return sidecar


class Sidecars:
    """Blob transactions' sidecars, by transaction hash, while the transaction may be sent
    (again): kept at signing, dropped when its status is final, rebuilt from the intent the
    agent's record keeps after a restart."""

    def __init__(self, state: AgentStates):
        self.state = state
        self._by_hash: dict[str, blobs.Sidecar] = {}

    def keep(self, tx_hash: str, sidecar: blobs.Sidecar) -> None:
        self._by_hash[tx_hash] = sidecar

    def drop(self, tx_hash: str) -> None:
        self._by_hash.pop(tx_hash, None)

    def network_form(self, signed: SignedTransaction) -> str:
        """What a node is sent: the signed transaction, or for a blob transaction its network form
        with the blobs, commitments and proofs (the intent's blobs, kept in the signer's record so a
        restart can send it again)."""
        if signed.tx_type != 3:
            return signed.signed_tx
        sidecar = self._by_hash.get(signed.tx_hash)
        if sidecar is None:
            context = self.state.agent(signed.agent_id).tx_context(signed.intent_id)
            if context is None:
                return signed.signed_tx
            sidecar = sidecar_of(TransactionIntent.model_validate_json(context[0]))
            if sidecar is None:
                return signed.signed_tx
            self._by_hash[signed.tx_hash] = sidecar
        return "0x" + blobs.network_encoding(bytes.fromhex(signed.signed_tx[2:]), sidecar).hex()


@dataclass(frozen=True)
class AgentKey:
    """The key version an intent is signed with, its address, and the client-held secrets that open it."""

    path: str
    version: int
    address: str
    share: bytearray | None
    cmek: bytearray | None


class Signing:
    """The agent's keys (custody, ``keys``), the sealing key client-held secrets are sealed to,
    and the nonce: the state's last one per address and the node's pending count."""

    def __init__(self, state: AgentStates, keys: KeyStore, sealing: SealingKeyPair):
        self.state = state
        self.keys = keys
        self.sealing = sealing
        self._addresses: dict[tuple[str, int], str] = {}  # (key path, version) → address: public
        self._pending: dict[tuple[str, str], tuple[int, int]] = {}  # (chain, address) → (pending nonce, asked at µs)

    @property
    def client_held(self) -> bool:
        """The vault's keys need a secret the client holds (a share, a CMEK), which the signer does not keep."""
        return self.keys.client_custody or self.keys.cmek_fingerprint is not None

    @contextlib.contextmanager
    def agent_key(self, intent: TransactionIntent) -> Iterator[AgentKey]:
        """The agent's signing key version for the intent's chain and its address, with the
        client-held secrets it needs (unsealed from the intent, wiped when the block ends)."""
        try:
            path = self.keys.resolve_signing_path(
                intent.agent_id, intent.chain, intent.signing_key_path, (f"agents/{intent.agent_id}/", "keys/")
            )
            version = self.keys.active_version(path)
        except Exception as exc:  # custody errors are deliberately opaque; say what to do
            raise self.key_unavailable(intent, exc) from None
        share = self._client_share(intent)
        try:
            cmek = self._cmek(intent)
        except SigningRefused:
            wipe(share)
            raise
        try:
            with self._custody_errors(intent, share, cmek):
                address = self._address(path, version, share, cmek, REGISTRY.get(intent.chain).key_chain)
            yield AgentKey(path, version, address, share, cmek)
        finally:
            wipe(share)
            wipe(cmek)

    @contextlib.contextmanager
    def private_key(self, intent: TransactionIntent, agent: AgentKey) -> Iterator[bytearray]:
        # The exact version whose address the nonce was taken for, never "whatever is newest now".
        with (
            self._custody_errors(intent, agent.share, agent.cmek),
            self.keys.open_private_key(agent.path, agent.version, client_share=agent.share, cmek=agent.cmek) as key,
        ):
            yield key

    def transaction(
        self,
        intent: TransactionIntent,
        agent: AgentKey,
        chain_id: int,
        nonce: int,
        quote: FeeQuote,
        auth_nonces: tuple[int, ...],
    ) -> txs.SignedTx:
        """The intent's transaction at ``nonce``, priced as ``quote``, with its EIP-7702
        authorizations, signed with the agent's key."""
        with self.private_key(intent, agent) as key:
            signed_auths = tuple(
                authorizations.sign_authorization(
                    authorizations.Authorization(request.chain_id, bytes.fromhex(request.address[2:]), auth_nonce),
                    key,
                )
                for request, auth_nonce in zip(intent.authorization_list, auth_nonces, strict=True)
            )
            tx = build_transaction(intent, chain_id, nonce, quote.gas_limit, quote.fees(intent.tx_type), signed_auths)
            return txs.sign_transaction(tx, key, chain_id, sender=bytes.fromhex(agent.address[2:]))

    def message(self, intent: TransactionIntent, agent: AgentKey, digest: bytes) -> bytes:
        """A message digest (EIP-191 or EIP-712), signed with the agent's key."""
        with self.private_key(intent, agent) as key:
            return messages.sign_digest(digest, key)

    def replacement(
        self, intent: TransactionIntent, tx: txs.Transaction, chain_id: int, path: str, version: int, sender: str
    ) -> txs.SignedTx:
        """A fee bump of a transaction this signer signed, with the key version that signed it."""
        try:
            with self.keys.open_private_key(path, version) as key:
                return txs.sign_transaction(tx, key, chain_id, sender=bytes.fromhex(sender[2:]))
        except CustodyError as exc:
            raise self.key_unavailable(intent, exc) from None

    def kept_key(self, context: tuple[bytes, str, int] | None) -> tuple[TransactionIntent, str, int]:
        """What a replacement of a transaction this signer signed (a cancellation) signs with,
        from what it kept of its signing (`AgentState.tx_context`): the intent, and the key path
        and version that signed it. SigningRefused when it cannot be replaced here."""
        if context is None:
            raise SigningRefused(Code.SIGNING_KEY_UNAVAILABLE, "the signer kept no key version for it")
        if self.client_held:
            raise SigningRefused(
                Code.SIGNING_KEY_UNAVAILABLE,
                "its key needs the client's share or customer-managed key, which the signer does not keep",
            )
        raw_intent, path, version = context
        return TransactionIntent.model_validate_json(raw_intent), path, version

    def bitcoin_replacement(
        self, intent: TransactionIntent, psbt: bytes, path: str, version: int
    ) -> bitcoin_signing.SignedTx:
        """A cancellation of a Bitcoin payment this signer signed (``psbt``: it spends one of the
        payment's inputs back to the agent), with the key version that signed the payment."""
        try:
            with self.keys.open_private_key(path, version) as key:
                return bitcoin_signing.sign(psbt, key)
        except CustodyError as exc:
            raise self.key_unavailable(intent, exc) from None
        except bitcoin_signing.SigningError as exc:
            raise SigningRefused(Code.BITCOIN_PSBT_INVALID, f"the signer cannot sign the cancellation: {exc}") from None

    def _address(self, path: str, version: int, share: bytearray | None, cmek: bytearray | None, key_chain: str) -> str:
        # Derived once per key version from the key itself, not from metadata someone could edit.
        # With client-held keys it is derived every time: that checks them before any RPC, so a
        # wrong one always gets the same answer, whatever the chain is doing.
        if (path, version) not in self._addresses or share is not None or cmek is not None:
            with self.keys.open_private_key(path, version, client_share=share, cmek=cmek) as key:
                self._addresses[(path, version)] = chain_keys.address(key_chain, chain_keys.public_key(key_chain, key))
        return self._addresses[(path, version)]

    def solana_transaction(self, intent: TransactionIntent, agent: AgentKey) -> bytes:
        """The intent's Solana transaction with the agent's signature in its slot (the key's seed
        is wiped when `private_key`'s block ends)."""
        with self.private_key(intent, agent) as key:
            try:
                return solana_transactions.sign(intent.solana_transaction_bytes, key)
            except solana_transactions.SignatureInvalid as exc:
                raise SigningRefused(Code.SOLANA_SIGNATURE_INVALID, f"the signer cannot sign it: {exc}") from None
            except solana_transactions.TransactionError as exc:
                raise SigningRefused(Code.SOLANA_TRANSACTION_INVALID, f"the signer cannot sign it: {exc}") from None

    def bitcoin_transaction(
        self, intent: TransactionIntent, agent: AgentKey, policy: AgentPolicy
    ) -> bitcoin_signing.SignedTx:
        """The intent's PSBT with every input signed by the agent's Bitcoin key, finalized into the
        network transaction (the key's seed is wiped when `private_key`'s block ends), and refused
        when that transaction pays more per virtual byte than ``policy`` allows: the judge counted
        the size `btc.signing` signs, and the ceiling holds on the size signed all the same."""
        limits = policy.bitcoin
        if limits is None:  # the judge refused it already; nothing is signed without its ceiling
            raise SigningRefused(Code.BITCOIN_NOT_ENABLED, "the agent's policy has no `bitcoin` section")
        with self.private_key(intent, agent) as key:
            try:
                signed = bitcoin_signing.sign(intent.bitcoin_psbt_bytes, key)
            except bitcoin_signing.SigningError as exc:
                raise SigningRefused(Code.BITCOIN_PSBT_INVALID, f"the signer cannot sign it: {exc}") from None
        refused = bitcoin.fee_rate_refused(limits, signed.fee, signed.vsize, Code.BITCOIN_SIGNED_FEE_RATE_OVER_CEILING)
        if refused is not None:
            raise SigningRefused(refused.code, f"as signed, {refused.reason}")
        return signed

    def solana_message(self, intent: TransactionIntent, agent: AgentKey) -> bytes:
        """The agent's Ed25519 signature over the intent's Solana off-chain message (the key's
        seed is wiped when `private_key`'s block ends)."""
        with self.private_key(intent, agent) as key:
            try:
                return solana_messages.sign(intent.solana_message_bytes, key)
            except solana_messages.MessageError as exc:
                raise SigningRefused(Code.SOLANA_MESSAGE_INVALID, f"the signer cannot sign it: {exc}") from None

    def _client_share(self, intent: TransactionIntent) -> bytearray | None:
        """In the client-custody modes: the client's share, unsealed from the intent. The caller wipes it."""
        if not self.keys.client_custody:
            return None
        try:
            return self.sealing.open_client_share(intent)
        except NotSealedHere:
            raise self._sealed_to_old_key(
                Code.CLIENT_SHARE_SEALED_TO_OLD_KEY, intent.sealed_client_share, "client share"
            ) from None
        except InvalidKey:
            raise SigningRefused(Code.CLIENT_SHARE_INVALID, CLIENT_SHARE_INVALID_REASON) from None

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
                Code.CMEK_SEALED_TO_OLD_KEY, intent.sealed_cmek, "customer-managed key"
            ) from None
        except InvalidKey:
            raise SigningRefused(Code.CMEK_INVALID, CMEK_INVALID_REASON) from None
        if not hmac.compare_digest(fingerprint(cmek), expected):
            wipe(cmek)
            raise SigningRefused(Code.CMEK_INVALID, CMEK_INVALID_REASON)
        return cmek

    def _sealed_to_old_key(self, code: Code, copies: Iterable[SealedSecret], what: str) -> SigningRefused:
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
                raise SigningRefused(Code.CLIENT_SHARE_INVALID, CLIENT_SHARE_INVALID_REASON) from None
            if cmek is not None:  # a version still wrapped under a retiring CMEK, mid-rotation
                raise SigningRefused(Code.CMEK_INVALID, CMEK_INVALID_REASON) from None
            raise self.key_unavailable(intent, InvalidKey()) from None
        except CustodyError as exc:
            raise self.key_unavailable(intent, exc) from None

    @staticmethod
    def key_unavailable(intent: TransactionIntent, exc: Exception) -> SigningRefused:
        if isinstance(exc, AttestationRequired):
            # The vault's key goes only to an attested signer; the release gate audited the refusal.
            return SigningRefused(AttestationRequired.code, str(exc))
        if isinstance(exc, ProviderUnavailable):
            # Names the provider and what failed; never key material (custody's messages carry none).
            return SigningRefused(Code.ROOT_PROVIDER_UNAVAILABLE, f"the signing key could not be unwrapped: {exc}")
        return SigningRefused(
            Code.SIGNING_KEY_UNAVAILABLE,
            f"no usable signing key for agent {intent.agent_id!r} on {intent.chain}: "
            f"{exc.__class__.__name__}; an admin provisions one with "
            f"`warden keys provision --agent {intent.agent_id} --chain {intent.chain}`",
        )

    async def nonce(self, intent: TransactionIntent, address: str, node: Node, now: datetime) -> int:
        """The nonce to sign at: the one the intent names, only to replace a transaction this signer
        signed at it; else the next after the last this signer used, or the node's pending count
        if someone else used the address since."""
        if intent.nonce is not None:
            # Naming a nonce is for replacing a transaction this signer signed at it; any other
            # would let an agent open a gap that stalls every later transaction of the address.
            if not self.state.agent(intent.agent_id).signed_at_nonce(intent.chain, address, intent.nonce):
                raise SigningRefused(
                    Code.NONCE_NOT_ALLOWED,
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
            raise SigningRefused(Code.NONCE_EXHAUSTED, f"{address} has used every nonce EIP-2681 allows") from None
        return nonce

    async def _pending_nonce(self, chain: str, address: str, node: Node, now: datetime) -> int:
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
