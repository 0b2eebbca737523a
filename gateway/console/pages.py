"""What the analysts' and auditors' pages share: the source they read, kept on the application,
and the response each returns, drawn in the console's frame with who is logged in and the
session's CSRF token when the server put them on the request (``request["who"]``,
``request["csrf"]``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.console.data import LedgerSource
from gateway.console.layout import esc, page
from schemas.errors import WardenError

SOURCE = web.AppKey("ledger_source", LedgerSource)


def keep_source(app: web.Application, source: LedgerSource) -> None:
    """``source`` on ``app`` for the pages to read: one for the analysts' and the auditors' pages,
    so a second `add_routes` given another is refused rather than silently replacing the first."""
    if app.get(SOURCE, source) is not source:
        raise WardenError("the analysts' and auditors' pages read one LedgerSource: give both add_routes the same")
    app[SOURCE] = source


def html(request: web.Request, title: str, body: str, status: int = 200, scripts: tuple[str, ...] = ()) -> web.Response:
    """``body`` (markup already escaped) as the page ``title``, with ``scripts`` of ``/static``."""
    return web.Response(
        text=page(title, body, who=request.get("who"), csrf=request.get("csrf", ""), scripts=scripts),
        content_type="text/html",
        status=status,
    )


Handler = Callable[[web.Request], Awaitable[web.Response]]


def reading(title: str) -> Callable[[Handler], Handler]:
    """A page whose reads may fail (no ledger yet, its endpoint down, no ledger key on this host):
    then the page ``title`` says why and what to do, with 503, instead of an error page."""

    def wrap(handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except WardenError as exc:
                return html(request, title, f'<p class="flag">Cannot read the ledger: {esc(exc)}</p>', 503)

        return handle

    return wrap
