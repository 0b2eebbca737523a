"""The analysts' pages: each agent's transactions and where each stands (``/transactions``), spend
per agent per day against the daily limits of its policy in force (``/spend``), and refusals by
code over time (``/refusals``). They read `gateway.console.data.LedgerSource` and change nothing;
the transactions page offers, beside each sign-only EVM or Bitcoin transaction, the form that
builds its cancellation (`gateway.console.cancellations`, whose routes the server mounts).

The console's server mounts them with `add_routes` and wraps them in its session check and
headers; a handler reads who is logged in and the session's CSRF token from the request
(``request["who"]``, ``request["csrf"]``) when the server put them there."""

from __future__ import annotations

from aiohttp import web

from gateway.console.cancellations import cancel_form, offered
from gateway.console.charts import Series, bar_chart, legend
from gateway.console.data import AgentSpend, LedgerSource, Refusals, Transaction
from gateway.console.layout import attr, esc, plain
from gateway.console.pages import SOURCE, html, keep_source, reading
from runtime.registry import REGISTRY
from schemas.fields import format_native_amount


def add_routes(app: web.Application, source: LedgerSource) -> None:
    """``GET /transactions``, ``/spend`` and ``/refusals``, reading ``source``."""
    keep_source(app, source)
    app.router.add_get("/transactions", transactions_page)
    app.router.add_get("/spend", spend_page)
    app.router.add_get("/refusals", refusals_page)


def _agent_filter(path: str, agents: list[str], chosen: str | None) -> str:
    options = "".join(
        f'<option value="{attr(a)}"{" selected" if a == chosen else ""}>{plain(a)}</option>' for a in agents
    )
    return (
        f'<form class="filter" method="get" action="{attr(path)}"><label>Agent <select name="agent">'
        f'<option value="">every agent</option>{options}</select></label><button>Show</button></form>'
    )


def _chosen(request: web.Request) -> str | None:
    return request.query.get("agent") or None


@reading("Transactions")
async def transactions_page(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    agent = _chosen(request)
    rows = await source.transactions(agent)
    body = _agent_filter("/transactions", await source.agents(), agent)
    if not rows:
        who = "any agent" if agent is None else f"agent {agent}"
        return html(request, "Transactions", body + f"<p>The ledger holds no intent of {esc(who)}.</p>")
    table = transactions_table(rows, request.get("csrf", ""))
    return html(request, "Transactions", body + table, scripts=("console.js",))


def transactions_table(rows: list[Transaction], csrf: str = "") -> str:
    """The intents, newest first: where each stands, a refusal's stage, code and reason, and what
    it asked to move (exact wei); with the session's ``csrf`` token, the form that cancels each
    sign-only EVM or Bitcoin transaction."""
    head = (
        "<tr><th>agent</th><th>intent</th><th>status</th><th>stage</th><th>code</th><th>chain</th>"
        "<th>to</th><th>value</th><th>transaction</th><th>last event (UTC)</th></tr>"
    )
    return f'<table class="transactions">{head}{"".join(_transaction_row(t, csrf) for t in rows)}</table>'


def _transaction_row(t: Transaction, csrf: str) -> str:
    status = t.status + (", final" if t.final else "")
    css = "flag" if t.status in ("refused", "finality violated") else ("ok" if t.final else "")
    block = "" if t.block_number is None else f" (block {t.block_number})"
    cells = (
        esc(t.agent_id),
        f'<code>{esc(t.intent_id)}</code><br><small title="intent digest">{esc(t.intent_digest[:16])}</small>',
        f'<span class="status {css}" data-status="{attr(t.status)}">{esc(status)}</span>'
        + (f"<br><small>{esc(t.reason)}</small>" if t.reason and t.status == "refused" else "")
        + (cancel_form(t, csrf) if csrf and offered(t) else ""),
        esc(t.stage) if t.status == "refused" else "",
        f"<code>{esc(t.code)}</code>" if t.status == "refused" else "",
        esc(t.chain),
        f"<code>{esc(t.to)}</code>",
        esc(_value(t)),
        f"<code>{esc(t.tx_hash)}</code>{esc(block)}",
        esc(t.last_at.strftime("%Y-%m-%d %H:%M:%S")),
    )
    classes = ("agent", "intent", "status", "stage", "code", "chain", "to", "value", "hash", "when")
    return "<tr>" + "".join(f'<td class="{c}">{cell}</td>' for c, cell in zip(classes, cells, strict=True)) + "</tr>"


def _value(t: Transaction) -> str:
    """The value asked, exactly in wei, and in the chain's native unit when the chain is known."""
    if t.value_wei is None:
        return ""
    chain = REGISTRY.all().get(t.chain)
    return f"{t.value_wei} wei" + ("" if chain is None else f" ({format_native_amount(t.value_wei)} {chain.currency})")


@reading("Spend")
async def spend_page(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    agent = _chosen(request)
    agents = await source.spend(agent)
    body = _agent_filter("/spend", await source.agents(), agent)
    body += (
        "<p>What the signer signed per UTC day, counted as the rolling 24 h windows count it when it signs "
        "(an EVM transaction's value and worst-case fee in wei, each token it moves and its USD price where a USD "
        "limit is set; a Solana transaction's SOL in lamports, fee included, and each mint), against the daily "
        "limits of each agent's policy in force. The limits are rolling 24 h windows; a day's bar is that "
        "calendar day's spend.</p>"
    )
    if not agents:
        return html(request, "Spend", body + "<p>The ledger holds no intent of any agent.</p>")
    return html(request, "Spend", body + "".join(spend_section(a) for a in agents))


def spend_section(agent: AgentSpend) -> str:
    """One agent: a chart and a table per asset."""
    version = "no policy in force found" if agent.policy_version is None else f"policy v{agent.policy_version}"
    parts = [f'<section class="agent"><h2>{esc(agent.agent_id)} <small>{esc(version)}</small></h2>']
    if not agent.assets:
        parts.append("<p>No spend and no daily limit.</p>")
    for spent in agent.assets:
        asset = spent.asset
        limit = "no daily limit" if asset.daily_limit is None else f"daily limit {asset.amount(asset.daily_limit)}"
        parts.append(f"<h3>{esc(asset.name)} <small>{esc(limit)}</small></h3>")
        days = agent.days
        parts.append(
            bar_chart(
                f"{agent.agent_id}: {asset.name} spent per day",
                days,
                [Series(asset.name, spent.per_day)],
                asset.amount,
                asset.daily_limit,
            )
        )
        rows = "".join(
            f"<tr><td>{esc(day.isoformat())}</td><td>{esc(asset.amount(units))}</td>"
            + (
                ""
                if asset.daily_limit is None
                else f'<td class="{"flag" if units > asset.daily_limit else ""}">'
                f"{esc('over the limit' if units > asset.daily_limit else 'within')}</td>"
            )
            + "</tr>"
            for day, units in zip(days, spent.per_day, strict=True)
            if units
        )
        against = "" if asset.daily_limit is None else "<th>against the limit</th>"
        if rows:
            parts.append(f'<table class="spend"><tr><th>day</th><th>spent</th>{against}</tr>{rows}</table>')
    parts.append("</section>")
    return "".join(parts)


@reading("Refusals")
async def refusals_page(request: web.Request) -> web.Response:
    found = await request.app[SOURCE].refusals()
    return html(request, "Refusals", refusals_body(found))


def refusals_body(found: Refusals) -> str:
    """The refusals per day stacked by code, and the same counts as a table."""
    if not found.total:
        return f"<p>No refusal in the {len(found.days)} days to {esc(found.days[-1].isoformat())}.</p>"
    series = [Series(f"{code} ({stage})", per_day) for (code, stage), per_day in found.counts.items()]
    chart = bar_chart(
        f"refusals per day by code, {found.days[0].isoformat()} to {found.days[-1].isoformat()}",
        found.days,
        series,
        lambda n: f"{n} refusal(s)",
    )
    rows = "".join(
        f"<tr><td>{esc(day.isoformat())}</td><td><code>{esc(code)}</code></td><td>{esc(stage)}</td>"
        f"<td>{per_day[i]}</td></tr>"
        for i, day in enumerate(found.days)
        for (code, stage), per_day in found.counts.items()
        if per_day[i]
    )
    return (
        f"<p>{found.total} refusal(s) in the {len(found.days)} days to {esc(found.days[-1].isoformat())} (UTC), "
        "by the streams worker at its stages and by the signer at signing.</p>"
        + chart
        + legend(series)
        + f'<table class="refusals"><tr><th>day</th><th>code</th><th>stage</th><th>refusals</th></tr>{rows}</table>'
    )
