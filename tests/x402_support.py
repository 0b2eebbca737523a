"""A paid HTTP resource as the official x402 Python SDK serves it, for the x402 tests: its Flask
payment middleware in front of a Flask app, its resource server, and its own facilitator (the
SDK's ``ExactEvmScheme`` verification and settlement, with the SDK's web3 signer) settling on
Anvil. Warden wrote none of it.

The facilitator runs in-process: the SDK ships the facilitator's logic but no HTTP service for
it, and its HTTP facilitator client needs the ``httpx`` package, which this venv does not hold
(the ``mcp`` SDK brings ``httpx2``). The resource server calls the same verify and settle methods
either way; only the HTTP hop between the two is left out.

Routes: each serves JSON to whoever pays its one requirement; ``payments`` records every payment
header the server was sent and ``served`` every request it answered with the resource."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from eth_account import Account
from flask import Flask, jsonify
from werkzeug.serving import make_server
from x402 import x402FacilitatorSync, x402ResourceServerSync
from x402.http import PaymentOption, RouteConfig
from x402.http.middleware.flask import payment_middleware
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmServerScheme, register_exact_evm_facilitator

from infra.stack.local import free_port


@dataclass(frozen=True)
class Paid:
    """One paid route: whom it pays, how much (base units), on which CAIP-2 network."""

    path: str
    pay_to: str
    amount: int
    network: str = "eip155:31337"
    max_timeout_s: int = 120


@dataclass
class PaidServer:
    url: str
    facilitator: str  # the address that settles, and pays the gas (or the fee, on Solana)
    payments: list[tuple[str, str]] = field(default_factory=list)  # (path, payment header) received
    served: list[str] = field(default_factory=list)  # paths answered with the resource


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
        server.register(network, ExactEvmServerScheme())
    price = {"asset": token, "extra": {"name": token_name, "version": "1"}}
    with _serving(server, routes, price, account.address) as running:
        yield running


@contextlib.contextmanager
def paid_solana_server(rpc_url: str, mint: str, routes: list[Paid]) -> Iterator[PaidServer]:
    """The official server selling ``routes`` for SPL ``mint`` with the SDK's SVM ``exact``
    scheme: its facilitator (a fresh keypair the caller funds: it pays every transaction's fee)
    verifies, completes and sends the agent's transaction on the node at ``rpc_url``, which the
    SDK knows by a cluster's CAIP-2 name (devnet's, in the routes)."""
    from solders.keypair import Keypair
    from x402.mechanisms.svm import FacilitatorKeypairSigner
    from x402.mechanisms.svm.exact import register_exact_svm_facilitator, register_exact_svm_server

    keypair = Keypair()
    facilitator = x402FacilitatorSync()
    register_exact_svm_facilitator(
        facilitator, FacilitatorKeypairSigner(keypair, rpc_url=rpc_url), sorted({r.network for r in routes})
    )
    server = x402ResourceServerSync(facilitator)
    register_exact_svm_server(server, sorted({r.network for r in routes}), rpc_url=rpc_url)
    with _serving(server, routes, {"asset": mint, "extra": {}}, str(keypair.pubkey())) as running:
        yield running


@contextlib.contextmanager
def _serving(server, routes: list[Paid], price: dict, facilitator: str) -> Iterator[PaidServer]:
    app = Flask("x402-paid")
    port = free_port()
    running = PaidServer(url=f"http://127.0.0.1:{port}", facilitator=facilitator)

    for route in routes:

        def resource(path=route.path):
            running.served.append(path)
            return jsonify({"report": f"the paid content of {path}"})

        app.add_url_rule(route.path, endpoint=route.path, view_func=resource)
    config = {
        f"GET {r.path}": RouteConfig(
            accepts=PaymentOption(
                scheme="exact",
                pay_to=r.pay_to,
                price={"amount": str(r.amount), **price},
                network=r.network,
                max_timeout_seconds=r.max_timeout_s,
            ),
            description=f"paid {r.path}",
            mime_type="application/json",
        )
        for r in routes
    }
    payment_middleware(app, config, server)
    paying = app.wsgi_app  # the middleware's, in front of the app

    def recording(environ, start_response):
        header = environ.get("HTTP_PAYMENT_SIGNATURE") or environ.get("HTTP_X_PAYMENT")
        if header:
            running.payments.append((environ["PATH_INFO"], header))
        return paying(environ, start_response)

    app.wsgi_app = recording
    http = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        http.shutdown()
        thread.join(timeout=30)
