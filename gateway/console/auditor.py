"""The auditors' pages: the ledger's verification state as `warden audit verify` reports it, with
each chain's newest checkpoints and their witnesses' cosignatures (``/ledger``), and a receipt
checker (``/ledger/receipt``): a receipt pasted in a form, checked as `warden audit
check-receipt` checks it, under the log's and the witnesses' keys the console pins, each check's
result said plainly. They read `gateway.console.data.LedgerSource` and change nothing.

The console's server mounts them with `add_routes` and wraps them in its session check, its
CSRF check and its headers; the form carries the session's token (``request["csrf"]``) back."""

from __future__ import annotations

from aiohttp import web

from gateway.console.data import CheckpointRow, LedgerSource, LedgerState, ReceiptCheck
from gateway.console.layout import attr, esc, plain
from gateway.console.pages import SOURCE, html, keep_source, reading


def add_routes(app: web.Application, source: LedgerSource) -> None:
    """``GET /ledger``, ``GET`` and ``POST /ledger/receipt``, reading ``source``."""
    keep_source(app, source)
    app.router.add_get("/ledger", ledger_page)
    app.router.add_get("/ledger/receipt", receipt_form)
    app.router.add_post("/ledger/receipt", receipt_checked)


@reading("Ledger")
async def ledger_page(request: web.Request) -> web.Response:
    state = await request.app[SOURCE].ledger()
    return html(request, "Ledger", ledger_body(state, request.app[SOURCE]))


def ledger_body(state: LedgerState, source: LedgerSource) -> str:
    """The verification's verdict, its problems and notes, each chain, and the checkpoints."""
    report = state.report
    keys = (
        f"<p>Checked under the log's key <code>{esc(source.policy.log.vkey)}</code>"
        + "".join(f", witness <code>{esc(w.vkey)}</code>" for w in source.policy.witnesses)
        + ".</p>"
    )
    if report.ok:
        verdict = (
            f'<p class="verdict ok" data-ok="true">Verified: {len(report.chains)} chain(s), {report.rows} rows and '
            f"{sum(c.checkpoints for c in report.chains)} signed checkpoint(s), in {report.seconds:.2f} s.</p>"
        )
    else:
        items = "".join(f"<li>{esc(p.describe())}</li>" for p in report.problems)
        verdict = (
            f'<p class="verdict flag" data-ok="false">FAILED: {len(report.problems)} problem(s); the first bad row '
            f"of each chain:</p><ul>{items}</ul>"
        )
    return keys + verdict + _notes(state) + _chains(state) + _checkpoints(state.checkpoints)


def _notes(state: LedgerState) -> str:
    """What verify says beside its verdict: a changed broker, records not believed, lines unchecked."""
    notes = [
        f"At {change['ts']} the ledger's broker changed ({change.get('previous_cluster_id')} → "
        f"{change.get('cluster_id')}); records the previous broker held past offsets "
        f"{change.get('previous_next_offsets')} were never appended."
        for change in state.source_changes
    ]
    if state.not_believed:
        notes.append(
            f"{state.not_believed} record(s) on warden.audit.events were not believed (unsigned, signed by a key the "
            "ledger does not pin, or speaking as another service); the ledger keeps each as evidence."
        )
    if state.report.unchecked_cosignatures:
        notes.append(
            f"{state.report.unchecked_cosignatures} stored cosignature line(s) are by witnesses not pinned here "
            "and were not checked."
        )
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _chains(state: LedgerState) -> str:
    report = state.report
    rows = "".join(
        f"<tr><td>{c.chain}</td><td>{c.rows}</td><td>{c.checkpoints}</td>"
        f"<td>{esc('' if c.last_checkpoint_seq is None else c.last_checkpoint_seq)}</td><td>{c.uncovered_rows}</td>"
        f"<td>{esc(_cosigned(state, c.chain))}</td></tr>"
        for c in report.chains
    )
    return (
        '<h2>Chains</h2><table class="chains"><tr><th>chain</th><th>rows</th><th>checkpoints</th>'
        "<th>last checkpoint (seq)</th><th>rows not yet under a checkpoint</th><th>cosigned by pinned witnesses</th>"
        f"</tr>{rows}</table>"
    )


def _cosigned(state: LedgerState, chain: int) -> str:
    held = state.report.cosigned.get(chain, {})
    return (
        ", ".join(
            f"{name}: {h.checkpoints} checkpoint(s)" + ("" if h.last_seq is None else f" to seq {h.last_seq}")
            for name, h in held.items()
        )
        or "no witness pinned"
    )


def _checkpoints(rows: list[CheckpointRow]) -> str:
    if not rows:
        return "<h2>Checkpoints</h2><p>No checkpoint is stored yet.</p>"
    body = "".join(_checkpoint_row(row) for row in rows)
    return (
        '<h2>Newest checkpoints</h2><table class="checkpoints"><tr><th>chain</th><th>rows</th>'
        f"<th>Merkle root</th><th>signed (UTC)</th><th>witnesses' cosignatures</th></tr>{body}</table>"
    )


def _checkpoint_row(row: CheckpointRow) -> str:
    cp = row.checkpoint
    cosigned = (
        "<ul>"
        + "".join(
            f'<li class="{"ok" if c.problem is None else "flag"}">{esc(c.signer)}: '
            f"{esc('verifies' if c.problem is None else f'does not verify: {c.problem}')}</li>"
            if c.pinned
            else f"<li>{esc(c.signer)}: not pinned here, not checked</li>"
            for c in row.cosignatures
        )
        + "</ul>"
        if row.cosignatures
        else "none"
    )
    return (
        f"<tr><td>{cp.chain}</td><td>{cp.tree_size}</td><td><code>{esc(cp.merkle_root)}</code></td>"
        f"<td>{esc(cp.ts.strftime('%Y-%m-%d %H:%M:%S'))}</td><td>{cosigned}</td></tr>"
    )


_EXPECTED = (("intent_id", "intent id"), ("agent_id", "agent"), ("intent_digest", "intent digest"))


def _form(csrf: str, text: str = "", expected: dict[str, str] | None = None) -> str:
    named = "".join(
        f'<label>{esc(label)} <input name="{name}" value="{attr((expected or {}).get(name, ""))}" size="40"></label>'
        for name, label in _EXPECTED
    )
    return (
        '<form class="receipt" method="post" action="/ledger/receipt">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
        '<label for="receipt">A receipt (c2sp.org/tlog-proof, as <code>warden audit receipt</code> or '
        "<code>warden txs show --proof</code> print it)</label>"
        f'<textarea id="receipt" name="receipt" rows="14" spellcheck="false">{plain(text)}</textarea>'
        "<p>Optionally, the intent it must be about (all three, as its signed outcome names them):</p>"
        f'<div class="expected">{named}</div><button>Check</button></form>'
    )


async def receipt_form(request: web.Request) -> web.Response:
    return html(request, "Check a receipt", _form(request.get("csrf", "")))


@reading("Check a receipt")
async def receipt_checked(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {name: form.get(name) for name in ("receipt", *(n for n, _ in _EXPECTED))}
    text = {name: value.strip() if isinstance(value, str) else "" for name, value in fields.items()}
    again = _form(request.get("csrf", ""), text["receipt"], text)
    if not text["receipt"]:
        return html(request, "Check a receipt", f'<p class="flag">Paste a receipt to check.</p>{again}', 400)
    named = tuple(text[name] for name, _ in _EXPECTED)
    if any(named) and not all(named):
        return html(
            request,
            "Check a receipt",
            '<p class="flag">Name the intent whole: its intent id, agent and intent digest together (or none).</p>'
            + again,
            400,
        )
    expected = (named[0], named[1], named[2]) if all(named) else None
    checked = request.app[SOURCE].check_receipt(text["receipt"], expected)
    return html(request, "Check a receipt", receipt_body(checked) + again)


def receipt_body(checked: ReceiptCheck) -> str:
    """Each check and its result, then the verdict and what the receipt's event is about."""
    if checked.unreadable is not None:
        return f'<p class="verdict flag" data-ok="false">Not a receipt: {esc(checked.unreadable)}</p>'
    items = "".join(
        f'<li class="{"ok" if f.problem is None else "flag"}" data-ok="{"true" if f.problem is None else "false"}">'
        f"{esc(f.check)}: {esc('holds' if f.problem is None else f'FAILS: {f.problem}')}</li>"
        for f in checked.findings
    )
    event = checked.event or {}
    about = (
        ""
        if checked.about is None
        else f", about intent {checked.about[0]} of agent {checked.about[1]} (digest {checked.about[2]})"
    )
    what = f"event {event.get('event_id')} ({event.get('action')}{about})"
    verdict = (
        f'<p class="verdict ok" data-ok="true">The receipt holds: {esc(what)} is in the log.</p>'
        if checked.ok
        else f'<p class="verdict flag" data-ok="false">The receipt does not hold for {esc(what)}.</p>'
    )
    return f'{verdict}<ul class="findings">{items}</ul>'
