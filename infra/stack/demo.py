"""`warden demo`: the whole pipeline on the embedded stack, one scripted agent.

It provisions a demo agent (intent key, admin-signed policy, a chain key funded
on Anvil), submits intents that trip every guardrail and several that pass,
waits for every outcome, and prints them; approved ones are broadcast and their
receipts shown. Then the other signing paths: an EIP-191 message, an EIP-712
Permit refused by default and signed once an admin allowlists its token, a blob
transaction (EIP-4844) that carries its blob, and an EIP-7702 delegation of the
agent's account to an allowlisted contract. Then tokens, with real contracts
(infra/contracts, deployed on Anvil): an ERC-20 transfer within the token's
limits, one to a stranger, an unlimited approval, a token that takes more than
its calldata says (caught by simulation), one above the daily limit, and one
above the human-approval threshold, which waits until the demo, as the admin,
approves it. Last, a second agent's session through MCP (``demo_mcp``): simulate, check the policy,
submit and list one transfer, as an agent runtime does through `warden mcp`; and with
``over_http``, a third agent sending the Intents API's HTTP requests to `warden api` (``demo_http``).

The script (each intent and the outcome it expects) is ``demo_script``; this module deploys what
it needs, runs it, reports the outcomes and verifies the ledger.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from infra import contracts
from infra.stack import demo_bitcoin, demo_http, demo_mcp, demo_solana
from infra.stack.demo_script import (
    AFTER_ALLOWLISTING,
    AGENT,
    ALICE,
    ANVIL_CHAIN_ID,
    BOB,
    DELEGATE,
    ETH_USD,
    FEE_CEILING,
    MALLORY,
    PAUSED,
    REVERT_REASON,
    USD_CAP,
    WUSD,
    WUSD_LIMITS,
    Scripted,
    demo_blob,
    script,
)
from infra.stack.provision import provision_agent
from rules.judge import stages_of
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.fields import format_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentParked, IntentRejected, Outcome, SignedMessage, SignedTransaction
from schemas.policy import AgentPolicy, AssetLimit, ContractCallRule, Eip712DomainRule, PriceFeed
from schemas.stages import Stage
from schemas.typed_data import TypedData
from sdk.client import (
    OUTCOME_TOPICS,
    Client,
    ClientKey,
    blob_fields,
    human_decision,
    new_intent,
    signed_policy,
    wait_outcomes,
)
from sdk.quorum import add_signature, open_proposals, propose, publish_proposal
from sdk.records import admins_in_force

# The demo's second admin: both it and the local admin must sign an approval (`warden demo`'s quorum).
SECOND_ADMIN = "second-admin"

# Code installed with anvil_setCode at demo_script.DELEGATE: it answers every call with 42.
ANSWER_42 = "0x602a60005260206000f3"  # PUSH1 42 PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # Anvil's first unlocked dev account
COLLECTOR = "0x000000000000000000000000000000000000C011"


def _revert_runtime(reason: str) -> str:
    """EVM code that copies an ABI-encoded Error(string) from its own code and reverts with it."""
    text = reason.encode()
    blob = (
        bytes.fromhex("08c379a0")
        + (32).to_bytes(32, "big")
        + len(text).to_bytes(32, "big")
        + text.ljust((len(text) + 31) // 32 * 32, b"\0")
    )
    size = len(blob).to_bytes(2, "big")
    # PUSH2 size, PUSH2 15 (blob offset), PUSH1 0, CODECOPY, PUSH2 size, PUSH1 0, REVERT, blob
    code = b"\x61" + size + b"\x61\x00\x0f\x60\x00\x39" + b"\x61" + size + b"\x60\x00\xfd" + blob
    return "0x" + code.hex()


def _fields(scripted: Scripted, setup: dict[str, Any]) -> dict[str, Any]:
    fields = {
        "chain": "anvil",
        **{name: value(setup) if callable(value) else value for name, value in scripted.fields.items()},
    }
    if fields.get("intent_type") is None:
        fields["broadcast"] = True
    if "typed_data" in fields:
        fields["typed_data"] = TypedData.model_validate(fields["typed_data"])
    if fields.get("blobs") == "demo":
        fields.update(blob_fields([demo_blob()]))
    return fields


async def provision(settings: Settings) -> dict[str, Any]:
    """The demo's contracts (the tokens and router compiled from infra/contracts, the paused
    contract and the delegate) and the demo agent: funded, holding 1,000 of each token, with its
    policy."""
    node = JsonRpc(settings.rpc_url_for("anvil"))
    try:
        await node.call("anvil_setCode", PAUSED, _revert_runtime(REVERT_REASON))
        await node.call("anvil_setCode", DELEGATE, ANSWER_42)
        token = await contracts.deploy(node, "AuthToken", "Warden Demo USD", "WUSD", 6, sender=DEPLOYER)
        greedy = await contracts.deploy(node, "GreedyToken", "Greedy Demo", "GRD", 6, COLLECTOR, sender=DEPLOYER)
        router = await contracts.deploy(node, "PullRouter", sender=DEPLOYER)
        forwarder = await contracts.deploy(node, "Forwarder", MALLORY, sender=DEPLOYER)
        # Chainlink-style feeds the second policy prices ETH and WUSD by (its USD limit).
        eth_feed = await contracts.deploy(node, "PriceFeed", 8, "ETH / USD", ETH_USD * 10**8, sender=DEPLOYER)
        wusd_feed = await contracts.deploy(node, "PriceFeed", 8, "WUSD / USD", 10**8, sender=DEPLOYER)
        agent = await provision_agent(
            settings,
            AGENT,
            tx_to_allowlist=(ALICE, BOB, PAUSED, token, greedy, router, forwarder),
            tx_max_value_eth="1",
            tx_daily_limit_eth="2",
            tx_max_fee_per_gas=FEE_CEILING,
            require_simulation=False,
            message_signing_enabled=True,
            eip7702_delegate_allowlist=(DELEGATE,),
            contract_calls=(
                ContractCallRule(contract=PAUSED, selectors=("deposit()",)),
                ContractCallRule(contract=forwarder, selectors=("forwardValue(address)",)),
            ),
            asset_limits=(
                AssetLimit(chain="anvil", token=token, symbol="WUSD", decimals=6, **WUSD_LIMITS),
                AssetLimit(chain="anvil", token=greedy, symbol="GRD", decimals=6, max_per_tx="100"),
            ),
        )
        for minted in (token, greedy):
            await contracts.send(
                node, DEPLOYER, minted, contracts.calldata("mint(address,uint256)", agent.address, 1_000 * WUSD)
            )
    finally:
        await node.close()
    return {
        "agent_key": agent.intent_key,
        "address": agent.address,
        "policy": agent.policy,
        "token": token,
        "greedy": greedy,
        "eth_feed": eth_feed,
        "wusd_feed": wusd_feed,
        "router": router,
        "forwarder": forwarder,
        "client_share": agent.client_share,
    }


async def run_script(
    settings: Settings,
    progress: Callable[[str], object] = print,
    timeout_s: float = 60.0,
    over_http: bool = False,
    solana: bool = False,
    x402_solana: bool = False,
    bitcoin: bool = False,
) -> dict[str, Any]:
    """The scripted intents, the MCP session, ``over_http`` (the stack runs `warden api`) the
    HTTP session, ``solana`` (the stack runs the local Solana node) the Solana session,
    ``x402_solana`` (that node is also solana-devnet's RPC) an x402 payment on Solana, and
    ``bitcoin`` (the stack runs the regtest node) the Bitcoin session."""
    setup = await provision(settings)
    progress(
        f"agent {AGENT}: chain key {setup['address']} funded with 100 ETH on anvil; "
        f"policy v{setup['policy'].version} published"
    )
    # The agent session through MCP, for its own agent: provisioned and its server started while
    # the script runs, its calls made once every scripted outcome is in.
    script_done = asyncio.Event()
    session_task = asyncio.create_task(
        demo_mcp.run_session(settings, setup["client_share"], script_done, progress, timeout_s)
    )
    began = time.monotonic()
    try:
        intents, outcomes, forged = await _submit_script(settings, setup, progress, timeout_s)
    except BaseException:
        # The script broke off: so does the session, and its server with it.
        session_task.cancel()
        await asyncio.gather(session_task, return_exceptions=True)
        raise
    elapsed = time.monotonic() - began
    script_done.set()
    session = await session_task
    http = await demo_http.run_session(settings, setup["client_share"], progress, timeout_s) if over_http else None
    on_solana = await demo_solana.run_session(settings, setup["client_share"], progress, timeout_s) if solana else None
    x402 = (
        await demo_solana.run_x402_session(settings, setup["client_share"], progress, timeout_s)
        if x402_solana
        else None
    )
    on_bitcoin = (
        await demo_bitcoin.run_session(settings, setup["client_share"], progress, timeout_s) if bitcoin else None
    )
    rows = [_outcome_row(scripted, intent, outcomes.get(intent.intent_id)) for scripted, intent in intents]
    return {
        "agent_id": AGENT,
        "address": setup["address"],
        "policy_version": setup["policy"].version,
        "contracts": {name: setup[name] for name in ("token", "greedy", "router", "forwarder")},
        "seconds_to_all_outcomes": round(elapsed, 3),
        "intents": rows,
        "forged_outcomes_ignored": [{"intent_id": i, "why": why} for i, why in forged],
        "mcp_session": session,
        "http_session": http,
        "solana_session": on_solana,
        "x402_solana_session": x402,
        "bitcoin_session": on_bitcoin,
        "all_as_expected": all(r["as_expected"] for r in rows)
        and session["as_expected"]
        and (http is None or http["as_expected"])
        and (on_solana is None or on_solana["as_expected"])
        and (x402 is None or x402["as_expected"])
        and (on_bitcoin is None or on_bitcoin["as_expected"]),
    }


async def _submit_script(
    settings: Settings, setup: dict[str, Any], progress: Callable[[str], object], timeout_s: float
) -> tuple[list[tuple[Scripted, TransactionIntent]], dict[str, Outcome], list[tuple[str, str]]]:
    """Submit the script's intents in its two phases (the second after an admin allowlists the demo
    token), deciding as an admin what the script has one decide; returns the intents, their
    outcomes, and the forged outcomes ignored on the way."""
    intents: list[tuple[Scripted, TransactionIntent]] = []
    forged: list[tuple[str, str]] = []
    outcomes: dict[str, Outcome] = {}
    async with Client(settings) as client:
        shares: dict[str, ClientKey | None] = {"none": None}
        if setup["client_share"] is not None:
            progress(
                f"signing keys are in {settings.key_mode}: each intent carries the client share, sealed to "
                "the signer's sealing key"
            )
            shares["right"] = await client.client_share(setup["client_share"])
            shares["wrong"] = await client.client_share(base64.b64encode(os.urandom(32)).decode())
        try:
            for phase, scripted_intents in enumerate((script(settings), AFTER_ALLOWLISTING)):
                if phase == 1:
                    policy = await _allowlist_token(settings, client, setup)
                    progress(
                        f"an admin allowlisted the demo token {setup['token']} for EIP-712 and set a USD cap of "
                        f"${policy.usd_max_per_tx} per intent, priced by feeds at ETH ${ETH_USD:,} and WUSD $1 "
                        f"(policy v{policy.version})"
                    )
                start = await end_offsets(settings, OUTCOME_TOPICS)
                batch = []
                for scripted in scripted_intents:
                    share = shares.get(scripted.client_share)
                    intent = new_intent(
                        setup["agent_key"], agent_id=AGENT, client_share=share, **_fields(scripted, setup)
                    )
                    batch.append((scripted, intent))
                    await client.submit(intent)
                await client.flush()
                intents += batch
                progress(f"submitted {len(batch)} intents; waiting for outcomes")
                await _act_as_admin(settings, client, batch, timeout_s, start, progress)
                outcomes.update(await wait_outcomes(settings, [i for _, i in batch], timeout_s, start, forged=forged))
        finally:
            for share in shares.values():
                if share is not None:
                    share.wipe()
    return intents, outcomes, forged


def _outcome_row(scripted: Scripted, intent: TransactionIntent, outcome: Outcome | None) -> dict[str, Any]:
    """The report's row for one scripted intent: what it was, what came of it, and whether that is
    what the script expected."""
    row: dict[str, Any] = {
        "intent": scripted.name,
        "intent_id": intent.intent_id,
        "agent_id": intent.agent_id,
        "intent_digest": intent.digest(),
        "expected": scripted.expect,
        "kind": intent.intent_type,
        "tx_type": intent.tx_type if intent.intent_type == "transaction" else None,
        "stages": list(stages_of(intent)),
        "chain": intent.chain,
        "to": intent.to,
        "value": intent.value,
    }
    if outcome is None:
        row.update(outcome="missing", stage=None, code=None, reason="no outcome within the timeout")
    elif isinstance(outcome, IntentRejected):
        row.update(outcome="rejected", stage=outcome.stage, code=outcome.code, reason=outcome.reason)
    elif isinstance(outcome, IntentParked):
        row.update(
            outcome="awaiting",
            stage=Stage.APPROVAL,
            code=Code.AWAITING_APPROVAL,
            reason=f"{outcome.reason}; no decision within the timeout",
        )
    elif isinstance(outcome, SignedMessage):
        row.update(
            outcome="signed",
            stage=Stage.SIGNING,
            code=Code.SIGNED,
            reason=None,
            **{"from": outcome.from_},
            message_hash=outcome.message_hash,
            signature=outcome.signature,
            tee=outcome.tee,
            primary_type=outcome.primary_type,
            verifying_contract=outcome.verifying_contract,
        )
    elif isinstance(outcome, SignedTransaction):
        row.update(
            outcome=outcome.status,
            stage=Stage.SIGNING,
            code=outcome.status.upper(),
            reason=outcome.error,
            signed_tx=outcome.signed_tx,
            tx_hash=outcome.tx_hash,
            **{"from": outcome.from_},
            nonce=outcome.nonce,
            chain_id=outcome.chain_id,
            status=outcome.status,
            block_number=outcome.block_number,
            gas_used=outcome.gas_used,
            tee=outcome.tee,
            fee_wei=None if outcome.fee_wei is None else str(outcome.fee_wei),
            max_spend_wei=str(outcome.max_spend_wei),
        )
    else:  # a dead letter or an abandoned intent: what it says
        row.update(outcome=type(outcome).__name__, stage=None, code=None, reason=getattr(outcome, "reason", None))
    actual = row["outcome"] if row["outcome"] in ("mined", "failed", "missing", "signed") else row["code"]
    row["as_expected"] = actual == scripted.expect
    return row


async def _act_as_admin(
    settings: Settings,
    client: Client,
    batch: list[Any],
    timeout_s: float,
    start: dict[TopicPartition, int] | None,
    progress: Callable[[str], object],
) -> None:
    """Wait for the intents the script has an admin decide, and decide them as the script says
    (what `warden approvals approve ID` does)."""
    waiting = [(s, i) for s, i in batch if s.admin]
    if not waiting:
        return
    first = await wait_outcomes(settings, [i for _, i in waiting], timeout_s, start, final=False)
    for scripted, intent in waiting:
        parked = first.get(intent.intent_id)
        if not isinstance(parked, IntentParked):
            continue
        progress(f"{intent.intent_id} awaits approval ({parked.reason}); the admins say {scripted.admin}")
        admins = await admins_in_force(settings)
        if scripted.admin != "approve" or admins.threshold("approval") == 1:
            await client.decide(parked, scripted.admin, "demo: decided by the operator")
            continue
        # The quorum: this admin proposes, a second one signs, and the record goes out once two signed.
        now = utcnow()
        proposal = propose(human_decision(settings, parked, "approve", "demo: approved by two admins"), "approval", now)
        await publish_proposal(settings, proposal)
        progress(
            f"{settings.admin_id} proposes the approval ({proposal.proposal_id[:16]}): 1 of {admins.threshold('approval')}"
        )
        gathered = (await open_proposals(settings, admins, now))[proposal.proposal_id]
        await add_signature(settings, gathered, SECOND_ADMIN, now)
        progress(
            f"{SECOND_ADMIN} signs it too: {len(gathered.signers)} of {gathered.needed}, the approval is published"
        )


async def _allowlist_token(settings: Settings, client: Client, setup: dict[str, Any]) -> AgentPolicy:
    """What an admin does to let the agent sign the token's Permit: the next policy version, with
    the token's verifying contract on the EIP-712 allowlist; and a cap in US dollars, every asset
    priced by its feed."""
    current, token = setup["policy"], setup["token"]
    fields = current.model_dump(
        exclude={"version", "issued_at", "admin_key_id", "signature", "cosignatures", "schema_version"}
    )
    fields["eip712_domain_allowlist"] = (Eip712DomainRule(verifying_contract=token, chain_id=ANVIL_CHAIN_ID),)
    fields["usd_max_per_tx"] = USD_CAP
    fields["price_feeds"] = (
        PriceFeed(chain="anvil", asset="native", feed=setup["eth_feed"]),
        PriceFeed(chain="anvil", asset=token, feed=setup["wusd_feed"]),
    )
    policy = signed_policy(settings, version=current.version + 1, **fields)
    verdict = await client.publish_policy(policy)
    if verdict != AuditAction.POLICY_UPDATED:
        raise RuntimeError(f"the streams worker refused the demo's policy update ({verdict})")
    return policy


def render(report: dict[str, Any]) -> str:
    lines = [f"{'intent':44} {'outcome':9} {'stage':12} {'code / tx':28} detail"]
    for r in report["intents"]:
        mark = "ok " if r["as_expected"] else "!! "
        if r["outcome"] == "signed" and r["kind"] != "transaction":  # a transaction may still be "signed" too
            what = f"{r['primary_type']} for {r['verifying_contract']}" if r["kind"] == "typed_data" else "EIP-191"
            lines.append(
                f"{mark}{r['intent'][:41]:41} {r['outcome']:9} {r['stage']:12} {r['message_hash'][:26]}.. "
                f"{r['kind']} {what} signature {r['signature'][:18]}.. tee={r['tee']}"
            )
        elif r["outcome"] in ("mined", "failed", "sign_only"):
            fee = "?" if r["fee_wei"] is None else format_native_amount(int(r["fee_wei"]))
            detail = f"nonce {r['nonce']} block {r['block_number']} gas {r['gas_used']} fee {fee} tee={r['tee']}"
            lines.append(f"{mark}{r['intent'][:41]:41} {r['outcome']:9} {r['stage']:12} {r['tx_hash'][:26]}.. {detail}")
        else:
            lines.append(
                f"{mark}{r['intent'][:41]:41} {r['outcome']:9} {str(r['stage']):12} {str(r['code']):28} {r['reason']}"
            )
    scripted_ok = all(r["as_expected"] for r in report["intents"])
    verdict = "every outcome as expected" if scripted_ok else "SOME OUTCOMES DIFFER FROM THE SCRIPT"
    lines.append(
        f"\n{len(report['intents'])} intents, all outcomes in {report['seconds_to_all_outcomes']} s: {verdict}"
    )
    lines.append(demo_mcp.render(report["mcp_session"]))
    if report.get("http_session") is not None:
        lines.append(demo_http.render(report["http_session"]))
    if report.get("solana_session") is not None:
        lines.append(demo_solana.render(report["solana_session"]))
    if report.get("x402_solana_session") is not None:
        lines.append(demo_solana.render_x402(report["x402_solana_session"]))
    if report.get("bitcoin_session") is not None:
        lines.append(demo_bitcoin.render(report["bitcoin_session"]))
    receipt = report.get("receipt")
    if receipt is not None:
        lines.append(
            f"receipt of {receipt['intent']}: its {receipt['action']} event is leaf {receipt['index']} of "
            f"{receipt['origin']}, cosigned by {receipt['witness']}; checked offline with the log's and witness's keys"
            if receipt["ok"]
            else f"receipt of {receipt['intent']}: NOT CHECKED ({receipt['why']})"
        )
    return "\n".join(lines)


def verify_ledger(
    settings: Settings,
    progress: Callable[[str], object] = print,
    timeout_s: float = 30.0,
    since: dict[int, int] | None = None,
    witnesses: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """Wait until the ledger holds every audit event on the topic, then verify its chains the way
    `warden audit verify` does: the auditor's view of the same story. ``since`` (partition →
    offset of warden.audit.events): where the run began, on a stack that ran other things before;
    records the ledger did not believe are counted from there. ``witnesses``: the witness keys
    whose stored cosignatures must verify over the checkpoints stored now."""
    from ledger.keys import local_public_key
    from ledger.store import open_reader
    from ledger.tail import event_lag
    from ledger.verify import not_believed, verify

    store = open_reader(settings)
    try:
        # Caught up: no event of the topic missing from the ledger (`ledger.tail`). Offsets cannot
        # say it: a redelivered record whose events the ledger holds adds no row, so the last stored
        # offset trails the topic's end with nothing missing. The broker's reported end can trail
        # its log, so the ledger must also have stopped growing for a second; the tail is read then.
        deadline = time.monotonic() + timeout_s
        held, stable_since, caught_up = -1, time.monotonic(), False
        lag = event_lag(settings, store)
        while time.monotonic() < deadline:
            count = store.arrow("SELECT count() AS n FROM audit_log").column("n")[0].as_py()
            if count != held:
                held, stable_since = count, time.monotonic()
            elif time.monotonic() - stable_since >= 1.0:
                lag = event_lag(settings, store)
                if lag.lag == 0 and lag.exact:
                    caught_up = True
                    break
                stable_since = time.monotonic()  # read the tail again only once the ledger is still again
            time.sleep(0.2)
        report = verify(
            store, local_public_key(settings.home), log_name=settings.ledger.log_name, witnesses=witnesses
        ).to_dict()
        # No one but Warden's own writers wrote to this stack's topics: a record the ledger did
        # not believe is one a Warden process sent unsigned or signed with a key no one pins.
        report["records_not_believed"] = not_believed(store, since)
    finally:
        store.close()
    report["records_published"] = sum(lag.ends.values())
    report["events_in_ledger"] = held
    report["events_missing"] = lag.lag
    report["caught_up"] = caught_up  # False: the timeout ended the wait
    missing = f"{'' if lag.exact else 'at least '}{lag.lag} of the topic's events missing from the ledger"
    progress(
        f"ledger: {held} audit events appended from the {report['records_published']} audit records the broker "
        f"reported; {missing}"
        f"{'' if report['caught_up'] else f' after {timeout_s:g} s'}; "
        f"{report['records_not_believed']} records not believed (unsigned, signed by an unpinned key or "
        f"speaking as another service); verify {'OK' if report.get('ok') else 'FAILED'}"
    )
    return report


def check_receipt(
    settings: Settings,
    report: dict[str, Any],
    witness: Any,
    progress: Callable[[str], object] = print,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """The receipt of the first mined intent's newest outcome, fetched from the ledger's endpoint
    (what `warden txs show --proof` prints) once its checkpoint is cosigned, and checked the way an
    auditor does, offline, with the ledger's and the witness's keys alone (quorum 1)."""
    from ledger.keys import local_public_key
    from ledger.note import ED25519, NoteError, NoteKey
    from ledger.receipt import Policy, Receipt, check
    from sdk.records import ReceiptUnavailable, outcome_receipt

    mined = next(r for r in report["intents"] if r["outcome"] == "mined")
    policy = Policy(NoteKey(settings.ledger.log_name, ED25519, local_public_key(settings.home)), (witness,), quorum=1)
    deadline, why = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        try:
            asked = outcome_receipt(settings, mined["intent_id"], mined["agent_id"], mined["intent_digest"])
            receipt = Receipt.parse(asyncio.run(asked))
            checkpoint = check(receipt, policy)
        except (ReceiptUnavailable, NoteError) as exc:
            why = str(exc)  # not appended yet, or its checkpoint not cosigned yet
            time.sleep(0.5)
            continue
        found = {
            "ok": True,
            "intent": mined["intent"],
            "intent_id": mined["intent_id"],
            "action": receipt.event["action"],
            "origin": checkpoint.origin,
            "index": receipt.index,
            "tree_size": checkpoint.size,
            "witness": witness.name,
        }
        progress(
            f"receipt of {mined['intent']}: its {found['action']} event, leaf {receipt.index} of {checkpoint.origin} "
            f"(size {checkpoint.size}), cosigned by {witness.name}: checked offline"
        )
        return found
    return {"ok": False, "intent": mined["intent"], "why": why}
