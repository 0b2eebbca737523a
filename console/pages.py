"""What the analysts' and auditors' pages share: the source they read, kept on the application,
and the response each returns, drawn in the console's frame with who is logged in and the
session's CSRF token when the server put them on the request (``request["who"]``,
``request["csrf"]``)."""

from __future__ import annotations

from aiohttp import web

from console.data import LedgerSource
from console.layout import page

SOURCE = web.AppKey("ledger_source", LedgerSource)


def html(request: web.Request, title: str, body: str) -> web.Response:
    """``body`` (markup already escaped) as the page ``title``."""
    return web.Response(
        text=page(title, body, who=request.get("who"), csrf=request.get("csrf", "")), content_type="text/html"
    )
