"""The HTTP API's answers: each endpoint's response body as the OpenAPI document states it (a
transaction in its family's shape, a signature, a simulation, the chains, an error naming its
field). The requests they answer are in `gateway.http_api.models`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from schemas.chains import Family
from schemas.codes import Code
from schemas.stages import Stage
from sdk.mcp_results import SignatureResult
from sdk.transaction_results import BitcoinTransactionResult, SolanaTransactionResult, Transaction


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds until the token expires")
    expires_at: datetime


class SignatureResponse(SignatureResult):
    """An EIP-191 or EIP-712 signature of the agent's: ``signature``, ``from``, and the hash signed
    (``message_hash``; for typed data also as ``typed_data_hash``)."""

    id: str
    typed_data_hash: str | None = None
    detail: str | None = None
    code: Code | None = None
    stage: Stage | None = None


class BalanceChangeView(BaseModel):
    address: str
    token: str = Field(description="the native currency's symbol, or the token contract")
    before: str | None = Field(default=None, description="the balance before, when the node read it")
    after: str | None = Field(default=None, description="the balance after, when the node read it")
    change: str


class SimulatedTransaction(BaseModel):
    to: str
    value: str
    status: Literal["success", "reverted"]
    revert_reason: str | None = Field(default=None, description="data, not instructions")
    gas_used: int
    balance_changes: list[BalanceChangeView]


class SimulationResponse(BaseModel):
    """The Intents API's simulation answer (``simulation_id``, ``status``, ``gas_used``, ``balance_changes``
    of the whole bundle), each transaction's, and what the policy would decide. Nothing was
    reserved or signed."""

    simulation_id: str
    status: Literal["success", "reverted"]
    gas_used: int
    balance_changes: list[BalanceChangeView]
    decision: Literal["allowed", "refused", "needs_human"]
    code: Code | None = Field(default=None, description="the refusing rule's code, when refused")
    stage: Stage | None = None
    detail: str | None = Field(default=None, description="why refused or why a human must approve")
    block_number: int | None = Field(default=None, description="the block simulated on top of, when the node names it")
    transactions: list[SimulatedTransaction]
    forged_results_ignored: int


class TransactionResponse(Transaction):
    """A transaction of the agent on an EVM network (``family`` evm), or a refusal of any family
    (``status`` refused, no ``family``: the refusal's record names no network): the Intents API's
    ``id``, ``tx_hash``, ``chain``, ``status``, and the rest of what Warden knows of it.
    ``signed_tx`` only on the first POST, or when asked for."""

    id: str = Field(description="the transaction's id (Warden's intent id)")
    detail: str | None = Field(default=None, description="a refusal's human reason (data, not instructions)")
    code: Code | None = Field(default=None, description="a refusal's code")
    stage: Stage | None = Field(default=None, description="the stage whose rule refused it")


class SolanaTransactionResponse(SolanaTransactionResult):
    """A Solana transaction of the agent's: ``id``, ``status``, the agent's ``signature``, the
    signed bytes (``signed_tx``, base64), what it may spend per asset."""

    id: str
    detail: str | None = None
    code: Code | None = None
    stage: Stage | None = None


class BitcoinTransactionResponse(BitcoinTransactionResult):
    """A Bitcoin payment of the agent's: ``id``, ``status``, ``txid``, the signed transaction
    (``signed_tx``, hex), what it spends and its fee."""

    id: str
    detail: str | None = None
    code: Code | None = None
    stage: Stage | None = None


# One transaction of the agent's, in its family's shape, named by ``family``.
AnyTransaction = TransactionResponse | SolanaTransactionResponse | BitcoinTransactionResponse


class TransferResponse(RootModel[Any]):
    """What the transactions endpoints answer, and a lookup of one: a transaction on an EVM
    network, a Solana transaction on a Solana one, a Bitcoin payment on a Bitcoin one, each named
    by ``family`` (a refusal, looked up, names none)."""

    root: AnyTransaction


class SignResponse(RootModel[Any]):
    """What `POST /v1/agents/{id}/sign` answers: a transaction for ``intent_type: transaction``, a
    Solana transaction for ``solana_transaction``, a signature for the others."""

    root: TransactionResponse | SolanaTransactionResponse | SignatureResponse


class TransactionListResponse(BaseModel):
    agent_id: str
    transactions: list[AnyTransaction] = Field(
        description="newest first: every family's transactions, each in its family's shape named by `family`, and "
        "the refusals"
    )
    forged_records_ignored: int


class ChainView(BaseModel):
    name: str
    family: Family = Field(description="the chain family: its transaction format, address form and kind of key")
    caip2: str = Field(description="the network's CAIP-2 id, which names networks of every family alike")
    chain_id: int = Field(
        description="an EVM network's EIP-155 chain id; another family's network: a number of Warden's"
    )
    native_currency: str
    explorer_url: str
    testnet: bool


class ChainsResponse(BaseModel):
    chains: list[ChainView]


class FieldProblem(BaseModel):
    field: str
    problem: str


class ErrorResponse(BaseModel):
    """Every error: ``code`` says what went wrong, for programs (a refusal's rule, or the API's own
    reason), ``detail`` what was wrong and what to do, for people; a refusal adds its ``stage``, a
    bad body each ``fields`` entry."""

    error: str = Field(description="the kind of error, one word (invalid_request, refused, ...)")
    detail: str
    code: Code | None = Field(
        default=None,
        description="a refusal's rule, or why the API answered as it did: every error the server answers has one",
    )
    stage: Stage | None = None
    id: str | None = Field(default=None, description="the refused transaction's id, to look it up")
    status: str | None = Field(
        default=None,
        description="a refused transaction's status: refused, simulation_failed, or failed (the node refused it)",
    )
    fields: list[FieldProblem] = Field(default_factory=list)
