"""A plain transfer over HTTP on a Solana or a Bitcoin network (``chain``, ``to``, ``value``): the
intent's fields, written from the agent's policy in force (`sdk.transfers`), and what is answered
when they cannot be. A network the policy does not allow, or a family it does not enable, is
refused as the judge refuses it (403, the same stage and code) before any node is asked; a network
with no node to ask is 503 naming what to set; a node that does not answer, 503 to retry."""

from __future__ import annotations

from typing import Any

from gateway.http_api.errors import Refused
from runtime.config import Settings
from runtime.registry import REGISTRY
from runtime.rpc import NoRpc, RpcError
from schemas.chains import Family
from schemas.codes import Code
from schemas.policy import AgentPolicy
from schemas.stages import Stage
from sdk.client import policy_in_force
from sdk.transfers import TransferInvalid, transfer_fields

# Per family the plain transfer writes: the stage that judges it, the policy's section that
# enables it, the code of a policy without it (rules/solana.py, rules/bitcoin.py) and its name.
_FAMILY_RULES = {
    Family.SOLANA: (Stage.SOLANA, "solana", Code.SOLANA_NOT_ENABLED, "Solana"),
    Family.BITCOIN: (Stage.BITCOIN, "bitcoin", Code.BITCOIN_NOT_ENABLED, "Bitcoin"),
}


def policy_refusal(policy: AgentPolicy | None, agent_id: str, chain: str) -> Refused | None:
    """How the judge refuses any intent of ``chain``'s family on ``chain`` under ``policy``,
    whatever it asks, or None when the policy lets it be judged: no policy (intake), a network
    the policy does not list (the chain stage; the family's own stage when it lists none, as
    the family allows only networks named) or no section for the family."""
    if policy is None:
        why = f"no policy for agent {agent_id!r}; an admin creates one with `warden agents create`"
        return _refused(Stage.INTAKE, Code.POLICY_MISSING, why)
    stage, section, not_enabled, family = _FAMILY_RULES[REGISTRY.get(chain).family]
    allowed = policy.tx_allowed_chains
    if chain not in allowed:
        why = f"chain {chain!r} is not in this agent's tx_allowed_chains {list(allowed)}"
        return _refused(Stage.CHAIN if allowed else stage, Code.CHAIN_NOT_ALLOWED, why)
    if getattr(policy, section) is None:
        why = f"the agent's policy has no `{section}` section: every {family} intent is refused"
        return _refused(stage, not_enabled, why)
    return None


def _refused(stage: Stage, code: Code, why: str) -> Refused:
    """A refusal before any intent was written: nothing was signed or published, so it has no id."""
    return Refused(403, "refused", f"{why}; nothing was written or signed", code=code, stage=stage, status="refused")


async def transfer_fields_of(
    settings: Settings, agent_id: str, chain: str, to: str, value: str, node_gave: str
) -> dict[str, Any]:
    """The intent fields of a plain transfer of ``value`` to ``to`` on ``chain`` (`sdk.transfers`)
    from the agent's policy in force; `Refused` when there are none to write: 403 as the policy
    says (`policy_refusal`), 422 when the request cannot be written, 503 when ``chain`` has no node
    to ask or its node did not answer (``node_gave``: what it gave instead of what the writer needs)."""
    policy = await policy_in_force(settings, agent_id)
    refusal = policy_refusal(policy, agent_id, chain)
    if refusal is not None:
        raise refusal
    try:
        return await transfer_fields(settings, chain, policy, to, value)
    except TransferInvalid as exc:
        raise Refused(422, "invalid_request", str(exc)) from None
    except NoRpc as exc:  # the deployment's to set: no retry helps until it is
        raise Refused(503, "no_rpc", f"{chain} has no node to ask: {exc}; nothing was written or signed") from None
    except (RpcError, OSError, TimeoutError) as exc:
        why = f"the node of {chain} gave {node_gave} ({exc}); retry later"
        raise Refused(503, "node_unavailable", why, headers={"Retry-After": "5"}) from None
