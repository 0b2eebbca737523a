"""The service behind each route of the HTTP API: it turns a request into an intent the agent
signs, publishes it, and answers with the outcome the SDK verified."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from gateway.http_api import api_keys, lookups
from gateway.http_api.answers import (
    BalanceChangeView,
    ChainsResponse,
    ChainView,
    FieldProblem,
    SimulatedTransaction,
    SimulationResponse,
    TokenResponse,
)
from gateway.http_api.bodies import BODY_TIMEOUT_S, flag, read_body, read_model
from gateway.http_api.errors import Refused, invalid_body, json_answer, rejection
from gateway.http_api.key_store import KeyStoreBehind, KeyStoreView
from gateway.http_api.limits import FailedAttempts, Idempotency, RateLimit
from gateway.http_api.models import (
    IDEMPOTENCY_KEY_PATTERN,
    BitcoinTransferRequest,
    BundleRequest,
    PersonalSignRequest,
    SignRequest,
    SimulateRequest,
    SolanaMessageSignRequest,
    SolanaRequest,
    SolanaSignRequest,
    SolanaTransferRequest,
    TokenRequest,
    TransactionRequest,
    TransactionSignRequest,
    TypedDataSignRequest,
)
from gateway.http_api.openapi import openapi_text
from gateway.http_api.transfers import transfer_fields_of
from runtime.config import Settings
from runtime.registry import REGISTRY
from schemas.chains import Family, UnknownChain
from schemas.codes import Code
from schemas.outcomes import (
    IntentRejected,
    SignedBitcoinTransaction,
    SignedMessage,
    SignedSolanaMessage,
    SignedSolanaTransaction,
    SignedTransaction,
)
from sdk import solana
from sdk.client import (
    Client,
    SimulationUnanswered,
    agent_transactions,
    intent_key_file,
    load_or_create_agent_key,
    new_intent,
    new_message_intent,
    new_simulation_request,
    new_solana_intent,
    new_solana_message_intent,
    new_typed_data_intent,
    submit_and_wait,
)
from sdk.mcp_results import signature_of
from sdk.outcomes import Outcome
from sdk.transaction_results import (
    Transaction,
    bitcoin_transaction_of,
    solana_transaction_of,
    submitted_transaction,
)

SIMULATION_FAILED_CODES = frozenset({Code.SIMULATION_REVERTED})


@dataclass
class ApiService:
    settings: Settings
    now: Callable[[], datetime]
    timeout_s: float = 60.0
    body_timeout_s: float = BODY_TIMEOUT_S
    rate: RateLimit = field(default_factory=lambda: RateLimit(per_s=20, burst=40))
    idempotency: Idempotency = field(default_factory=Idempotency)
    token_attempts: FailedAttempts = field(default_factory=FailedAttempts)
    submit: Callable[..., Awaitable[tuple[Outcome | None, int]]] = submit_and_wait
    # What `GET .../signing-keys` answers from, kept current once `app.serve` starts it.
    key_store: KeyStoreView = field(init=False)

    def __post_init__(self) -> None:
        self.key_store = KeyStoreView(self.settings)

    # -- credentials -------------------------------------------------------------------------

    def caller(self, request: web.Request) -> str:
        """The agent the bearer token speaks for, which must be the agent the path names."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(
                401,
                "unauthorized",
                "send `Authorization: Bearer <token>`; get a token from POST /v1/auth/agent-token",
                headers={"WWW-Authenticate": 'Bearer realm="warden"'},
            )
        try:
            caller = api_keys.check_token(self.settings.home, token.strip(), self.now())
        except api_keys.CredentialRefused as exc:
            raise Refused(
                401, "unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
        agent_id = request.match_info["agent_id"]
        if caller.agent_id != agent_id:
            raise Refused(
                403, "forbidden", f"this token is agent {caller.agent_id!r}'s; it cannot act for {agent_id!r}"
            )
        wait_s = self.rate.take(agent_id, time.monotonic())
        if wait_s > 0:
            raise _limited("rate_limited", f"agent {agent_id!r} sent more than {self.rate.per_s:g} requests/s", wait_s)
        return agent_id

    async def agent_token(self, request: web.Request) -> web.Response:
        body = read_model(TokenRequest, await read_body(request, self.body_timeout_s))
        now = self.now()
        try:
            record = api_keys.check_api_key(self.settings.home, body.agent_id, body.api_key, now)
        except api_keys.CredentialRefused as exc:
            # Counted after the check: failures limit the one who fails, never a valid key.
            presented = hashlib.sha256(f"{body.agent_id}\0{body.api_key}".encode()).hexdigest()
            wait_s = self.token_attempts.failed(request.remote or "unknown", presented, now.timestamp())
            if wait_s > 0:
                why = "too many failed attempts from this address or with this key"
                raise _limited("too_many_failed_attempts", why, wait_s) from None
            raise Refused(401, "unauthorized", str(exc)) from None
        token, expires_at = api_keys.issue_token(self.settings.home, record, body.agent_id, now)
        answer = TokenResponse(
            access_token=token, expires_in=int((expires_at - now).total_seconds()), expires_at=expires_at
        )
        return json_answer(200, answer.model_dump(mode="json"))

    # -- transactions ------------------------------------------------------------------------

    async def submit_transaction(self, request: web.Request) -> web.Response:
        return await self._transaction(request, broadcast=True)

    async def sign_transaction(self, request: web.Request) -> web.Response:
        return await self._transaction(request, broadcast=False)

    async def _transaction(self, request: web.Request, broadcast: bool) -> web.Response:
        """A transaction on an EVM network; on a Solana one, a transfer of SOL, and on a Bitcoin one
        a payment of BTC (`chain`, `to`, `value`), written here and judged like any intent of that
        family."""
        agent_id = self.caller(request)
        doc = await read_body(request, self.body_timeout_s)
        family = _family_named(doc)
        if family is Family.SOLANA:
            transfer = read_model(SolanaTransferRequest, doc)
            work = lambda key: self._solana_transfer(agent_id, transfer, key, broadcast)  # noqa: E731
            return await self._idempotent(request, agent_id, doc, work)
        if family is Family.BITCOIN:
            payment = read_model(BitcoinTransferRequest, doc)
            work = lambda key: self._bitcoin_transfer(agent_id, payment, key, broadcast)  # noqa: E731
            return await self._idempotent(request, agent_id, doc, work)
        asked = read_model(TransactionRequest, doc)
        return await self._idempotent(request, agent_id, doc, lambda key: self._answer(agent_id, asked, key, broadcast))

    async def _solana_transfer(
        self, agent_id: str, asked: SolanaTransferRequest, key: str | None, broadcast: bool
    ) -> tuple[int, dict[str, Any]]:
        fields = await transfer_fields_of(
            self.settings, agent_id, asked.chain, asked.to, asked.value, "no recent blockhash"
        )
        transaction = SolanaRequest(chain=asked.chain, transaction=fields["solana_transaction"])
        return await self._solana(agent_id, transaction, key, broadcast)

    async def _bitcoin_transfer(
        self, agent_id: str, asked: BitcoinTransferRequest, key: str | None, broadcast: bool
    ) -> tuple[int, dict[str, Any]]:
        fields = await transfer_fields_of(
            self.settings, agent_id, asked.chain, asked.to, asked.value, "no list of the agent's unspent outputs"
        )
        agent_key = self._agent_key(agent_id)
        try:
            intent = new_intent(
                agent_key, agent_id=agent_id, chain=asked.chain, broadcast=broadcast, idempotency_key=key, **fields
            )
        except ValidationError as exc:
            raise invalid_body(exc, "the payment is not a valid Bitcoin intent") from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        doc = lookups.view(bitcoin_transaction_of(intent.intent_id, agent_id, asked.chain, key, outcome, forged))
        if isinstance(outcome, IntentRejected):
            raise rejection(outcome)
        return (201 if isinstance(outcome, SignedBitcoinTransaction) else 202), doc

    async def sign(self, request: web.Request) -> web.Response:
        """The unified sign endpoint: personal_sign, typed_data, or a transaction of any type."""
        agent_id = self.caller(request)
        doc = await read_body(request, self.body_timeout_s)
        asked = read_model(SignRequest, doc, tagged_by="intent_type").root
        if isinstance(asked, TransactionSignRequest):
            work = lambda key: self._answer(agent_id, asked, key, broadcast=False)  # noqa: E731
        elif isinstance(asked, SolanaSignRequest):
            work = lambda key: self._solana(agent_id, asked, key, broadcast=False)  # noqa: E731
        else:
            work = lambda key: self._signature(agent_id, asked, key)  # noqa: E731
        return await self._idempotent(request, agent_id, doc, work)

    async def submit_solana(self, request: web.Request) -> web.Response:
        """A Solana transaction signed and sent once the policy allows it; answered once sent."""
        agent_id = self.caller(request)
        doc = await read_body(request, self.body_timeout_s)
        asked = read_model(SolanaRequest, doc)
        return await self._idempotent(request, agent_id, doc, lambda key: self._solana(agent_id, asked, key, True))

    async def _solana(
        self, agent_id: str, asked: SolanaRequest, key: str | None, broadcast: bool
    ) -> tuple[int, dict[str, Any]]:
        agent_key = self._agent_key(agent_id)
        try:
            raw = solana.decode(asked.transaction)
        except ValueError as exc:
            raise Refused(422, "invalid_request", str(exc)) from None
        try:
            intent = new_solana_intent(
                agent_key,
                agent_id=agent_id,
                chain=asked.chain,
                transaction=raw,
                broadcast=broadcast,
                idempotency_key=key,
            )
        except ValidationError as exc:
            raise invalid_body(exc, "the request is not a valid Solana transaction") from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        doc = lookups.view(solana_transaction_of(intent.intent_id, agent_id, asked.chain, key, outcome, forged))
        if isinstance(outcome, IntentRejected):
            raise rejection(outcome)
        return (201 if isinstance(outcome, SignedSolanaTransaction) else 202), doc

    async def _idempotent(
        self,
        request: web.Request,
        agent_id: str,
        doc: Any,
        work: Callable[[str | None], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> web.Response:
        """``work(key)``'s answer, under the request's Idempotency-Key when it has one."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key):
            raise Refused(
                400,
                "invalid_request",
                "Idempotency-Key: 1-255 printable ASCII characters, not starting or ending with a space (a UUID, say)",
            )
        if key is None:
            return json_answer(*await work(None))
        fingerprint = hashlib.sha256(
            request.path.encode() + b"\0" + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        replay = self.idempotency.begin(agent_id, key, fingerprint, time.monotonic())
        if replay is not None:
            # The Intents API's 200 for a completed duplicate; a refusal is replayed as the refusal it was.
            status = 200 if replay[0] < 300 else replay[0]
            return web.Response(status=status, body=replay[1], content_type="application/json")
        answer: tuple[int, bytes] | None = None
        try:
            status, result = await work(key)
            answer = (status, orjson.dumps(result))
        except Refused as refused:
            if refused.status not in (403, 422):  # an answer about this request, not about its delivery
                raise
            answer = (refused.status, orjson.dumps(refused.document()))  # the bytes response() sends
            raise
        finally:
            # A 202 (parked, or no outcome yet) is not final: a retry asks the pipeline again,
            # which answers a reused key with the first intent's outcome.
            self.idempotency.finish(agent_id, key, answer if answer is not None and answer[0] != 202 else None)
        return web.Response(status=status, body=answer[1], content_type="application/json")

    async def _signature(
        self,
        agent_id: str,
        asked: PersonalSignRequest | TypedDataSignRequest | SolanaMessageSignRequest,
        key: str | None,
    ) -> tuple[int, dict[str, Any]]:
        agent_key = self._agent_key(agent_id)
        try:
            if isinstance(asked, PersonalSignRequest):
                intent = new_message_intent(
                    agent_key, agent_id=agent_id, chain=asked.chain, message=asked.message, idempotency_key=key
                )
            elif isinstance(asked, SolanaMessageSignRequest):
                intent = new_solana_message_intent(
                    agent_key,
                    agent_id=agent_id,
                    chain=asked.chain,
                    message=solana.decode(asked.message, "message"),
                    idempotency_key=key,
                )
            else:
                intent = new_typed_data_intent(
                    agent_key,
                    agent_id=agent_id,
                    chain=asked.chain,
                    typed_data=with_domain_type(asked.typed_data),
                    idempotency_key=key,
                )
        except ValidationError as exc:
            raise invalid_body(exc, f"the request is not a valid {asked.intent_type} request") from None
        except ValueError as exc:  # a message that is not base64 (sdk.solana.decode)
            raise Refused(422, "invalid_request", str(exc)) from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        found = signature_of(intent.intent_id, agent_id, asked.intent_type, asked.chain, outcome, forged)
        doc = {"id": intent.intent_id, **found.model_dump(mode="json", by_alias=True, exclude_none=True)}
        if asked.intent_type == "typed_data" and found.message_hash is not None:
            doc["typed_data_hash"] = found.message_hash
        if isinstance(outcome, IntentRejected):
            raise rejection(outcome)
        return (201 if isinstance(outcome, SignedMessage | SignedSolanaMessage) else 202), doc

    # -- simulation --------------------------------------------------------------------------

    async def simulate(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        asked = read_model(SimulateRequest, await read_body(request, self.body_timeout_s))
        return json_answer(200, await self._simulate(agent_id, asked.chain, [asked]))

    async def simulate_bundle(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        asked = read_model(BundleRequest, await read_body(request, self.body_timeout_s))
        chains = {step.chain for step in asked.transactions}
        if len(chains) != 1:
            raise Refused(
                422,
                "invalid_request",
                f"transactions: a bundle runs on one chain; these name {sorted(chains)}",
                fields=[FieldProblem(field="transactions", problem="every transaction must name the same chain")],
            )
        return json_answer(200, await self._simulate(agent_id, chains.pop(), asked.transactions))

    async def _simulate(self, agent_id: str, chain: str, steps: list[SimulateRequest]) -> dict[str, Any]:
        agent_key = self._agent_key(agent_id)
        given = [step.model_dump(exclude_none=True, exclude={"chain", "signing_key_path"}) for step in steps]
        try:
            simulation = new_simulation_request(agent_key, agent_id=agent_id, chain=chain, steps=given)
        except ValidationError as exc:
            raise invalid_body(exc, "the request is not a valid simulation") from None
        forged: list[str] = []
        try:
            async with Client(self.settings) as client:
                result = await client.simulate_request(simulation, self.timeout_s, forged)
        except SimulationUnanswered as exc:
            raise Refused(503, "unavailable", f"{exc}; retry later", headers={"Retry-After": "5"}) from None
        currency = REGISTRY.get(chain).currency
        done = [
            SimulatedTransaction(
                to=step.to,
                value=step.value,
                status=step.status,
                revert_reason=step.revert_reason,
                gas_used=step.gas_used,
                balance_changes=[
                    BalanceChangeView(
                        address=r.address,
                        token=currency if r.token == "native" else r.token,
                        before=r.before,
                        after=r.after,
                        change=r.change,
                    )
                    for r in step.balance_changes
                ],
            )
            for step in result.steps
        ]
        deciding = result.deciding
        answer = SimulationResponse(
            simulation_id=result.intent_id,
            status="reverted" if any(t.status == "reverted" for t in done) else "success",
            gas_used=sum(t.gas_used for t in done),
            balance_changes=[row for t in done for row in t.balance_changes],
            decision=result.decision,
            code=None if deciding is None else deciding.code,
            stage=None if deciding is None else deciding.stage,
            detail=result.why_human if deciding is None else deciding.reason,
            block_number=result.block_number,
            transactions=done,
            forged_results_ignored=len(set(forged)),
        )
        return answer.model_dump(mode="json", exclude_none=True)

    # -- signing keys ------------------------------------------------------------------------

    async def signing_keys(self, request: web.Request) -> web.Response:
        """The addresses of the agent's keys in the key store the signer reads (never a key)."""
        agent_id = self.caller(request)
        try:
            found = await self.key_store.keys(agent_id)
        except KeyStoreBehind as exc:
            raise Refused(503, "unavailable", f"{exc}; retry later", headers={"Retry-After": "5"}) from None
        return json_answer(200, found.model_dump(mode="json", exclude_none=True))

    async def admins_only(self, request: web.Request) -> web.Response:
        """Provision, rotate, deactivate: an admin's acts, under the admins' quorum. An agent's
        token is refused; this API holds no admin key and takes no admin credential."""
        agent_id = self.caller(request)
        chain = request.match_info.get("chain", "<chain>")
        verb = {"POST": "provision", "DELETE": "deactivate"}[request.method]
        if request.path.endswith("/rotate"):
            verb = "rotate"
        raise Refused(
            403,
            "admins_only",
            f"only admins {verb} signing keys, under the admins' quorum; an agent's token cannot. An admin runs "
            f"`warden keys {verb} --agent {agent_id} --chain {chain}`",
        )

    async def _answer(
        self, agent_id: str, asked: TransactionRequest | TransactionSignRequest, key: str | None, broadcast: bool
    ) -> tuple[int, dict[str, Any]]:
        agent_key = self._agent_key(agent_id)
        fields = asked.model_dump(exclude_none=True, exclude={"chain", "to", "value"})
        try:
            intent = new_intent(
                agent_key,
                agent_id=agent_id,
                idempotency_key=key,
                chain=asked.chain,
                to=asked.to,
                value=asked.value,
                broadcast=broadcast,
                **fields,
            )
        except ValidationError as exc:
            raise invalid_body(exc, "the request is not a valid transaction") from None
        outcome, forged = await self.submit(self.settings, intent, self.timeout_s, False)
        found = submitted_transaction(intent.intent_id, agent_id, asked.chain, key, outcome, forged)
        if isinstance(outcome, IntentRejected):
            reverted = outcome.code in SIMULATION_FAILED_CODES
            raise _refusal(found, 422 if reverted else 403, "simulation_failed" if reverted else "refused")
        if isinstance(outcome, SignedTransaction) and refused_by_node(outcome):
            raise Refused(
                422,
                "broadcast_refused",
                f"{outcome.error or 'the node refused the transaction'}; nothing was sent, its nonce is free again: "
                "fix what the node names (the sender's balance, the fee) and send a new request",
                id=intent.intent_id,
                status=outcome.status,
            )
        status = 201 if isinstance(outcome, SignedTransaction) else 202
        return status, lookups.view(found)

    def _agent_key(self, agent_id: str) -> Ed25519PrivateKey:
        if not intent_key_file(self.settings.home, agent_id).exists():
            raise Refused(
                403,
                "not_provisioned",
                f"agent {agent_id!r} has no intent key on this API's WARDEN_HOME; an admin runs "
                f"`warden agents create --agent {agent_id} ...` here",
            )
        return load_or_create_agent_key(self.settings.home, agent_id)

    async def list_transactions(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        include = flag(request, "include_signed_tx")
        found = await agent_transactions(self.settings, agent_id)
        rows = lookups.listed(found, include)
        return json_answer(200, {"agent_id": agent_id, "transactions": rows, "forged_records_ignored": found.forged})

    async def get_transaction(self, request: web.Request) -> web.Response:
        agent_id = self.caller(request)
        include = flag(request, "include_signed_tx")
        tx_id = request.match_info["tx_id"]
        history: dict[str, list[SignedTransaction]] = {}
        found = await agent_transactions(self.settings, agent_id, history=history)
        view = lookups.looked_up(found, history, tx_id, include)
        if view is not None:
            return json_answer(200, view)
        raise Refused(
            404,
            "not_found",
            f"agent {agent_id!r} has no transaction with id or hash {tx_id!r}; GET /v1/agents/{agent_id}/transactions "
            "lists them (an intent waiting for an admin is not listed yet)",
            code=Code.TRANSACTION_NOT_FOUND,
        )

    async def chains(self, _request: web.Request) -> web.Response:
        listed = [
            ChainView(
                name=c.name,
                family=c.family,
                caip2=c.caip2,
                chain_id=c.chain_id,
                native_currency=c.currency,
                explorer_url=c.explorer,
                testnet=c.testnet,
            )
            for c in REGISTRY.all().values()
        ]
        return json_answer(200, ChainsResponse(chains=listed).model_dump(mode="json"))

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.Response(status=200, text=openapi_text(), content_type="application/json")


def _family_named(doc: Any) -> Family | None:
    """The family of the network a request body's ``chain`` names (None: it names none known)."""
    chain = doc.get("chain") if isinstance(doc, dict) else None
    if not isinstance(chain, str):
        return None
    try:
        return REGISTRY.get(chain).family
    except UnknownChain:
        return None


def _limited(error: str, why: str, wait_s: float) -> Refused:
    """A 429 for a wait of ``wait_s``: Retry-After in whole seconds, at least 1, never short."""
    retry = str(max(1, math.ceil(wait_s)))
    return Refused(429, error, f"{why}; retry in {retry} s", headers={"Retry-After": retry})


def refused_by_node(outcome: SignedTransaction) -> bool:
    """Whether the chain's node refused ``outcome`` when it was sent: failed in no block. A
    transaction that ran and failed is in a block (its fee was paid): that is an outcome, not an
    error of the request."""
    return outcome.status == "failed" and outcome.block_number is None


def _refusal(found: Transaction, status: int, error: str) -> Refused:
    refusal = found.refusal
    assert refusal is not None  # a refused transaction carries its refusal
    return Refused(
        status,
        error,
        refusal.reason,
        code=refusal.code,
        stage=refusal.stage,
        id=found.intent_id,
        status=error if status == 422 else "refused",
    )


# EIP-712's domain fields, in the order the standard gives them.
DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)


def with_domain_type(typed_data: dict[str, Any]) -> dict[str, Any]:
    """``typed_data`` with its ``EIP712Domain`` type declared: as given, or derived from the fields
    its domain has, in EIP-712's order, as viem and ethers derive it (the Intents API's requests leave
    it out). The signature covers the same domain either way."""
    types, domain = typed_data.get("types"), typed_data.get("domain")
    if not isinstance(types, dict) or "EIP712Domain" in types or not isinstance(domain, dict):
        return typed_data
    declared = [{"name": name, "type": kind} for name, kind in DOMAIN_FIELDS if name in domain]
    return {**typed_data, "types": {"EIP712Domain": declared, **types}}
