"""A paid HTTP resource as the official x402 Python SDK serves it: its Flask payment middleware
in front of a Flask app, its resource server, and its own facilitator, in-process. Warden wrote
none of the payment logic: the demo pays it (`warden demo`'s x402 on Solana) and the x402 tests
check Warden's payments against it (tests/x402_support.py adds the EVM side).

The facilitator runs in-process: the SDK ships the facilitator's logic but no HTTP service for
it, and its HTTP facilitator client needs the ``httpx`` package, which this venv does not hold
(the ``mcp`` SDK brings ``httpx2``). The resource server calls the same verify and settle methods
either way; only the HTTP hop between the two is left out.

Routes: each serves JSON to whoever pays its one requirement; ``payments`` records every payment
header the server was sent and ``served`` every request it answered with the resource.

The SDK is the ``demo`` extra (``pip install 'warden[demo]'``, which `./infra/dev.sh` installs);
it is imported only when a server is started."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
def paid_solana_server(rpc_url: str, mint: str, routes: list[Paid]) -> Iterator[PaidServer]:
    """The official server selling ``routes`` for SPL ``mint`` with the SDK's SVM ``exact``
    scheme: its facilitator (a fresh keypair the caller funds: it pays every transaction's fee)
    verifies, completes and sends the agent's transaction on the node at ``rpc_url``, which the
    SDK knows by a cluster's CAIP-2 name (devnet's, in the routes)."""
    from solders.keypair import Keypair
    from x402 import x402FacilitatorSync, x402ResourceServerSync
    from x402.mechanisms.svm import FacilitatorKeypairSigner
    from x402.mechanisms.svm.exact import register_exact_svm_facilitator, register_exact_svm_server

    keypair = Keypair()
    facilitator = x402FacilitatorSync()
    register_exact_svm_facilitator(
        facilitator, FacilitatorKeypairSigner(keypair, rpc_url=rpc_url), sorted({r.network for r in routes})
    )
    server = x402ResourceServerSync(facilitator)
    register_exact_svm_server(server, sorted({r.network for r in routes}), rpc_url=rpc_url)
    with serving(server, routes, {"asset": mint, "extra": {}}, str(keypair.pubkey())) as running:
        yield running


@contextlib.contextmanager
def serving(server: Any, routes: list[Paid], price: dict[str, Any], facilitator: str) -> Iterator[PaidServer]:
    """``server`` (an SDK resource server with its facilitator) selling ``routes`` at ``price``
    (the asset and its extra), on a free localhost port, until the block ends."""
    from flask import Flask, jsonify
    from werkzeug.serving import make_server
    from x402.http import PaymentOption, RouteConfig
    from x402.http.middleware.flask import payment_middleware
    from x402.schemas import AssetAmount

    app = Flask("x402-paid")
    port = free_port()
    running = PaidServer(url=f"http://127.0.0.1:{port}", facilitator=facilitator)

    for route in routes:

        def resource(path: str = route.path) -> Any:
            running.served.append(path)
            return jsonify({"report": f"the paid content of {path}"})

        app.add_url_rule(route.path, endpoint=route.path, view_func=resource)
    config = {
        f"GET {r.path}": RouteConfig(
            accepts=PaymentOption(
                scheme="exact",
                pay_to=r.pay_to,
                # The SDK takes a dict with an amount too, but validates it into this.
                price=AssetAmount(amount=str(r.amount), **price),
                network=r.network,
                max_timeout_seconds=r.max_timeout_s,
            ),
            description=f"paid {r.path}",
            mime_type="application/json",
        )
        for r in routes
    }
    payment_middleware(app, config, server)  # now app.wsgi_app, in front of the app

    # In front of the middleware: served as the WSGI application rather than assigned to
    # app.wsgi_app, a method to mypy.
    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        header = environ.get("HTTP_PAYMENT_SIGNATURE") or environ.get("HTTP_X_PAYMENT")
        if header:
            running.payments.append((environ["PATH_INFO"], header))
        return app(environ, start_response)

    # Werkzeug logs every request to stderr, in the middle of the demo's report: not here.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    http = make_server("127.0.0.1", port, recording, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        http.shutdown()
        thread.join(timeout=30)
