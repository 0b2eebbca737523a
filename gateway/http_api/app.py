"""The HTTP API's aiohttp application: its routes, the middlewares that measure each request and
turn every error into the one JSON shape (aiohttp's own answers too: `_Connection`,
`_routing_refusal`), and its server."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import http_exceptions, web
from aiohttp.web_request import BaseRequest

from gateway.http_api.bodies import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES, MAX_URL_BYTES
from gateway.http_api.errors import Refused
from gateway.http_api.service import ApiService
from runtime import metrics
from runtime.readiness import mark_ready
from sdk.client import Client
from sdk.outcome_hub import OutcomeHub

_log = logging.getLogger("warden.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counted and timed by route (the path's pattern, never its ids) and status."""
    began = time.perf_counter()
    response = await handler(request)
    resource = request.match_info.route.resource
    route = f"{request.method} {resource.canonical if resource is not None else 'unknown'}"
    metrics.API_REQUESTS.labels(route, str(response.status)).inc()
    metrics.API_SECONDS.labels(route).observe(time.perf_counter() - began)
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refused as refused:
        return refused.response()
    except web.HTTPException as exc:  # aiohttp's own: an unknown path or method
        if exc.status < 400:
            raise
        return _routing_refusal(request, exc).response()
    except (OSError, TimeoutError) as exc:
        _log.warning("%s %s: the pipeline did not answer: %s", request.method, request.path, exc)
        return Refused(
            503, "unavailable", "the pipeline did not answer; retry later", headers={"Retry-After": "5"}
        ).response()
    except Exception:  # a bug of ours: logged whole, answered without a traceback
        _log.exception("%s %s failed", request.method, request.path)
        return Refused(500, "internal_error", "the API failed on this request; its log says why").response()


@web.middleware
async def _url_within_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """414 for a URL over `MAX_URL_BYTES`, counted as sent: the limit the docs state, whichever
    parser read the request (each limits something else: `MAX_REQUEST_LINE_BYTES`)."""
    if len(request.raw_path.encode("utf-8", "surrogateescape")) > MAX_URL_BYTES:
        raise _url_too_long()
    return await handler(request)


def _url_too_long() -> Refused:
    return Refused(414, "url_too_long", f"the URL (its path and query) is over {MAX_URL_BYTES} bytes")


def _routing_refusal(request: web.Request, exc: web.HTTPException) -> Refused:
    """aiohttp's answer for a path or method no route has, as the API's JSON error (405 keeps its
    ``Allow``)."""
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return Refused(
            405,
            "method_not_allowed",
            f"{request.method} is not a method of {request.path}; it takes {allowed.replace(',', ', ')}",
            headers={"Allow": allowed},
        )
    if exc.status == 404:
        return Refused(
            404, "not_found", f"{request.method} {request.path}: no such path; /v1/openapi.json lists the API's paths"
        )
    return Refused(exc.status, "malformed_http", f"{request.method} {request.path}: {exc.reason}")


def build_app(service: ApiService) -> web.Application:
    app = web.Application(
        middlewares=[_measured, _errors, _url_within_limit],
        client_max_size=MAX_BODY_BYTES,
        handler_args={"max_line_size": MAX_REQUEST_LINE_BYTES, "max_field_size": MAX_HEADER_BYTES},
    )
    agent = "/v1/agents/{agent_id}"
    app.add_routes(
        [
            web.get("/v1/openapi.json", service.openapi),
            web.get("/v1/chains", service.chains),
            web.post("/v1/auth/agent-token", service.agent_token),
            web.post(f"{agent}/transactions", service.submit_transaction),
            web.post(f"{agent}/transactions/sign", service.sign_transaction),
            web.get(f"{agent}/transactions", service.list_transactions),
            web.get(f"{agent}/transactions/{{tx_id}}", service.get_transaction),
            web.post(f"{agent}/transactions/simulate", service.simulate),
            web.post(f"{agent}/transactions/simulate-bundle", service.simulate_bundle),
            web.post(f"{agent}/sign", service.sign),
            web.post(f"{agent}/solana/transactions", service.submit_solana),
            web.get(f"{agent}/signing-keys", service.signing_keys),
            web.post(f"{agent}/signing-keys", service.admins_only),
            web.post(f"{agent}/signing-keys/{{chain}}/rotate", service.admins_only),
            web.delete(f"{agent}/signing-keys/{{chain}}", service.admins_only),
        ]
    )
    return app


class _Connection(web.RequestHandler):
    """aiohttp's handler of one connection, whose own answers (what its HTTP parser refuses: a URL
    or a header over the limit, a body framed two ways, bytes that are not HTTP) are the API's JSON
    errors with their code, like every other answer, instead of aiohttp's text."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's: an answer begun cannot become an error
            raise ConnectionError("the response has begun; no error can follow it")
        refused = _protocol_refusal(status, exc, message)
        if refused.status >= 500:
            _log.error("a request from %s failed in aiohttp", request.remote, exc_info=exc)
        else:  # the client's mistake, not the API's: no traceback
            _log.info("refused a request from %s (%d): %s", request.remote, refused.status, refused.detail)
        metrics.API_REQUESTS.labels("unparsed", str(refused.status)).inc()
        response = refused.response()
        response.force_close()
        return response


def _protocol_refusal(status: int, exc: BaseException | None, message: str | None) -> Refused:
    """What aiohttp's parser refused (``exc``, ``status`` and ``message`` as it gives them), as the
    API's error."""
    if isinstance(exc, http_exceptions.LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE_BYTES:
            return _url_too_long()
        return Refused(431, "headers_too_large", f"a header is over {MAX_HEADER_BYTES} bytes")
    if status >= 500:
        return Refused(500, "internal_error", "the API failed on this request; its log says why")
    why = message or (exc.message if isinstance(exc, http_exceptions.HttpProcessingError) else None) or "bad request"
    return Refused(
        status if 400 <= status < 500 else 400,
        "malformed_http",
        f"the request is not HTTP/1.1 this server reads ({why.splitlines()[0][:200]}); send one request line, "
        "headers, and a body framed by Content-Length or chunked, not both",
    )


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """`web.AppRunner` whose connections are `_Connection`s: the API's errors, the parser's too."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


async def serve(service: ApiService, listen: str) -> None:
    """Serve the API at ``listen`` (host:port) until cancelled, submitting through one
    `OutcomeHub` and answering for signing keys from one `KeyStoreView`; the ready file says it
    listens."""
    host, _, port = listen.rpartition(":")
    metrics.serve(service.settings, "api")
    client = await Client(service.settings).__aenter__()
    hub = OutcomeHub(service.settings, client)
    service.submit = hub.submit_and_wait
    runner = ApiRunner(build_app(service), access_log=None)
    try:
        await hub.start()
        await service.key_store.start()
        await runner.setup()
        await web.TCPSite(runner, host.strip("[]"), int(port)).start()
        mark_ready(service.settings, "api")
        # On stderr whatever the log level: where to send requests is what a person starting it needs.
        print(
            f"warden api: the Intents API at http://{listen}/v1 (OpenAPI: /v1/openapi.json)",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await service.key_store.stop()
        await hub.stop()
        await client.__aexit__(None, None, None)
