"""The stack tests' fixtures: the real embedded stack (Tansu, Anvil, Warden's processes; Apache
Kafka for Tansu in the modules marked ``kafka``) on free ports under a temporary WARDEN_HOME. Every
test here starts processes (that stack, a CLI or a script in a subprocess), so every test
collected under tests/stack is marked ``stack``:
``pytest -m "not stack"`` runs the unit tests alone and starts nothing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.stack.local import DEFAULT_PARTS, LocalStack, local_settings, running_stack
from runtime.trust import LOCAL_ADMIN_ID
from schemas.auth import public_key_hex
from sdk.admin import load_or_create_admin_key
from tests.passkey_support import ORIGIN, PASSKEY_ADMIN, SoftPasskey
from tests.signer_support import LoneSigner
from tests.token_support import deploy_tokens

HERE = Path(__file__).resolve().parent


# The longest files, longest first (each file's wall time, alone or in a whole run on five workers). The xdist
# workers take files in collection order as each becomes free (`./infra/dev.sh test` passes
# --no-loadscope-reorder: xdist's own order is by the number of tests in a file, which started the
# one-test files that run for minutes last): started first, the long ones run beside each other
# and the many short files fill in behind them.
LONGEST_FIRST = (
    "test_node_outage.py",
    "test_admin_quorum.py",
    "test_custody_pipeline.py",
    "test_broker_loss.py",
    "test_supervised_stack.py",
    "test_http_api.py",
    "test_http_api_families.py",
    "test_chaos.py",
    "test_solana_pipeline.py",
    "test_paused_worker.py",
    "test_ledger_sink.py",
    "test_pipeline_e2e.py",
    "test_vault_cli.py",
    "test_split_topology.py",
    "test_signer_last_word.py",
    "test_broker_check.py",
    "test_crash_recovery.py",
    "test_getting_started.py",
    "test_console_browser.py",
    "test_what_if.py",
    "test_idempotency_and_dead_letters.py",
    "test_scale_out.py",
    "test_ledger_rewritten.py",
    "test_attested_sealing_on_the_stack.py",
    "test_txs_cli.py",
    "test_agents_cli.py",
    "test_worker_changelog.py",
    "test_signer_refused_send.py",
    "test_evm_on_anvil.py",
    "test_token_approvals.py",
    "test_terminal_outcomes.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item, not only this directory's: mark by path.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.stack)
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)) if HERE in item.path.parents else len(rank))


@pytest.fixture(scope="session")
def stack_passkey() -> SoftPasskey:
    """The passkey admin ``stack`` pins, as `PASSKEY_ADMIN`, beside its local admin."""
    return SoftPasskey()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_passkey: SoftPasskey) -> Iterator[LocalStack]:
    """One running pipeline for the whole session (fused topology), with a Solana node and a
    Bitcoin regtest node. Its admins:
    the local admin (the CLI's key under its home) and a passkey admin (`stack_passkey`), whose
    assertions are believed from the console origin `tests.passkey_support.ORIGIN`; one signs."""
    home = tmp_path_factory.mktemp("warden-home")
    local = public_key_hex(load_or_create_admin_key(home))  # made before the services pin it
    settings = local_settings(
        home,
        admin_keys=f"{LOCAL_ADMIN_ID}={local},{PASSKEY_ADMIN}={stack_passkey.pinned()}",
        console_origin=ORIGIN,
    )
    with running_stack(settings, parts=(*DEFAULT_PARTS, "solana", "bitcoin")) as running:
        yield running


@pytest.fixture
def fresh_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalStack]]:
    """A stack of the test's own (for tests that kill processes or change the topology). In a
    module marked ``kafka`` (``pytestmark = pytest.mark.kafka``) its broker is Apache Kafka, what
    `warden up` runs on, not the embedded Tansu: the tests about the bus (a crash, a kill, a
    rebalance) hold on the broker Warden's users run."""
    numbers = itertools.count()
    # Kafka's own fetch wait, not the suite's for the embedded broker (tests/conftest.py): Kafka
    # answers a waiting fetch as soon as a record arrives.
    kafka = {"broker_storage": "durable", "fetch_wait_setting": None}
    storage = kafka if request.node.get_closest_marker("kafka") else {}
    with contextlib.ExitStack() as started:

        def start(signers: int = 1, workers: int = 1, **overrides: Any) -> LocalStack:
            home = tmp_path / f"home{next(numbers)}"
            settings = local_settings(home, **{**storage, **overrides})
            return started.enter_context(running_stack(settings, signers, workers))

        yield start


@pytest.fixture(scope="module")
def deployed(stack: LocalStack) -> dict[str, str]:
    return asyncio.run(deploy_tokens(stack.settings))


@pytest.fixture
def lone(tmp_path: Path, stack: LocalStack, deployed: dict[str, str]) -> LoneSigner:
    return LoneSigner(tmp_path, stack.settings.rpc_url_for("anvil"))
