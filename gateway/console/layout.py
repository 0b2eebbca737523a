"""The one page frame every console page is drawn in, and the escaping every value goes through.

Pages are drawn on the server; what script a page has is a file under ``gateway/console/static`` (the
Content-Security-Policy allows no inline script and no other origin), so markup here carries no
``<script>`` body, no ``on*=`` handler and no ``style=`` attribute."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


def esc(value: object) -> str:
    """``value`` as text in HTML, quotes included: every value a page shows goes through this."""
    return escape(str(value), quote=True)


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str


NAV = (
    NavItem("/decisions", "Decisions"),
    NavItem("/agents", "Agents"),
    NavItem("/webhooks", "Webhooks"),
    NavItem("/transactions", "Transactions"),
    NavItem("/spend", "Spend"),
    NavItem("/refusals", "Refusals"),
    NavItem("/ledger", "Ledger"),
)


def page(title: str, body: str, *, who: str | None = None, scripts: tuple[str, ...] = (), csrf: str = "") -> str:
    """A whole HTML page: ``body`` (markup already escaped by its maker) in the console's frame;
    ``who`` the admin logged in (None: the login page, no navigation); ``scripts`` files under
    ``/static``; ``csrf`` the session's token, which the page's forms and scripts send back."""
    nav = (
        "".join(f'<a href="{esc(item.path)}">{esc(item.label)}</a>' for item in NAV)
        + f'<span class="who">{esc(who)}</span><form method="post" action="/logout">'
        + f'<input type="hidden" name="csrf" value="{esc(csrf)}"><button>Log out</button></form>'
        if who is not None
        else ""
    )
    tags = "".join(f'<script src="/static/{esc(name)}" defer></script>' for name in scripts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name="csrf" content="{esc(csrf)}"><title>{esc(title)} · Warden</title>'
        f'<link rel="stylesheet" href="/static/console.css">{tags}</head>'
        f"<body><header><strong>Warden</strong><nav>{nav}</nav></header>"
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
