"""The guardrails on a Solana transaction, read from its instructions (`svm.transactions`).

One judge for the streams worker and the signer, as on EVM: `judge` is a pure function of the
transaction, the agent's address, its policy, the token accounts the transaction names (read from
the chain by the caller: `svm.accounts`) and what the agent spent in the last 24 h. Deny by
default: an instruction Warden does not read, a program the policy does not list, a token it
does not list or an account it could not resolve is refused.

What is counted as spent, per asset (``SOL`` in lamports, each mint in base units):
- SOL sent by a System transfer whose source is the agent, lamports put into an account the agent
  creates, and the rent of a token account the agent pays for;
- the fee, when the agent pays it (signatures x 5,000 lamports plus compute-unit limit x price);
- tokens moved out of, burned from, or approved to a delegate of an account the agent owns, or by
  the agent's signature: as the account's authority, or as one of the signers listed for a token
  multisig authority (one of m is enough: its signature moves them all);
- of a Token-2022 mint with a transfer fee, what the transfer withholds, as a movement to the fee's
  withdraw authority (the worse of the mint's two fee settings; the recipient gets the rest).
Each amount, and what the transaction moves of each asset together, must fit the u64 the runtime
holds it in (`schemas.amounts`). Each movement's recipient is an owner: a System account for SOL, a token account's owner (resolved,
or created in the same transaction) for tokens; it must be the agent or on the allowlist. A
Token-2022 mint is read whole from the chain: an extension Warden does not read whole (a permanent
delegate, a transfer hook, ...) is refused unless the policy's entry for the mint accepts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime import solana as solana_rpc
from runtime.rpc import Node, RpcError, RpcUnavailable
from schemas.amounts import U64, first_out_of_range
from schemas.codes import Code
from schemas.intent import TransactionIntent
from schemas.outcomes import StageVerdict
from schemas.policy import AgentPolicy, SolanaPolicy, SolanaTokenLimit
from schemas.stages import Stage
from svm import messages, programs
from svm.accounts import (
    RENT_LAMPORTS_PER_BYTE,
    TOKEN_ACCOUNT_BYTES,
    TOKEN_ACCOUNT_RENT_LAMPORTS,
    AccountState,
    TokenAccount,
)
from svm.instructions import Instruction, Kind
from svm.mints import READ_WHOLE, Extension, Mint, associated_account_bytes, extension_name
from svm.transactions import SolanaTransaction, read

SOL = "SOL"


@dataclass(frozen=True)
class SolanaMovement:
    """Value leaving the agent: ``asset`` (``SOL`` or a mint) ``amount`` base units to ``owner``
    (None: burned or paid as fee), by instruction ``index`` (None: the fee)."""

    asset: str
    amount: int
    owner: str | None
    index: int | None
    what: str


@dataclass(frozen=True)
class SolanaVerdict:
    passed: bool
    code: Code
    reason: str
    movements: tuple[SolanaMovement, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    def spend(self) -> dict[str, int]:
        """What the transaction spends, per asset: what the rolling limits count."""
        return _per_asset(self.movements)


def _per_asset(movements: Iterable[SolanaMovement]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in movements:
        out[m.asset] = out.get(m.asset, 0) + m.amount
    return out


def _refuse(code: Code, reason: str, **facts: Any) -> SolanaVerdict:
    return SolanaVerdict(False, code, reason, facts=facts)


def _chain_refused(chain: str, allowed_chains: tuple[str, ...], policy: SolanaPolicy | None) -> SolanaVerdict | None:
    """Whatever a Solana intent asks: refused on a network the policy does not allow, or for an
    agent whose policy has no ``solana`` section."""
    if chain not in allowed_chains:
        return _refuse(
            Code.CHAIN_NOT_ALLOWED,
            f"chain {chain!r} is not in this agent's tx_allowed_chains {list(allowed_chains)}",
        )
    if policy is None:
        return _refuse(
            Code.SOLANA_NOT_ENABLED, "the agent's policy has no `solana` section: every Solana intent is refused"
        )
    return None


def judge(
    tx: SolanaTransaction,
    *,
    agent: str,
    chain: str,
    allowed_chains: tuple[str, ...],
    policy: SolanaPolicy | None,
    accounts: Mapping[str, TokenAccount],
    spent: Callable[[str], int],
    mints: Mapping[str, Mint] | None = None,
    token_account_rent: int = TOKEN_ACCOUNT_RENT_LAMPORTS,
) -> SolanaVerdict:
    """Whether the agent (address ``agent``) may sign ``tx`` on ``chain``. ``accounts``: the token
    accounts the transaction names, as the chain holds them (an account the transaction creates
    is absent); ``mints``: the Token-2022 mints they hold, read whole (`mints_named`);
    ``spent(asset)``: what the agent spent of ``SOL`` or a mint in the last 24 h."""
    refused = _chain_refused(chain, allowed_chains, policy)
    if refused is not None:
        return refused
    assert policy is not None  # _chain_refused refuses a policy without a solana section
    if agent not in tx.signers:
        return _refuse(
            Code.SOLANA_AGENT_NOT_SIGNER,
            f"the agent's address {agent} is not a signer of this transaction: there is nothing for Warden to sign",
        )
    forged = [signer for signer in tx.unverified if signer != agent]
    if forged:
        return _refuse(
            Code.SOLANA_SIGNATURE_INVALID,
            f"the signature in {forged[0]}'s slot does not verify over this transaction's message as Solana's runtime "
            "verifies it (strict Ed25519: S below the group order, neither R nor the key of small order): the network "
            "refuses it under that id, and a copy signed again could land instead; leave the slot empty or sign it "
            "with that key",
            signers=forged,
        )
    movements: list[SolanaMovement] = []
    chain_state = _ChainState(accounts, mints or {}, _created_token_accounts(tx))
    for ix in tx.instructions:
        refused, moved = _instruction(ix, agent, policy, chain_state, token_account_rent)
        if refused is not None:
            return refused
        movements += moved
    if tx.fee_payer == agent:
        movements.append(SolanaMovement(SOL, tx.fee_lamports, None, None, "fee"))
    refused = _out_of_range(movements)
    if refused is not None:
        return refused
    priority = tx.priority_fee_lamports
    if tx.fee_payer == agent and priority > policy.max_priority_fee_lamports:
        return _refuse(
            Code.SOLANA_PRIORITY_FEE_OVER_CEILING,
            f"the priority fee is {priority} lamports ({tx.compute_unit_limit} compute units at "
            f"{tx.compute_unit_price} micro-lamports); the policy allows at most {policy.max_priority_fee_lamports}",
            priority_fee_lamports=priority,
        )
    for m in movements:
        if m.owner is not None and m.owner != agent and m.owner not in policy.allowlist:
            return _refuse(
                Code.RECIPIENT_NOT_ALLOWLISTED,
                f"{_moved_by(m)} sends {m.amount} {_unit(m.asset)} to {m.owner}, who is not on the agent's Solana allowlist",
                recipient=m.owner,
                asset=m.asset,
            )
    verdict = SolanaVerdict(True, Code.SOLANA_ALLOWED, "every instruction is within the policy", tuple(movements))
    refused = check_limits(policy, verdict.spend(), spent)
    return verdict if refused is None else refused


def _out_of_range(movements: list[SolanaMovement]) -> SolanaVerdict | None:
    """Each amount the transaction moves, and all it moves of each asset together (the fee
    counted as SOL), within the u64 the runtime holds lamports and token amounts in."""
    each = [(f"the {_unit(m.asset)} of {_moved_by(m)}", m.amount) for m in movements]
    together = [
        (f"the {_unit(asset)} the transaction moves together (the fee included for SOL)", amount)
        for asset, amount in _per_asset(movements).items()
    ]
    found = first_out_of_range(U64, each + together)
    return None if found is None else _refuse(Code.AMOUNT_OUT_OF_RANGE, str(found.problem), **found.facts())


def _moved_by(m: SolanaMovement) -> str:
    return "the fee" if m.index is None else f"instruction {m.index} ({m.what})"


def check_limits(policy: SolanaPolicy, spend: Mapping[str, int], spent: Callable[[str], int]) -> SolanaVerdict | None:
    """Each asset's ``spend`` against its per-transaction cap and, with ``spent(asset)``, its
    rolling 24 h limit: the first refusal, or None. Also what a caller that reserves later checks
    again (`rules.judge.recheck_windows`)."""
    for asset, amount in spend.items():
        cap, daily = _limits(policy, asset)
        if cap is not None and amount > cap:
            return _refuse(
                Code.VALUE_OVER_CAP,
                f"the transaction spends {amount} {_unit(asset)} (fee included for SOL); the cap is {cap}",
                asset=asset,
                amount=amount,
                cap=cap,
            )
        before = spent(asset)
        if daily is not None and before + amount > daily:
            return _refuse(
                Code.DAILY_LIMIT_EXCEEDED,
                f"{before} {_unit(asset)} spent in the last 24 h plus {amount} is over the daily limit of {daily}",
                asset=asset,
                amount=amount,
                spent=before,
                limit=daily,
            )
    return None


def _unit(asset: str) -> str:
    return "lamports" if asset == SOL else f"base units of {asset}"


def _limits(policy: SolanaPolicy, asset: str) -> tuple[int | None, int | None]:
    if asset == SOL:
        return policy.max_lamports_per_tx, policy.daily_limit_lamports
    token = policy.token(asset)
    assert token is not None  # a mint reaches here only once the policy lists it
    return token.max_per_tx, token.daily_limit


def _created_token_accounts(tx: SolanaTransaction) -> dict[str, tuple[str, str]]:
    """Token accounts the transaction creates: address → (mint, owner)."""
    out: dict[str, tuple[str, str]] = {}
    for ix in tx.instructions:
        if ix.kind is Kind.CREATE_TOKEN_ACCOUNT and ix.destination and ix.mint and ix.owner:
            out[ix.destination] = (ix.mint, ix.owner)
        elif ix.kind is Kind.TOKEN_INITIALIZE_ACCOUNT and ix.mint and ix.owner:
            out[ix.accounts[0]] = (ix.mint, ix.owner)
    return out


@dataclass(frozen=True)
class _ChainState:
    """What the judge knows of the chain: the token accounts the transaction names as held
    (``accounts``), the Token-2022 mints they hold (``mints``), and the token accounts the
    transaction itself creates (``created``: address → (mint, owner))."""

    accounts: Mapping[str, TokenAccount]
    mints: Mapping[str, Mint]
    created: Mapping[str, tuple[str, str]]


def _instruction(
    ix: Instruction, agent: str, policy: SolanaPolicy, chain: _ChainState, rent: int
) -> tuple[SolanaVerdict | None, list[SolanaMovement]]:
    where = f"instruction {ix.index}"
    if ix.kind is Kind.UNREAD:
        return _refuse(
            Code.SOLANA_INSTRUCTION_NOT_READ,
            f"{where} is an instruction of {ix.program} (tag {ix.discriminator}) that Warden does not read, so it "
            "cannot say where value goes; no policy allows it",
            program=ix.program,
            discriminator=ix.discriminator,
        ), []
    if ix.kind is Kind.PROGRAM_CALL:
        rule = policy.program(ix.program)
        if rule is None or not rule.allows(ix.discriminator):
            return _refuse(
                Code.SOLANA_PROGRAM_NOT_ALLOWED,
                f"{where} calls program {ix.program} (discriminator {ix.discriminator or 'none'}), which the "
                "agent's Solana policy does not list",
                program=ix.program,
                discriminator=ix.discriminator,
            ), []
        return None, []
    if ix.kind is Kind.SOL_TRANSFER:
        if ix.authority != agent:
            return None, []  # another signer's lamports: Warden signs only the agent's slot
        return None, [SolanaMovement(SOL, int(ix.amount or 0), ix.destination, ix.index, "transfer")]
    if ix.kind is Kind.CREATE_ACCOUNT:
        if ix.source != agent:
            return None, []
        # The new account's lamports are its owner's to spend: its token owner when the same
        # transaction makes it a token account, else the account itself (whose key signed).
        owner = chain.created.get(ix.destination or "", (None, ix.destination))[1]
        return None, [SolanaMovement(SOL, int(ix.amount or 0), owner, ix.index, "account created")]
    if ix.kind is Kind.CREATE_TOKEN_ACCOUNT:
        if ix.source != agent:
            return None, []
        return _associated_rent(ix, chain, rent)
    if ix.kind in (Kind.TOKEN_TRANSFER, Kind.TOKEN_APPROVE, Kind.TOKEN_BURN):
        return _token_movement(ix, agent, policy, chain)
    if ix.kind is Kind.TOKEN_SET_AUTHORITY:
        if ix.new_authority != agent:
            return _refuse(
                Code.SOLANA_AUTHORITY_CHANGE_REFUSED,
                f"{where} gives authority over {ix.source} to {ix.new_authority or 'nobody'}: only the agent may "
                "hold it",
                account=ix.source,
                new_authority=ix.new_authority,
            ), []
        return None, []
    if ix.kind is Kind.TOKEN_CLOSE_ACCOUNT:
        if ix.destination != agent:
            return _refuse(
                Code.SOLANA_CLOSE_TO_OTHER_REFUSED,
                f"{where} closes {ix.source} and sends its lamports to {ix.destination}: only to the agent",
                account=ix.source,
                destination=ix.destination,
            ), []
        return None, []
    # Revoke, SyncNative, InitializeAccount (its owner is judged where value reaches it), the
    # compute budget (counted in the fee) and memos move nothing.
    return None, []


def _associated_rent(
    ix: Instruction, chain: _ChainState, rent: int
) -> tuple[SolanaVerdict | None, list[SolanaMovement]]:
    """The rent of an associated token account the agent pays for, to the wallet it is for:
    ``rent`` for a Token account; for one of a Token-2022 mint, read whole, that much more for
    each byte its extensions add (`svm.mints.associated_account_bytes`)."""
    more = 0
    if _token_program_of(ix) == programs.TOKEN_2022:
        mint = chain.mints.get(ix.mint or "")
        if mint is None:
            return _refuse(
                Code.SOLANA_ACCOUNT_NOT_RESOLVED,
                f"instruction {ix.index} creates a token account of the Token-2022 mint {ix.mint}, which could not "
                "be read from the chain, so the account's size and rent are unknown",
                account=ix.mint,
            ), []
        more = (associated_account_bytes(mint) - TOKEN_ACCOUNT_BYTES) * RENT_LAMPORTS_PER_BYTE
    return None, [SolanaMovement(SOL, rent + more, ix.owner, ix.index, "token account rent")]


def _token_program_of(ix: Instruction) -> str | None:
    """The token program an associated token account instruction names (its sixth account)."""
    return ix.accounts[5] if len(ix.accounts) > 5 else None


def _token_movement(
    ix: Instruction, agent: str, policy: SolanaPolicy, chain: _ChainState
) -> tuple[SolanaVerdict | None, list[SolanaMovement]]:
    where = f"instruction {ix.index} ({ix.kind.value})"
    source = chain.accounts.get(ix.source or "")
    if source is None:
        return _refuse(
            Code.SOLANA_ACCOUNT_NOT_RESOLVED,
            f"{where}: the token account {ix.source} was not found on chain, so whose tokens move is unknown",
            account=ix.source,
        ), []
    if source.program != ix.program:
        return _refuse(
            Code.SOLANA_TOKEN_MISMATCH,
            f"{where}: {ix.source} belongs to {source.program}, not to the program the instruction calls",
        ), []
    # The agent's signature counts wherever the token program counts it: as the authority, or as
    # one of the signers listed for a multisig authority (one of m is enough to count it all).
    if source.owner != agent and ix.authority != agent and agent not in ix.signers:
        return None, []  # neither the agent's tokens nor its signature: another signer's move
    token = policy.token(source.mint)
    if token is None:
        return _refuse(
            Code.SOLANA_TOKEN_NOT_LISTED,
            f"{where} moves mint {source.mint}, which the agent's Solana policy does not list under tokens",
            mint=source.mint,
        ), []
    if (ix.mint is not None and ix.mint != source.mint) or (ix.decimals is not None and ix.decimals != token.decimals):
        return _refuse(
            Code.SOLANA_TOKEN_MISMATCH,
            f"{where} names mint {ix.mint} with {ix.decimals} decimals; {ix.source} holds {source.mint} "
            f"({token.decimals} decimals)",
        ), []
    mint = chain.mints.get(source.mint)
    if source.program == programs.TOKEN_2022:
        refused = _mint_refused(where, source.mint, mint, token)
        if refused is not None:
            return refused, []
    amount = int(ix.amount or 0)
    if ix.kind is Kind.TOKEN_BURN:
        return None, [SolanaMovement(source.mint, amount, None, ix.index, "burn")]
    if ix.kind is Kind.TOKEN_APPROVE:
        return _approval(ix, where, amount, source.mint, mint, agent, policy)
    return _transfer(ix, where, amount, source.mint, mint, chain)


def _mint_refused(where: str, address: str, mint: Mint | None, token: SolanaTokenLimit) -> SolanaVerdict | None:
    """A Token-2022 mint's extensions: each one Warden reads whole passes (the transfer fee is
    counted where tokens move); a permanent delegate or a transfer hook in force, or any other
    extension, only when the policy's entry for the mint accepts it by name."""
    if mint is None:
        return _refuse(
            Code.SOLANA_ACCOUNT_NOT_RESOLVED,
            f"{where}: the Token-2022 mint {address} could not be read from the chain, so what its extensions do "
            "to a transfer is unknown",
            account=address,
        )
    hook = mint.transfer_hook
    for kind in mint.extensions:
        name = extension_name(kind)
        if kind in READ_WHOLE or name in token.accepted_extensions:
            continue
        if kind == Extension.PERMANENT_DELEGATE:
            if mint.permanent_delegate is None:
                continue  # cleared for good: nobody can set it again
            why = f"{mint.permanent_delegate} may move or burn any holder's tokens of it"
        elif kind == Extension.TRANSFER_HOOK and hook is not None:
            if hook.authority is None and hook.program is None:
                continue  # no hook, and nobody who can set one
            why = f"every transfer calls program {hook.program}, which {hook.authority} may change"
        else:
            why = "Warden does not read what it does to a transfer"
        return _refuse(
            Code.SOLANA_MINT_EXTENSION_NOT_ACCEPTED,
            f"{where} moves mint {address}, which carries the Token-2022 extension {name} ({why}); an admin accepts "
            f"it with accepted_extensions in the policy's tokens entry for the mint",
            mint=address,
            extension=name,
        )
    return None


def _approval(
    ix: Instruction, where: str, amount: int, asset: str, mint: Mint | None, agent: str, policy: SolanaPolicy
) -> tuple[SolanaVerdict | None, list[SolanaMovement]]:
    """An approval lets the delegate move ``amount``: judged and counted as if moved to it. Of a
    mint with a transfer fee, what the delegate's transfers withhold (at whatever fee is in force
    when it moves) goes to the fee's withdraw authority, who must be allowed to receive too."""
    if amount == U64.most:
        return _refuse(
            Code.UNLIMITED_APPROVAL,
            f"{where} approves {ix.destination} for an unlimited amount of {asset}",
            delegate=ix.destination,
        ), []
    fee = mint.transfer_fee if mint is not None else None
    withdraws = fee.withdraw_authority if fee is not None and fee.charges else None
    if withdraws is not None and withdraws != agent and withdraws not in policy.allowlist:
        return _refuse(
            Code.RECIPIENT_NOT_ALLOWLISTED,
            f"{where} lets {ix.destination} move {amount} base units of {asset}, whose transfers withhold a fee for "
            f"its withdraw authority {withdraws}, who is not on the agent's Solana allowlist",
            recipient=withdraws,
            asset=asset,
        ), []
    return None, [SolanaMovement(asset, amount, ix.destination, ix.index, "approve")]


def _transfer(
    ix: Instruction, where: str, amount: int, asset: str, mint: Mint | None, chain: _ChainState
) -> tuple[SolanaVerdict | None, list[SolanaMovement]]:
    """Tokens to the destination's owner, less the mint's transfer fee, which goes to the fee's
    withdraw authority (nobody, when it has none): the larger of the mint's two fee settings."""
    destination = chain.accounts.get(ix.destination or "")
    if destination is not None:
        held, owner = destination.mint, destination.owner
    elif ix.destination is not None and ix.destination in chain.created:
        held, owner = chain.created[ix.destination]
    else:
        return _refuse(
            Code.SOLANA_ACCOUNT_NOT_RESOLVED,
            f"{where}: the destination {ix.destination} is neither a token account on chain nor created by this "
            "transaction, so who receives is unknown",
            account=ix.destination,
        ), []
    if held != asset:
        return _refuse(Code.SOLANA_TOKEN_MISMATCH, f"{where}: {ix.destination} holds {held}, not {asset}"), []
    config = mint.transfer_fee if mint is not None else None
    fee = config.worst_fee(amount) if config is not None else 0
    moved = [SolanaMovement(asset, amount - fee, owner, ix.index, "transfer")]
    if config is not None and fee:
        moved.append(SolanaMovement(asset, fee, config.withdraw_authority, ix.index, "transfer fee"))
    return None, moved


def mints_named(tx: SolanaTransaction, accounts: Mapping[str, TokenAccount]) -> tuple[str, ...]:
    """The Token-2022 mints the judge needs (what the caller reads from the chain, whole, for
    `judge`'s ``mints``): those ``accounts`` hold, and those of the associated token accounts
    ``tx`` creates. A mint of the Token program carries no extension."""
    held = [a.mint for a in accounts.values() if a.program == programs.TOKEN_2022]
    created = [
        ix.mint
        for ix in tx.instructions
        if ix.kind is Kind.CREATE_TOKEN_ACCOUNT and ix.mint and _token_program_of(ix) == programs.TOKEN_2022
    ]
    return tuple(dict.fromkeys(held + created))


def token_accounts_named(tx: SolanaTransaction) -> tuple[str, ...]:
    """The accounts whose token state the judge needs: the sources and destinations of token
    instructions (what the caller reads from the chain for `judge`'s ``accounts``)."""
    named: list[str] = []
    for ix in tx.instructions:
        if ix.program in programs.TOKEN_PROGRAMS and ix.kind in (
            Kind.TOKEN_TRANSFER,
            Kind.TOKEN_APPROVE,
            Kind.TOKEN_BURN,
        ):
            for address in (ix.source, ix.destination if ix.kind is Kind.TOKEN_TRANSFER else None):
                if address and address not in named:
                    named.append(address)
    return tuple(named)


# -- simulation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolanaBalanceChange:
    """How much of ``asset`` (``SOL`` or a mint) ``account`` gained (positive) or lost, and whose
    it is: a token account's owner, else the account itself."""

    account: str
    owner: str
    asset: str
    delta: int


def balance_changes(
    before: Mapping[str, AccountState | None], after: Mapping[str, AccountState | None]
) -> list[SolanaBalanceChange]:
    """Every SOL and token balance that differs between ``before`` and ``after`` (an absent
    account holds nothing), in the shape EVM's simulation reports."""
    changes = []
    for address in after:
        old, new = before.get(address), after.get(address)
        old_token = old.token(address) if old else None
        new_token = new.token(address) if new else None
        holder = new_token or old_token
        owner = holder.owner if holder is not None else address
        lamports = (new.lamports if new else 0) - (old.lamports if old else 0)
        if lamports:
            changes.append(SolanaBalanceChange(address, owner, SOL, lamports))
        if holder is not None:
            if old_token and new_token and old_token.mint != new_token.mint:
                changes.append(SolanaBalanceChange(address, owner, old_token.mint, -old_token.amount))
                changes.append(SolanaBalanceChange(address, owner, new_token.mint, new_token.amount))
                continue
            delta = (new_token.amount if new_token else 0) - (old_token.amount if old_token else 0)
            if delta:
                changes.append(SolanaBalanceChange(address, owner, holder.mint, delta))
    return changes


def judge_simulation(
    changes: list[SolanaBalanceChange],
    error: object | None,
    *,
    agent: str,
    policy: SolanaPolicy,
    declared: SolanaVerdict,
    logs: tuple[str, ...] = (),
) -> SolanaVerdict:
    """What the node's runtime did, against the policy and against what the instructions
    declared (``declared``: `judge`'s verdict): a transaction that fails is refused with its
    logs; value reaching an owner who is neither the agent nor on the allowlist is refused with
    the route named, whichever instruction (or inner call) moved it; the agent losing more of an
    asset than the instructions declared is refused."""
    if error is not None:
        return _refuse(
            Code.SIMULATION_FAILED,
            f"the node's simulation of the transaction failed: {error}",
            error=str(error),
            logs=list(logs[-20:]),
        )
    for change in changes:
        if change.delta > 0 and change.owner != agent and change.owner not in policy.allowlist:
            return _refuse(
                Code.SIMULATION_ROUTE_NOT_ALLOWLISTED,
                f"simulated, {change.delta} {_unit(change.asset)} reach {change.account} of {change.owner}, who is not "
                "on the agent's Solana allowlist",
                route={"account": change.account, "owner": change.owner, "asset": change.asset, "amount": change.delta},
            )
    lost: dict[str, int] = {}
    for change in changes:
        if change.owner == agent and change.delta < 0:
            lost[change.asset] = lost.get(change.asset, 0) - change.delta
    spend = declared.spend()
    for asset, amount in lost.items():
        if amount > spend.get(asset, 0):
            return _refuse(
                Code.SIMULATION_MOVES_MORE_THAN_DECLARED,
                f"simulated, the agent loses {amount} {_unit(asset)}; its instructions declare "
                f"{spend.get(asset, 0)} (fee included for SOL)",
                asset=asset,
                simulated=amount,
                declared=spend.get(asset, 0),
            )
    return SolanaVerdict(
        True,
        Code.SIMULATION_ROUTES_ALLOWED,
        "simulated: every balance that grows is the agent's or an allowlisted owner's",
        declared.movements,
        facts={"changes": [vars(c) for c in changes]},
    )


# -- the stage --------------------------------------------------------------------------------


def asset_key(chain: str, asset: str) -> str:
    """An asset's key in the agent's spend windows: per network, ``SOL`` or the mint."""
    return f"{chain}:{asset}"


async def check(
    intent: TransactionIntent, policy: AgentPolicy, node: Node, spent: Callable[[str], int], agent: str | None = None
) -> tuple[StageVerdict, dict[str, int]]:
    """The ``solana`` stage of a solana_transaction intent: its instructions judged (`judge`),
    with the token accounts they name and those accounts' Token-2022 mints read from ``node`` (the
    worker's node and the signer's own alike), then the node's simulation of it judged
    (`judge_simulation`). ``agent``: the agent's Solana address (the signer's comes from the key
    itself; the worker's is the policy's ``solana.address``). Returns the verdict and what it
    spends per asset key (`asset_key`), which the caller reserves."""
    raw = intent.solana_transaction_bytes
    tx = read(raw)
    if agent is None:
        agent = policy.solana.address if policy.solana is not None else ""
    try:
        accounts = await solana_rpc.token_accounts(node, token_accounts_named(tx))
        judged = judge(
            tx,
            agent=agent,
            chain=intent.chain,
            allowed_chains=policy.tx_allowed_chains,
            policy=policy.solana,
            accounts=accounts,
            mints=await solana_rpc.mints(node, mints_named(tx, accounts)),
            spent=lambda asset: spent(asset_key(intent.chain, asset)),
        )
        if judged.passed and policy.usd_limited and judged.movements:
            # No price source is read for Solana assets: their USD value is unknown, so a policy
            # that limits USD cannot be kept on them. Fail closed.
            assets = ", ".join(sorted(judged.spend()))
            judged = _refuse(
                Code.PRICE_FEED_UNKNOWN,
                f"the policy sets USD limits, and Warden reads no price for Solana assets ({assets}), so this "
                "intent's USD value is unknown; an admin removes usd_max_per_tx and usd_daily_limit to sign on Solana",
                assets=assets,
            )
        if judged.passed:
            assert policy.solana is not None
            seen = await solana_rpc.simulate(node, raw, tx.writable)
            judged = judge_simulation(
                balance_changes(seen.before, seen.after),
                seen.error,
                agent=agent,
                policy=policy.solana,
                declared=judged,
                logs=seen.logs,
            )
    except (RpcError, RpcUnavailable) as exc:
        judged = _refuse(
            Code.CHAIN_RPC_FAILED,
            f"the {intent.chain} node could not be asked ({exc}); nothing is signed on a guess: submit it again",
        )
    facts = dict(judged.facts)
    if judged.passed:
        facts["movements"] = [vars(m) for m in judged.movements]
    verdict = StageVerdict.judged(
        intent_id=intent.intent_id,
        stage=Stage.SOLANA,
        passed=judged.passed,
        code=judged.code,
        reason=judged.reason,
        facts=facts,
    )
    counted = {asset_key(intent.chain, a): n for a, n in judged.spend().items()} if judged.passed else {}
    return verdict, counted


def judge_message(
    message: messages.OffchainMessage,
    *,
    agent: str,
    chain: str,
    allowed_chains: tuple[str, ...],
    policy: SolanaPolicy | None,
) -> SolanaVerdict:
    """Whether the agent (address ``agent``) may sign the off-chain ``message`` on ``chain``: off
    unless the policy turns it on, bounded in size, the agent one of its signatories, and (when
    the policy lists application domains) for one of those applications."""
    refused = _chain_refused(chain, allowed_chains, policy)
    if refused is not None:
        return refused
    assert policy is not None  # _chain_refused refuses a policy without a solana section
    facts = {
        "version": message.version,
        "content_bytes": message.content_bytes,
        "application_domain": message.application_domain,
        "signatories": list(message.signatories),
    }
    if not policy.message_signing_enabled:
        return _refuse(
            Code.SOLANA_MESSAGE_SIGNING_OFF,
            "Solana off-chain message signing is off for this agent; an admin turns it on with "
            "solana.message_signing_enabled in the policy",
            **facts,
        )
    if message.content_bytes > policy.message_max_bytes:
        return _refuse(
            Code.SOLANA_MESSAGE_TOO_LONG,
            f"the message's content is {message.content_bytes} bytes; the policy signs at most "
            f"{policy.message_max_bytes} (solana.message_max_bytes)",
            **facts,
        )
    if agent not in message.signatories:
        return _refuse(
            Code.SOLANA_MESSAGE_AGENT_NOT_SIGNATORY,
            f"the agent's address {agent} is not one of the message's signatories "
            f"({', '.join(message.signatories)}): there is nothing for Warden to sign",
            **facts,
        )
    domains = policy.message_application_domains
    if domains and message.application_domain not in domains:
        named = (
            "names no application domain (version 1)"
            if message.application_domain is None
            else f"is for application domain {message.application_domain}"
        )
        return _refuse(
            Code.SOLANA_MESSAGE_DOMAIN_NOT_ALLOWED,
            f"the message {named}, and the policy signs messages for {', '.join(domains)} only "
            "(solana.message_application_domains)",
            **facts,
        )
    return SolanaVerdict(
        True,
        Code.SOLANA_MESSAGE_ALLOWED,
        f"a version {message.version} off-chain message of {message.content_bytes} bytes, allowed",
        facts=facts,
    )


def check_message(intent: TransactionIntent, policy: AgentPolicy, agent: str | None = None) -> StageVerdict:
    """The ``solana_message`` stage of a solana_message intent (`judge_message`). ``agent``: the
    agent's Solana address (the signer's comes from the key itself; the worker's is the policy's
    ``solana.address``)."""
    if agent is None:
        agent = policy.solana.address if policy.solana is not None else ""
    try:
        message = messages.read(intent.solana_message_bytes)
    except messages.MessageError as exc:  # the intent's validation read it: only a hand-made record lands here
        judged = _refuse(Code.SOLANA_MESSAGE_INVALID, f"solana_message: {exc}")
    else:
        judged = judge_message(
            message, agent=agent, chain=intent.chain, allowed_chains=policy.tx_allowed_chains, policy=policy.solana
        )
    return StageVerdict.judged(
        intent_id=intent.intent_id,
        stage=Stage.SOLANA_MESSAGE,
        passed=judged.passed,
        code=judged.code,
        reason=judged.reason,
        facts=dict(judged.facts),
    )


def recheck_windows(
    intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int], spent: Callable[[str], int]
) -> StageVerdict | None:
    """The rolling limits of what the ``solana`` stage counted, against ``spent`` as it is now."""
    if policy.solana is None:
        return None
    prefix = asset_key(intent.chain, "")
    spend = {key.removeprefix(prefix): n for key, n in asset_spend.items() if key.startswith(prefix)}
    refused = check_limits(policy.solana, spend, lambda asset: spent(asset_key(intent.chain, asset)))
    if refused is None:
        return None
    return StageVerdict.refusing(
        intent_id=intent.intent_id,
        stage=Stage.SOLANA,
        code=refused.code,
        reason=refused.reason,
        facts=refused.facts,
    )


def approval_needed(intent: TransactionIntent, policy: AgentPolicy, asset_spend: Mapping[str, int]) -> str | None:
    """Why a Solana intent that passed every guardrail still waits for a human, or None: what it
    spends of SOL (fee included) or of a mint is above that asset's approval threshold."""
    if policy.solana is None:
        return None
    prefix = asset_key(intent.chain, "")
    for key, amount in asset_spend.items():
        if not key.startswith(prefix):
            continue
        asset = key.removeprefix(prefix)
        if asset == SOL:
            threshold = policy.solana.approval_threshold_lamports
        else:
            token = policy.solana.token(asset)
            threshold = None if token is None else token.approval_threshold
        if threshold is not None and amount > threshold:
            return f"{amount} {_unit(asset)} is above the approval threshold of {threshold}"
    return None
