"""The MCP server that acts for one agent (`warden mcp`): the Intents API's agent tools over the official
MCP SDK, each a request through the pipeline like any other intent.

It holds that agent's Ed25519 intent key and nothing else: no chain key, no admin key. Every
request it makes is an intent the agent signs, judged by the streams worker and re-judged by the
signer against the agent's policy, so the server adds nothing to what the agent may do. It reports
an outcome only once the SDK has verified it (`sdk.outcomes.wait_outcomes`: signed by a pinned key
of the service allowed to say it, bound to the very intent sent); the lookups
(`gateway.mcp_server.reads`) read the agent's records of every family as `warden txs` does.

Every tool has an input and an output JSON Schema (derived from its signature and its
`sdk.mcp_results` or `sdk.transaction_results` model) and answers with structured content plus a
short text. The descriptions below are fixed: text from outside (refusal reasons, revert strings,
typed-data fields) comes back only as data fields.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import httpx2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from gateway.mcp_server.reads import AgentReads, answer
from runtime.config import Settings
from runtime.registry import REGISTRY
from runtime.rpc import RpcError
from schemas.chains import Family, UnknownChain
from schemas.errors import WardenError, explain
from schemas.intent import TransactionIntent
from schemas.simulation import MAX_BUNDLE_STEPS
from sdk import dry_run, solana
from sdk.client import (
    Client,
    Outcome,
    SimulationUnanswered,
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
from sdk.dry_run import PolicyCheck
from sdk.mcp_results import (
    AdminOnly,
    SignatureResult,
    VerifiedSimulation,
    signature_of,
    signature_summary,
    simulation_of,
    simulation_summary,
)
from sdk.transaction_results import (
    BitcoinTransactionResult,
    SolanaTransactionResult,
    Transaction,
    bitcoin_summary,
    bitcoin_transaction_of,
    solana_summary,
    solana_transaction_of,
    submitted_transaction,
    transaction_summary,
)
from sdk.transfers import TransferInvalid, transfer_fields
from sdk.x402 import X402Error
from sdk.x402_pay import Payment, pay, payment_summary
from svm import messages as solana_messages

INSTRUCTIONS = (
    "Warden signs for this agent without giving it a key: every transaction or signature is an intent "
    "judged against the agent's admin-signed policy (chains, recipients, caps, limits, approvals) before "
    "a signer signs it. A refusal names the stage and code of the rule that decided it. Call get_policy "
    "to see the limits in force."
)

# The tools of this server, in the order tools/list shows them; the read-only ones are marked so.
TOOLS = (
    "simulate_transaction",
    "simulate_bundle",
    "submit_transaction",
    "sign_transaction",
    "sign_message",
    "sign_typed_data",
    "submit_solana_transaction",
    "sign_solana_message",
    "pay_bitcoin",
    "pay_x402",
    "check_policy",
    "get_transaction",
    "list_transactions",
    "list_pending_approvals",
    "get_policy",
    "list_signing_keys",
    "provision_signing_key",
)
READ_ONLY = frozenset(
    {
        "simulate_transaction",
        "simulate_bundle",
        "check_policy",
        "get_transaction",
        "list_transactions",
        "list_pending_approvals",
        "get_policy",
        "list_signing_keys",
    }
)

Chain = Annotated[str, Field(description='a chain of the registry, e.g. "ethereum", "base", "anvil"')]
To = Annotated[str, Field(description="the recipient or contract address, 0x-hex")]
Value = Annotated[str, Field(description='the amount in the chain\'s native unit as a decimal string, e.g. "0.5"')]
Data = Annotated[str, Field(description="calldata, 0x-hex; 0x for a plain transfer")]
SimulateFirst = Annotated[bool, Field(description="simulate before signing (on by default)")]
IdempotencyKey = Annotated[
    str | None, Field(description="a retry with the same key gets the first answer; generated when omitted")
]
SigningKeyPath = Annotated[str | None, Field(description="which of the agent's signing keys, when it has several")]
GasLimit = Annotated[int | None, Field(description="gas limit; estimated when omitted")]


class BundleStep(BaseModel):
    """One transaction of a bundle."""

    to: To
    value: Value
    data: Data = "0x"
    gas_limit: GasLimit = None


class AgentNotProvisioned(WardenError):
    """The agent has no intent key under WARDEN_HOME: there is nothing to sign its intents with."""


class AgentTools(AgentReads):
    """The tools, acting for ``agent_id`` with its intent key (the read-only ones are
    `AgentReads`'). ``timeout_s`` bounds how long a tool waits for an outcome; past it the tool
    says so and gives the intent id to look up."""

    def __init__(self, settings: Settings, agent_id: str, agent_key: Ed25519PrivateKey, timeout_s: float):
        super().__init__(settings, agent_id)
        self._key = agent_key
        self.timeout_s = timeout_s

    async def simulate_transaction(
        self, chain: Chain, to: To, value: Value, data: Data = "0x", gas_limit: GasLimit = None
    ) -> Annotated[CallToolResult, VerifiedSimulation]:
        """Simulate a transaction without signing or sending it: whether it succeeds or reverts (with
        the decoded reason), the gas it uses, the balance changes of every address it touches
        (before, after, change, per asset), and every policy stage's verdict against the agent's
        current policy and rolling 24 h limits. Nothing is reserved or signed."""
        return await self._simulate(chain, [BundleStep(to=to, value=value, data=data, gas_limit=gas_limit)])

    async def simulate_bundle(
        self,
        chain: Chain,
        transactions: Annotated[
            list[BundleStep],
            Field(min_length=1, max_length=MAX_BUNDLE_STEPS, description="the transactions, run in this order"),
        ],
    ) -> Annotated[CallToolResult, VerifiedSimulation]:
        """Simulate several transactions in order in one block (for example an approve, then a swap
        that needs it), without signing or sending any: each one's status, gas and balance changes,
        and each one's policy verdicts, the spend of the earlier ones counted against the rolling
        limits of the later ones. Nothing is reserved or signed."""
        return await self._simulate(chain, transactions)

    async def submit_transaction(
        self,
        chain: Chain,
        to: To,
        value: Value,
        data: Data = "0x",
        simulate_first: SimulateFirst = True,
        idempotency_key: IdempotencyKey = None,
        signing_key_path: SigningKeyPath = None,
        gas_limit: GasLimit = None,
    ) -> Annotated[CallToolResult, Transaction]:
        """Sign a transaction and broadcast it, once Warden's policy checks pass, then wait for its
        final status (mined, failed, replaced or dropped). A refusal names the stage and code of the
        rule that decided it; an intent above the policy's approval threshold waits for an admin.
        Returns the transaction and its signed bytes."""
        return await self._transaction(
            chain, to, value, data, simulate_first, idempotency_key, signing_key_path, gas_limit, broadcast=True
        )

    async def sign_transaction(
        self,
        chain: Chain,
        to: To,
        value: Value,
        data: Data = "0x",
        simulate_first: SimulateFirst = True,
        idempotency_key: IdempotencyKey = None,
        signing_key_path: SigningKeyPath = None,
        gas_limit: GasLimit = None,
    ) -> Annotated[CallToolResult, Transaction]:
        """Sign a transaction without broadcasting it (to send through your own RPC), once Warden's
        policy checks pass. Returns the signed bytes (signed_tx) and hash, or the refusal with the
        stage and code of the rule that decided it."""
        return await self._transaction(
            chain, to, value, data, simulate_first, idempotency_key, signing_key_path, gas_limit, broadcast=False
        )

    async def sign_message(
        self,
        message: Annotated[str, Field(description="the text to sign, as its UTF-8 bytes")],
        chain: Chain,
    ) -> Annotated[CallToolResult, SignatureResult]:
        """Sign a message with EIP-191 personal_sign, if the agent's policy allows message signing.
        Returns the signature and the address that signed, or the refusal with its stage and code."""
        intent = self._build(
            lambda: new_message_intent(self._key, agent_id=self.agent_id, chain=chain, message=message)
        )
        return await self._signature(intent, "personal_sign")

    async def sign_typed_data(
        self,
        chain: Chain,
        typed_data: Annotated[
            dict[str, Any], Field(description="the EIP-712 document: types, primaryType, domain, message")
        ],
    ) -> Annotated[CallToolResult, SignatureResult]:
        """Sign EIP-712 typed data, if the agent's policy allows its domain (deny by default; what
        it authorizes to move is judged like a transfer). Returns the signature, or the refusal
        with its stage and code."""
        intent = self._build(
            lambda: new_typed_data_intent(self._key, agent_id=self.agent_id, chain=chain, typed_data=typed_data)
        )
        return await self._signature(intent, "typed_data")

    async def submit_solana_transaction(
        self,
        chain: Annotated[str, Field(description='a Solana network: "solana", "solana-devnet" or "solana-local"')],
        transaction: Annotated[
            str,
            Field(
                description="the transaction's wire bytes, base64, with the agent's signature slot empty (web3.js "
                "serialize({requireAllSignatures: false}); solders bytes(VersionedTransaction))"
            ),
        ],
        broadcast: Annotated[
            bool, Field(description="send it and wait until it is finalized (or dropped); false: sign only")
        ] = True,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, SolanaTransactionResult]:
        """Sign a Solana transaction (legacy or v0, without address lookup tables) once Warden's
        policy checks pass: its instructions read (SOL and SPL transfers, approvals, programs the
        policy lists), the node's simulation of where value lands, the caps and rolling limits per
        asset with the fee. With broadcast, waits for finalized (or dropped, when its blockhash
        expires first). A refusal names the stage and code of the rule that decided it."""
        key = idempotency_key or str(uuid.uuid4())
        try:
            raw = solana.decode(transaction)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        intent = self._build(
            lambda: new_solana_intent(
                self._key,
                agent_id=self.agent_id,
                chain=chain,
                transaction=raw,
                broadcast=broadcast,
                idempotency_key=key,
            )
        )
        outcome, forged = await self._ask(intent, final=broadcast)
        found = solana_transaction_of(intent.intent_id, self.agent_id, chain, key, outcome, forged)
        return answer(solana_summary(found, self.timeout_s), found)

    async def pay_bitcoin(
        self,
        chain: Annotated[str, Field(description='a Bitcoin network: "bitcoin" or "bitcoin-regtest"')],
        to: Annotated[str, Field(description="the recipient's address on that network")],
        value: Annotated[str, Field(description='BTC as a decimal string, e.g. "0.01" (at most 8 decimals)')],
        broadcast: Annotated[
            bool, Field(description="send it and wait until it is mined and final; false: sign only")
        ] = True,
        idempotency_key: IdempotencyKey = None,
    ) -> Annotated[CallToolResult, BitcoinTransactionResult]:
        """Pay BTC from the agent's own coins once Warden's policy checks pass: Warden writes the
        payment (a PSBT of the agent's coins in blocks, change back to the agent, 2 sat/vB), judges
        its inputs, outputs, fee and limits, signs it and, with broadcast, waits until it is mined and
        final. A refusal names the stage and code of the rule that decided it."""
        key = idempotency_key or str(uuid.uuid4())
        try:
            family = REGISTRY.get(chain).family
        except UnknownChain as exc:
            raise ToolError(str(exc)) from None
        if family is not Family.BITCOIN:
            raise ToolError(f"chain {chain!r} is {family.a_network}: pay_bitcoin pays on a Bitcoin network")
        policy = await self._policy()
        try:
            fields = await transfer_fields(self.settings, chain, policy, to, value)
        except TransferInvalid as exc:
            raise ToolError(str(exc)) from None
        except (RpcError, OSError, TimeoutError) as exc:
            raise ToolError(f"the node of {chain} did not say the agent's coins ({exc}); try again") from None
        intent = self._build(
            lambda: new_intent(
                self._key, agent_id=self.agent_id, chain=chain, broadcast=broadcast, idempotency_key=key, **fields
            )
        )
        outcome, forged = await self._ask(intent, final=broadcast)
        found = bitcoin_transaction_of(intent.intent_id, self.agent_id, chain, key, outcome, forged)
        return answer(bitcoin_summary(found, self.timeout_s), found)

    async def sign_solana_message(
        self,
        chain: Annotated[str, Field(description='a Solana network: "solana", "solana-devnet" or "solana-local"')],
        text: Annotated[str, Field(description="the text to sign, written as a Solana off-chain message")],
        application_domain: Annotated[
            str | None, Field(description="the application the text is for (base58, 32 bytes), if it names one")
        ] = None,
        signatories: Annotated[
            list[str] | None,
            Field(description="every key that signs the message (base58); default: the agent's Solana address alone"),
        ] = None,
    ) -> Annotated[CallToolResult, SignatureResult]:
        """Sign text as a Solana off-chain message (version 0, the Solana Foundation's format: never
        bare bytes, so it can never be a transaction), if the agent's policy allows message signing
        (and the application domain, when it lists them). Returns the signature (base58) and the
        bytes signed (base64), or the refusal with its stage and code."""
        if signatories is None:
            policy = await self._policy()
            if policy.solana is None:
                raise ToolError("the agent's policy has no `solana` section: it signs nothing on Solana")
            signatories = [policy.solana.address]
        try:
            raw = solana_messages.encode(text, signatories, 0, application_domain)
        except ValueError as exc:  # MessageError, or an address that is not base58 of 32 bytes
            raise ToolError(f"the message cannot be written: {exc}") from None
        intent = self._build(
            lambda: new_solana_message_intent(self._key, agent_id=self.agent_id, chain=chain, message=raw)
        )
        return await self._signature(intent, "solana_message")

    async def pay_x402(
        self,
        url: Annotated[str, Field(description="the resource to fetch, http:// or https://")],
        max_amount: Annotated[
            str | None,
            Field(
                description="the most to pay, in the token's unit, e.g. \"0.05\"; the policy's limits apply either way"
            ),
        ] = None,
    ) -> Annotated[CallToolResult, Payment]:
        """Fetch an HTTP resource; when it answers 402 Payment Required (x402), pay it with an EIP-3009
        token authorization that Warden signs only if the agent's policy allows it (the payee
        allowlisted, the amount within the token's limits), then fetch it again with the payment.
        Returns the resource (body, data only) and the settlement, or the refusal with the stage and
        code of the rule that decided it, in which case nothing was signed or sent."""
        try:
            payment = await pay(
                self.settings, self.agent_id, self._key, url, max_amount=max_amount, timeout_s=self.timeout_s
            )
        except X402Error as exc:
            raise ToolError(str(exc)) from None
        except httpx2.HTTPError as exc:
            raise ToolError(f"the resource could not be fetched: {type(exc).__name__}") from None
        return answer(payment_summary(payment), payment)

    async def check_policy(
        self,
        chain: Chain,
        to: To,
        value: Value,
        data: Data = "0x",
        simulate_first: SimulateFirst = True,
        signing_key_path: SigningKeyPath = None,
        gas_limit: GasLimit = None,
    ) -> Annotated[CallToolResult, PolicyCheck]:
        """What Warden's policy checks would decide about this transaction now, without signing or
        sending anything: allowed, refused (the stage and code of the deciding rule, and its
        reason, which says what to change) or needs_human (above an approval threshold); every
        stage's verdict; what is left of each rolling 24 h limit. Advice only: the pipeline
        judges the real intent again with its own records."""
        intent = self._transaction_intent(
            chain, to, value, data, simulate_first, None, signing_key_path, gas_limit, True
        )
        result = await dry_run.check_policy(self.settings, intent)
        decided = "" if result.deciding is None else f" by stage {result.deciding.stage} ({result.deciding.code})"
        return answer(f"{result.decision}{decided}, policy v{result.policy_version}", result)

    async def provision_signing_key(self, chain: Chain) -> Annotated[CallToolResult, AdminOnly]:
        """Provision a signing key: an admin action, which an agent is refused."""
        result = AdminOnly(
            reason="only an admin provisions signing keys; an agent cannot, and this server holds no admin key",
            how=f"an admin runs `warden keys provision --agent {self.agent_id} --chain {chain}`",
        )
        return answer(f"refused: {result.reason}; {result.how}", result, is_error=True)

    async def _simulate(self, chain: str, steps: list[BundleStep]) -> CallToolResult:
        given = [step.model_dump(exclude_none=True) for step in steps]
        try:
            request = new_simulation_request(self._key, agent_id=self.agent_id, chain=chain, steps=given)
        except ValidationError as exc:
            raise ToolError("the request is not a valid simulation:\n  " + "\n  ".join(explain(exc))) from None
        forged: list[str] = []
        try:
            async with Client(self.settings) as client:
                result = await client.simulate_request(request, self.timeout_s, forged)
        except SimulationUnanswered as exc:
            raise ToolError(str(exc)) from None
        found = simulation_of(result, len(forged))
        return answer(simulation_summary(found), found, is_error=False)

    async def _transaction(
        self,
        chain: str,
        to: str,
        value: str,
        data: str,
        simulate_first: bool,
        idempotency_key: str | None,
        signing_key_path: str | None,
        gas_limit: int | None,
        broadcast: bool,
    ) -> CallToolResult:
        key = idempotency_key or str(uuid.uuid4())
        intent = self._transaction_intent(
            chain, to, value, data, simulate_first, key, signing_key_path, gas_limit, broadcast
        )
        outcome, forged = await self._ask(intent, final=broadcast)
        result = submitted_transaction(intent.intent_id, self.agent_id, chain, key, outcome, forged)
        return answer(transaction_summary(result, self.timeout_s), result)

    def _transaction_intent(
        self,
        chain: str,
        to: str,
        value: str,
        data: str,
        simulate_first: bool,
        idempotency_key: str | None,
        signing_key_path: str | None,
        gas_limit: int | None,
        broadcast: bool,
    ) -> TransactionIntent:
        fields: dict[str, Any] = {"gas_limit": gas_limit, "signing_key_path": signing_key_path}
        return self._build(
            lambda: new_intent(
                self._key,
                agent_id=self.agent_id,
                idempotency_key=idempotency_key,
                chain=chain,
                to=to,
                value=value,
                data=data,
                simulate_first=simulate_first,
                broadcast=broadcast,
                **{name: given for name, given in fields.items() if given is not None},
            )
        )

    async def _signature(self, intent: TransactionIntent, kind: str) -> CallToolResult:
        outcome, forged = await self._ask(intent, final=False)
        result = signature_of(intent.intent_id, self.agent_id, kind, intent.chain, outcome, forged)
        return answer(signature_summary(result, self.timeout_s), result)

    def _build(self, make: Callable[[], TransactionIntent]) -> TransactionIntent:
        """The signed intent, or a ToolError naming each field that is wrong and why."""
        try:
            return make()
        except ValidationError as exc:
            raise ToolError("the request is not a valid intent:\n  " + "\n  ".join(explain(exc))) from None

    async def _ask(self, intent: TransactionIntent, final: bool) -> tuple[Outcome | None, int]:
        return await submit_and_wait(self.settings, intent, self.timeout_s, final)


def agent_server(
    settings: Settings,
    agent_id: str,
    timeout_s: float = 120.0,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
) -> MCPServer:
    """An MCP server acting for ``agent_id`` with its intent key from WARDEN_HOME; raises
    `AgentNotProvisioned` (saying how to provision it) when the key is not there. Over HTTP,
    ``auth`` and ``token_verifier`` (`gateway.mcp_server.auth`) make every request carry the bearer token."""
    key_file = intent_key_file(settings.home, agent_id)
    if not key_file.exists():
        raise AgentNotProvisioned(
            f"agent {agent_id!r} has no intent key at {key_file}: an admin provisions the agent on this "
            f"WARDEN_HOME with `warden keys provision --agent {agent_id} --chain ethereum` (its signing key) "
            f"and `warden agents create --agent {agent_id} ...` (its policy, which also creates the intent key)"
        )
    tools = AgentTools(settings, agent_id, load_or_create_agent_key(settings.home, agent_id), timeout_s)
    server = MCPServer(
        name="warden",
        title=f"Warden: agent {agent_id}",
        instructions=INSTRUCTIONS,
        auth=auth,
        token_verifier=token_verifier,
    )
    for name in TOOLS:
        method = getattr(tools, name)
        server.add_tool(
            method,
            name=name,
            description=inspect.cleandoc(method.__doc__),
            annotations=ToolAnnotations(read_only_hint=name in READ_ONLY),
        )
    return server
