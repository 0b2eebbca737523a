"""The official x402 Python SDK's paid resource (infra/stack/x402_server.py) on EVM, for the x402
tests: its facilitator is the SDK's ``ExactEvmScheme`` verification and settlement, with the
SDK's web3 signer (eth-account, a test dependency), settling on Anvil. Warden wrote none of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from eth_account import Account
from x402 import x402FacilitatorSync, x402ResourceServerSync
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmServerScheme, register_exact_evm_facilitator

from infra.stack.x402_server import Paid, PaidServer, serving


@contextlib.contextmanager
def paid_server(rpc_url: str, token: str, token_name: str, routes: list[Paid]) -> Iterator[PaidServer]:
    """The official server on a free localhost port, selling ``routes`` for ``token`` (an
    EIP-3009 token, version "1" of its EIP-712 domain), settled by a fresh facilitator account
    the caller funds with gas (``PaidServer.facilitator``)."""
    account = Account.create()
    signer = FacilitatorWeb3Signer(private_key=account.key.hex(), rpc_url=rpc_url)
    facilitator = x402FacilitatorSync()
    # The SDK's facilitator reads the chain id from the CAIP-2 name: a local chain needs no mapping.
    register_exact_evm_facilitator(facilitator, signer, sorted({r.network for r in routes}))
    server = x402ResourceServerSync(facilitator)
    for network in sorted({r.network for r in routes}):
        server.register(network, ExactEvmServerScheme())  # type: ignore[arg-type,no-untyped-call]  # the SDK's scheme is one, undeclared and untyped
    price = {"asset": token, "extra": {"name": token_name, "version": "1"}}
    with serving(server, routes, price, account.address) as running:
        yield running
