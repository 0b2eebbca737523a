"""The MCP server's tools that read, for one agent (`warden mcp`): its transactions of every family
(listed and found as the HTTP API lists and finds them, `sdk.transaction_lookups`), its policy in
force, its intents waiting for an admin and its signing addresses; and `answer`, how every tool of
the server answers. Nothing here signs or sends anything (`gateway.mcp_server.server` marks these
tools read-only)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import AwareDatetime, BaseModel, Field

from runtime.clock import utcnow
from runtime.config import Settings
from schemas.outcomes import SignedTransaction
from schemas.policy import AgentPolicy
from sdk import dry_run
from sdk.client import agent_transactions, pending_approvals, policy_in_force
from sdk.mcp_results import PendingApprovals, PolicyView, SigningKeys, pending_approval, policy_view
from sdk.records import ReceiptUnavailable, outcome_receipt
from sdk.signing_keys import agent_signing_keys
from sdk.transaction_lookups import listed, looked_up
from sdk.transaction_results import AnyStatus, OneTransaction, TransactionList, summary_of

IncludeSignedTx = Annotated[bool, Field(description="also return the raw signed transaction")]


def answer(summary: str, result: BaseModel, is_error: bool = False, exclude: Any = None) -> CallToolResult:
    """The structured result (without the fields ``exclude`` names, as pydantic's ``exclude``),
    and as text: the one-line summary, then the same result as JSON (for clients that read text
    only)."""
    doc = result.model_dump(mode="json", by_alias=True, exclude=exclude)
    text = orjson.dumps(doc).decode()
    return CallToolResult(
        content=[TextContent(type="text", text=summary), TextContent(type="text", text=text)],
        structured_content=doc,
        is_error=is_error,
    )


class AgentReads:
    """The read-only tools, for ``agent_id``: what the services said about it, read from the
    topics as `warden txs` reads them (only what a pinned key of the service allowed to say it
    signed)."""

    def __init__(self, settings: Settings, agent_id: str):
        self.settings = settings
        self.agent_id = agent_id

    async def get_transaction(
        self,
        transaction_id: Annotated[
            str,
            Field(
                description="the intent_id a tool returned, or the hash on chain: an EVM transaction's hash, a Solana "
                "transaction's signature, a Bitcoin payment's txid"
            ),
        ],
        include_signed_tx: IncludeSignedTx = False,
        include_receipt: Annotated[
            bool,
            Field(
                description="also its newest outcome's receipt: a witnessed c2sp.org/tlog-proof an auditor checks offline"
            ),
        ] = False,
    ) -> Annotated[CallToolResult, OneTransaction]:
        """One of this agent's transactions, of any family, in its family's shape (named by family:
        evm, solana or bitcoin): its status, whether it is final, what it may spend, an EVM one with
        the history of its status changes; or its refusal. signed_tx only with include_signed_tx;
        its receipt with include_receipt."""
        history: dict[str, list[SignedTransaction]] = {}
        records = await agent_transactions(self.settings, self.agent_id, history=history)
        found = looked_up(records, history, transaction_id, include_signed_tx)
        if found is None:
            raise ToolError(
                f"no transaction of agent {self.agent_id!r} has the intent id or hash {transaction_id!r}; "
                "list_transactions lists them (an intent still waiting for an admin is not listed yet)"
            )
        result, record = found.result, found.record
        if include_receipt:
            try:
                result.receipt = await outcome_receipt(
                    self.settings, record.intent_id, record.agent_id, record.intent_digest
                )
            except ReceiptUnavailable as exc:
                result.receipt_unavailable = str(exc)
        return answer(summary_of(result), result, exclude=None if include_signed_tx else {"signed_tx"})

    async def list_transactions(
        self,
        include_signed_tx: IncludeSignedTx = False,
        status: Annotated[AnyStatus | None, Field(description="only transactions in this status")] = None,
        since: Annotated[
            AwareDatetime | None,
            Field(description="only those signed or refused at or after this time (ISO 8601, with zone)"),
        ] = None,
        until: Annotated[
            AwareDatetime | None,
            Field(description="only those signed or refused before this time (ISO 8601, with zone)"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500, description="at most this many, newest first")] = 20,
    ) -> Annotated[CallToolResult, TransactionList]:
        """This agent's transactions of every family (EVM transactions, Solana transactions,
        Bitcoin payments, each named by family) and its refused intents, newest first, optionally
        of one status and within a time range. signed_tx only with include_signed_tx."""
        records = await agent_transactions(self.settings, self.agent_id)
        chosen = [
            each.result
            for each in listed(records, include_signed_tx)
            if status in (None, each.result.status)
            and (since is None or each.at >= since)
            and (until is None or each.at < until)
        ]
        result = TransactionList(
            agent_id=self.agent_id, transactions=chosen[:limit], forged_records_ignored=records.forged
        )
        counts: dict[str, int] = {}
        for t in result.transactions:
            counts[t.status] = counts.get(t.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        return answer(
            f"{len(result.transactions)} transaction(s) of {self.agent_id}: {summary}",
            result,
            exclude=None if include_signed_tx else {"transactions": {"__all__": {"signed_tx"}}},
        )

    async def get_policy(self) -> Annotated[CallToolResult, PolicyView]:
        """The agent's policy in force, as an admin signed it: allowed chains, recipient allowlist,
        per-transaction cap, rolling 24 h limit, per-asset limits, fee ceiling, approval threshold,
        and what is left of each rolling 24 h limit now."""
        policy = await self._policy()
        result = policy_view(policy)
        result.windows_24h = dry_run.windows_left(
            policy, await dry_run.spent_now(self.settings, self.agent_id, utcnow())
        )
        return answer(f"policy v{result.version} of {self.agent_id}, signed by {result.admin_key_id}", result)

    async def list_pending_approvals(self) -> Annotated[CallToolResult, PendingApprovals]:
        """This agent's intents waiting for an admin's approval (above an approval threshold),
        oldest first, with why each waits and until when an admin may decide."""
        waiting = await pending_approvals(self.settings, utcnow())
        result = PendingApprovals(
            agent_id=self.agent_id, pending=[pending_approval(p) for p in waiting if p.agent_id == self.agent_id]
        )
        return answer(f"{len(result.pending)} intent(s) of {self.agent_id} waiting for an admin", result)

    async def list_signing_keys(self) -> Annotated[CallToolResult, SigningKeys]:
        """The chain addresses this agent's transactions are signed from, read from the key store
        the signer reads (the keys stay in Warden's custody; only their addresses are shown)."""
        result = await agent_signing_keys(self.settings, self.agent_id)
        return answer(f"{len(result.keys)} signing address(es) of {self.agent_id}", result)

    async def _policy(self) -> AgentPolicy:
        policy = await policy_in_force(self.settings, self.agent_id)
        if policy is None:
            raise ToolError(
                f"agent {self.agent_id!r} has no policy in force: an admin creates one with "
                f"`warden agents create --agent {self.agent_id}`"
            )
        return policy
