"""An EVM transaction in the signer's record (`AgentState.record_signed`), with what the tests of
its windows vary (when, how much, which assets, sign-only or not) and the rest fixed."""

from __future__ import annotations

from signer.agent_state import AgentState

ADDRESS = "0x00000000000000000000000000000000000000aa"


def record_signed(
    agent: AgentState,
    intent_id: str,
    *,
    now_us: int,
    wei: int,
    nonce: int = 0,
    assets: dict[str, int] | None = None,
    held: bool = False,
    record: bytes = b"{}",
) -> None:
    """Call it inside the file's `intent_scope`, as the signer does."""
    agent.record_signed(
        intent_id=intent_id,
        record=record,
        now_us=now_us,
        chain="anvil",
        address=ADDRESS,
        nonce=nonce,
        spend_wei=wei,
        counts=True,
        policy_version=1,
        idempotency_slot=None,
        assets=assets,
        held=held,
    )
