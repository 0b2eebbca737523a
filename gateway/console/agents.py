"""The admins' agents page: every agent with its policy in force, its version history as the
ledger recorded the streams worker putting each version in force, a diff between any two of them,
and the form that makes an agent's next policy.

The form's options are `warden agents create|update`'s (`sdk.policies`), so the console makes
exactly the policy the command line would; the console builds it unsigned and shows its signing
bytes, which the admin's passkey signs on the page (`gateway.console.decisions.signing_block`), and relays
it (`gateway.console.relay.relay_policy`). Everything here shapes what it is given and does no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.console.data import PolicyVersion
from gateway.console.layout import attr, esc, plain
from schemas.policy import AgentPolicy
from sdk.changes import fields_change
from sdk.pending import change_lines
from sdk.policies import OPTIONS, PolicyInvalid, policy_fields

SWITCHES = ("require_simulation", "intents_api")
# The form's labels, in the order it shows them, each an option of `sdk.policies.OPTIONS`.
LABELS = {
    "chains": "chains (comma-separated; empty: any)",
    "allowlist": "allowlist: recipient addresses (comma-separated; empty: any)",
    "max_value": 'per-transaction cap, native unit, or "none"',
    "daily_limit": 'rolling 24 h limit, native unit, or "none"',
    "max_fee_per_gas": 'fee ceiling per unit of gas, wei, or "none"',
    "approval_threshold": 'value above which an admin must approve, native unit, or "none"',
    "approval_timeout": "seconds an intent waits for an admin",
    "sender": "the agent's EVM address for simulation (empty: none)",
    "require_simulation": "require simulation",
    "intents_api": "the Intents API",
}


def _text(value: Any) -> str:
    """A policy value as the page shows it: none for None, a list comma-separated (empty: any)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) if not isinstance(v, (dict, str)) else _item(v) for v in value) or "any"
    return str(value)


def _item(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def in_force_rows(policy: AgentPolicy) -> list[tuple[str, str]]:
    """What ``policy`` allows, one row a rule: chains, allowlist, caps, daily limits per asset and
    in USD, approvals, its version and who signed it."""
    rows = [
        ("version", f"v{policy.version}, issued {policy.issued_at.isoformat()}"),
        ("signed by", ", ".join([policy.admin_key_id, *(c.admin_key_id for c in policy.cosignatures)])),
        ("agent key", policy.agent_public_key),
        ("chains", _text(policy.tx_allowed_chains)),
        ("allowlist", _text(policy.tx_to_allowlist)),
        ("per-transaction cap (native)", _text(policy.tx_max_value_eth)),
        ("daily limit (native)", _text(policy.tx_daily_limit_eth)),
        ("fee ceiling per gas (wei)", _text(policy.tx_max_fee_per_gas)),
        ("per-transaction cap (USD)", _text(policy.usd_max_per_tx)),
        ("daily limit (USD)", _text(policy.usd_daily_limit)),
    ]
    rows += [
        (
            f"asset {a.label} on {a.chain}",
            f"per transaction {_text(a.max_per_tx)}, daily {_text(a.daily_limit)}, "
            f"approval above {_text(a.approval_threshold)}",
        )
        for a in policy.asset_limits
    ]
    if policy.solana is not None:
        rows.append(
            (
                "Solana",
                f"per transaction {_text(policy.solana.max_lamports_per_tx)} lamports, daily "
                f"{_text(policy.solana.daily_limit_lamports)} lamports",
            )
        )
    rows += [
        ("approval above (native)", _text(policy.approval_threshold_eth)),
        ("approval wait", f"{policy.approval_timeout_s} s"),
        ("require simulation", _text(policy.require_simulation)),
    ]
    return rows


def _table(rows: Sequence[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


def history_table(versions: Sequence[PolicyVersion], in_force: int | None) -> str:
    """Each version, newest first: when it was put in force, who proposed it, whose signatures made
    its quorum; the one in force marked."""
    if not versions:
        return "<p>The ledger holds no version of this agent's policy yet.</p>"
    head = "<tr><th>version</th><th>in force since (UTC)</th><th>proposed by</th><th>signed by</th></tr>"
    rows = "".join(
        f'<tr class="version"><td>v{v.version}{" (in force)" if v.version == in_force else ""}</td>'
        f"<td>{esc(v.at.isoformat())}</td><td>{esc(v.proposed_by)}</td>"
        f"<td>{esc(', '.join(v.approved_by) or v.proposed_by)}</td></tr>"
        for v in reversed(versions)
    )
    return f'<table class="history">{head}{rows}</table>'


@dataclass(frozen=True)
class Diff:
    """What changed from version ``old`` to version ``new`` of one agent's policy, field by field."""

    agent_id: str
    old: int
    new: int
    fields: list[dict[str, Any]]


def version_diff(versions: Sequence[PolicyVersion], old: int, new: int) -> Diff | None:
    """The fields that differ between versions ``old`` and ``new`` (either order), old and new;
    None when the ledger holds neither of them."""
    by = {v.version: v for v in versions}
    if old not in by or new not in by:
        return None
    return Diff(by[new].agent_id, old, new, fields_change(by[old].fields, by[new].fields))


def diff_html(diff: Diff) -> str:
    """The diff as `warden approvals show` prints a policy's change: one line a field."""
    lines = change_lines(
        {
            "kind": "policy",
            "agent_id": diff.agent_id,
            "version": {"old": diff.old, "new": diff.new},
            "fields": diff.fields,
        }
    )
    rows = "".join(
        f"<tr><td>{esc(row['field'])}</td><td>{esc(_text(row['old']))}</td><td>{esc(_text(row['new']))}</td></tr>"
        for row in diff.fields
    )
    table = (
        f'<table class="diff"><tr><th>field</th><th>v{diff.old}</th><th>v{diff.new}</th></tr>{rows}</table>'
        if rows
        else f"<p>v{diff.old} and v{diff.new} allow the same.</p>"
    )
    return f'<section id="diff"><h3>{esc(diff.agent_id)}: v{diff.old} against v{diff.new}</h3>{table}<pre class="change">{esc(chr(10).join(lines))}</pre></section>'


def diff_form(agent_id: str, versions: Sequence[PolicyVersion], chosen: tuple[int, int] | None) -> str:
    """Two versions to compare, chosen on the page (a GET: it changes nothing)."""
    if len(versions) < 2:
        return ""

    def select(name: str, picked: int) -> str:
        options = "".join(
            f'<option value="{v.version}"{" selected" if v.version == picked else ""}>v{v.version}</option>'
            for v in versions
        )
        return f'<select name="{name}">{options}</select>'

    old, new = chosen or (versions[-2].version, versions[-1].version)
    return (
        f'<form class="diff-form" method="get" action="/agents"><input type="hidden" name="agent" value="{attr(agent_id)}">'
        f"<label>compare {select('from', old)}</label> <label>with {select('to', new)}</label>"
        "<button>Show the differences</button></form>"
    )


def agent_section(
    agent_id: str,
    policy: AgentPolicy | None,
    versions: Sequence[PolicyVersion],
    chosen: tuple[int, int] | None = None,
) -> str:
    """One agent: its policy in force, its versions, the diff chosen, and a link to change it."""
    in_force = _table(in_force_rows(policy)) if policy is not None else "<p>No policy in force.</p>"
    diff = version_diff(versions, *chosen) if chosen is not None else None
    return (
        f'<section class="agent" id="agent-{attr(agent_id)}"><h2>{esc(agent_id)}</h2>'
        f'<p><a href="/agents/edit?agent={attr(agent_id)}">Change this policy</a></p>'
        f"<h3>Policy in force</h3>{in_force}<h3>Versions</h3>"
        f"{history_table(versions, None if policy is None else policy.version)}"
        f"{diff_form(agent_id, versions, chosen)}{diff_html(diff) if diff is not None else ''}</section>"
    )


def agents_body(
    policies: Mapping[str, AgentPolicy | None],
    history: Mapping[str, Sequence[PolicyVersion]],
    chosen: tuple[str, int, int] | None = None,
) -> str:
    """Every agent of ``policies`` or ``history``, and the link to create one."""
    agents = sorted(set(policies) | set(history))
    sections = "".join(
        agent_section(
            a,
            policies.get(a),
            history.get(a, ()),
            chosen[1:] if chosen is not None and chosen[0] == a else None,
        )
        for a in agents
    )
    return '<p><a href="/agents/edit">Create an agent</a></p>' + (sections or "<p>No agent has a policy yet.</p>")


# -- the form --------------------------------------------------------------------------------------


def form_values(policy: AgentPolicy | None) -> dict[str, str]:
    """The form's fields as the policy in force sets them (none: a policy's defaults), so that
    sending the form unchanged makes the same rules (a new agent's: those of `warden agents
    create` given no option)."""

    def value(name: str) -> Any:
        return AgentPolicy.model_fields[name].default if policy is None else getattr(policy, name)

    values = {option: _text(value(name)) for option, name in OPTIONS.items()}
    values["chains"] = ",".join(value("tx_allowed_chains"))
    values["allowlist"] = ",".join(value("tx_to_allowlist"))
    values["sender"] = value("sender_address") or ""
    return values


def policy_form(agent_id: str | None, values: Mapping[str, str], csrf: str) -> str:
    """The form that makes an agent's next policy (``agent_id`` None: a new agent's first), its
    fields ``values``. The page's script sends it and shows what is wrong, if anything, under it."""
    agent = (
        f'<input type="hidden" name="agent" value="{attr(agent_id)}"><p>agent <strong>{esc(agent_id)}</strong></p>'
        if agent_id is not None
        else '<input type="hidden" name="create" value="1">'
        f'<label>agent id <input name="agent" value="{attr(values.get("agent", ""))}" required></label>'
    )
    key_label = "the agent's Ed25519 public key, 0x + 64 hex digits" + (
        " (empty: the key in force)" if agent_id is not None else ""
    )
    fields = []
    for option, label in LABELS.items():
        value = values.get(option, "")
        if option in SWITCHES:
            choices = "".join(
                f'<option value="{c}"{" selected" if value == c else ""}>{c}</option>' for c in ("off", "on")
            )
            fields.append(f'<label>{esc(label)} <select name="{option}">{choices}</select></label>')
        else:
            fields.append(f'<label>{esc(label)} <input name="{option}" value="{attr(value)}"></label>')
    return (
        '<form class="policy draft" method="post" action="/agents/draft">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}">{agent}'
        f'<label>{esc(key_label)} <input name="public_key" value="{attr(values.get("public_key", ""))}"></label>'
        + "".join(fields)
        + "<label>further policy fields, one JSON object (asset_limits, usd_daily_limit, contract_calls, ...) "
        f'<textarea name="fields">{plain(values.get("fields", ""))}</textarea></label>'
        '<button>Show the policy to sign</button><p class="result"></p></form>'
    )


@dataclass(frozen=True)
class PolicyForm:
    """What a sent form asks for: the agent, its intents' key (None: the one in force), the
    options and the further fields (`sdk.policies.policy_fields`)."""

    agent_id: str
    public_key: str | None
    fields: dict[str, Any]
    create: bool = False


def read_form(form: Mapping[str, str]) -> PolicyForm:
    """The sent form as the builder takes it; PolicyInvalid names the field that is wrong."""
    agent_id = form.get("agent", "").strip()
    if not agent_id:
        raise PolicyInvalid("agent: an agent id is required")
    text = form.get("fields", "").strip()
    extra = None
    if text:
        try:
            extra = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PolicyInvalid(f"further policy fields: not JSON ({exc}); give one JSON object") from None
        if not isinstance(extra, dict):
            raise PolicyInvalid("further policy fields: give one JSON object of policy fields")
    options = {option: form[option] for option in OPTIONS if option in form}
    return PolicyForm(
        agent_id, form.get("public_key", "").strip() or None, policy_fields(options, extra), bool(form.get("create"))
    )
