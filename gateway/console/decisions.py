"""The admins' decisions page: each intent parked for a human decision and each open proposal under
the quorum, in full, with the exact bytes an admin's passkey signs to decide or cosign it.

The bytes are built here (a `HumanApproval`'s, a proposal's record's ``signing_bytes``) and shown
verbatim in a ``<pre>``; the page's script takes the challenge as the SHA-256 of exactly the text
shown and the console relays what the passkey signed, after checking the bytes it gets back are
these (`relay`). What is drawn comes from `sdk.pending`, the reads and the lines `warden approvals`
prints."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from gateway.console.layout import attr, esc
from runtime.proposals import Gathered
from schemas.outcomes import HumanApproval, IntentParked
from sdk.changes import InForce
from sdk.moves import Move, headline, moves_of
from sdk.pending import change_lines, proposal_row, solana_lines

DECISIONS = ("approve", "deny")
# A record's signing bytes may start with a domain and a zero byte (``warden.admins\x00``), which
# HTML cannot carry as text: the page shows it as U+2400 (SYMBOL FOR NULL), and the page's script
# and the relay read it back as the zero byte. A record holding U+2400 itself then reads back as
# other bytes, whose signature the relay refuses: never as a record nobody was shown.
ZERO_SHOWN = "\u2400"


def shown_text(message: bytes) -> str:
    """``message`` as the page shows it (UTF-8; the zero byte as `ZERO_SHOWN`)."""
    return message.decode().replace("\x00", ZERO_SHOWN)


def shown_bytes(text: str) -> bytes:
    """The bytes a page that shows ``text`` signs (`shown_text` read back)."""
    return text.replace(ZERO_SHOWN, "\x00").encode()


def approval_of(parked: IntentParked, decision: str, admin_id: str, now: datetime) -> HumanApproval:
    """The record ``admin_id`` signs to ``decision`` ``parked``: bound to the intent's digest."""
    return HumanApproval(
        intent_id=parked.intent_id,
        agent_id=parked.agent_id,
        intent_digest=parked.intent_digest,
        decision=decision,
        decided_at=now,
        admin_key_id=admin_id,
    )


def _left(expires_at: datetime, now: datetime) -> str:
    seconds = max(0, int((expires_at - now).total_seconds()))
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min {seconds % 60:02d} s"


def _facts(parked: IntentParked) -> str:
    """What each stage measured (the window used, the simulation's balance changes, the limit)."""
    rows = "".join(
        f"<tr><td>{esc(v.stage)}</td><td>{esc(v.code)}</td><td>{esc(v.reason)}</td>"
        f"<td><code>{esc(json.dumps(v.facts, sort_keys=True, default=str))}</code></td></tr>"
        for v in parked.verdicts
    )
    return (
        f"<table class=facts><tr><th>stage</th><th>code</th><th>reason</th><th>what it measured</th></tr>{rows}</table>"
        if rows
        else ""
    )


def signing_block(kind: str, label: str, message: bytes, fields: dict[str, str]) -> str:
    """The bytes to sign, shown verbatim, and the button that asks the passkey to sign them."""
    data = "".join(f' data-{attr(name)}="{attr(value)}"' for name, value in fields.items())
    return (
        f'<div class="sign {attr(kind)}"><p>The exact bytes your passkey signs to {esc(label)} '
        "(its challenge is their SHA-256, computed by this page"
        + (f"; {ZERO_SHOWN} is a zero byte" if b"\x00" in message else "")
        + "):</p>"
        f'<pre class="bytes">{esc(shown_text(message))}</pre>'
        f'<button class="sign-button" data-kind="{attr(kind)}"{data}>{esc(label)} with my passkey</button>'
        '<p class="result"></p></div>'
    )


def _approvals_open(parked: IntentParked, proposals: Sequence[Gathered]) -> list[Gathered]:
    """The open proposals (the quorum for ``approval`` is more than one admin) that approve
    ``parked`` as it waits: the same intent, the same digest."""
    return [
        g
        for g in proposals
        if isinstance(g.record, HumanApproval)
        and g.record.decision == "approve"
        and (g.record.intent_id, g.record.intent_digest) == (parked.intent_id, parked.intent_digest)
    ]


def _proposed(gathered: Gathered) -> str:
    """Where an approval proposed for a parked intent stands, and where it is cosigned."""
    signers = ", ".join(gathered.signers) or "none"
    return (
        f'<p class="proposed">Approval proposed by {esc(gathered.record.admin_key_id)}: '
        f"{len(gathered.signers)} of {esc(gathered.needed)} signatures ({esc(signers)}); "
        f'<a href="#proposal-{attr(gathered.proposal_id)}">cosign it under the proposals</a>.</p>'
    )


def _moves_rows(moves: Sequence[Move]) -> str:
    """What the intent moves, a row each: the amount in the asset's symbol and decimals, to whom,
    exactly in base units, and in US dollars where a feed prices it (or why not)."""
    return "".join(
        f'<tr class="move {attr(m.kind)}"><th>{esc(m.kind.replace("_", " "))}</th><td>'
        + (f'<strong class="amount">{esc(m.amount)}</strong>' if m.amount else "")
        + ("" if m.to is None else f' to <code class="to">{esc(m.to)}</code>')
        + ("" if not m.units else f"<br><small>exactly {esc(m.units)}</small>")
        + ("" if m.usd is None else f'<br><small class="usd">{esc(m.usd)}</small>')
        + "</td></tr>"
        for m in moves
    )


def parked_section(
    parked: IntentParked,
    admin_id: str,
    now: datetime,
    proposals: Sequence[Gathered] = (),
    moves: Sequence[Move] | None = None,
) -> str:
    """One parked intent, headed by what it moves (``moves``: `sdk.moves`; None: read here, by no
    policy and unpriced), in full, with the bytes that approve it and those that deny it; where an
    approval of it is already proposed (a quorum of more than one admin), that proposal instead of a
    second approval: the admins cosign the one proposed."""
    intent = parked.intent
    moved = list(moves_of(parked, None) if moves is None else moves)
    rows = [
        ("agent", parked.agent_id),
        ("intent", parked.intent_id),
        ("kind", intent.intent_type),
        ("chain", intent.chain),
        ("parked because", parked.reason),
        ("time left", _left(parked.expires_at, now)),
        ("intent digest", parked.intent_digest),
    ]
    if intent.solana_transaction is not None:  # set exactly for intent_type solana_transaction
        rows.append(("instructions", "\n".join(solana_lines(intent.solana_transaction))))
    table = _moves_rows(moved) + "".join(
        f"<tr><th>{esc(name)}</th><td>{esc(value).replace(chr(10), '<br>')}</td></tr>" for name, value in rows
    )
    proposed = _approvals_open(parked, proposals)
    blocks = "".join(
        signing_block(
            decision,
            decision,
            approval_of(parked, decision, admin_id, now).signing_bytes(),
            {"intent": parked.intent_id},
        )
        for decision in DECISIONS
        if not (decision == "approve" and proposed)
    )
    return (
        f'<section class="parked" id="intent-{attr(parked.intent_id)}"><h3>{esc(parked.agent_id)}: '
        f'<span class="headline">{esc(headline(moved))}</span></h3>'
        f'<table class="intent">{table}</table>{_facts(parked)}{"".join(_proposed(g) for g in proposed)}{blocks}'
        "</section>"
    )


def _change_html(lines: list[str]) -> str:
    return "\n".join(f'<span class="flag">{esc(line)}</span>' if "KEY CHANGED" in line else esc(line) for line in lines)


def proposal_section(gathered: Gathered, in_force: InForce, admin_id: str) -> str:
    row = proposal_row(gathered, in_force)
    signers = ", ".join(row["signed_by"]) or "none"
    flagged = any("KEY CHANGED" in line for line in change_lines(row["change"]))
    head = (
        f'<section class="proposal" id="proposal-{attr(row["proposal_id"])}"><h3>{esc(row["what"])}</h3>'
        + ('<p class="flag">KEY CHANGED: this proposal replaces an admin\'s key</p>' if flagged else "")
        + f"<p>proposed by {esc(row['proposed_by'])}; {len(row['signed_by'])} of {esc(row['needed'])} signatures "
        f"({esc(signers)}); expires {esc(row['expires_at'])}; digest <code>{esc(row['digest'])}</code></p>"
        f'<pre class="change">{_change_html(change_lines(row["change"]))}</pre>'
        + "".join(
            f"<p class=\"flag\">Waits for {esc(admin)}'s own signature: it changes {esc(admin)}'s key, and no "
            f"service takes it until {esc(admin)} signs it with the key in force.</p>"
            for admin in row.get("own_signatures_missing", ())
        )
    )
    if admin_id in gathered.signatures:
        return head + "<p>You have signed this proposal.</p></section>"
    block = signing_block("cosign", "cosign", gathered.record.signing_bytes(), {"proposal": gathered.proposal_id})
    return head + block + "</section>"


def decisions_body(
    waiting: list[IntentParked],
    proposals: list[Gathered],
    in_force: InForce,
    admin_id: str,
    now: datetime,
    moves: Mapping[str, Sequence[Move]] | None = None,
) -> str:
    """The page: each parked intent (``moves``: what each moves, by intent id,
    `sdk.moves.parked_moves`) and each open proposal."""
    moved = moves or {}
    parked = "".join(parked_section(p, admin_id, now, proposals, moved.get(p.intent_id)) for p in waiting)
    parked = parked or "<p>No intent is waiting.</p>"
    open_ = "".join(proposal_section(g, in_force, admin_id) for g in proposals) or "<p>No proposal is open.</p>"
    return f"<h2>Intents parked for a decision</h2>{parked}<h2>Proposals under the quorum</h2>{open_}"
