"""What every answer of the console carries, and what every change it accepts must show.

Headers: a Content-Security-Policy that lets a page load script, style and images from the
console's own origin only (no inline script or style, no other origin, no framing, no form sent
elsewhere), no MIME sniffing, no referrer, nothing cached.

A change (a login, a logout, a decision relayed) is a POST that carries the session's CSRF token
and an ``Origin`` header equal to the console's origin: a page of another site can make a
browser send neither (the cookie is SameSite=Strict besides)."""

from __future__ import annotations

from typing import TypedDict
from urllib.parse import urlsplit

from gateway.console.sessions import Session
from runtime.config import Settings
from runtime.trust import console_party
from schemas.errors import Problem
from schemas.passkeys import RelyingParty

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # No address leaves for another origin; a page's own form posts keep their Origin, which the
    # CSRF rule asks for (under no-referrer a browser sends `Origin: null` with a form's POST).
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SAFE_METHODS = ("GET", "HEAD")


def page_party(settings: Settings, listen: str | None = None) -> RelyingParty:
    """Whom the console's passkeys are for: the relying party the worker and the signer believe
    (`runtime.trust.console_party`: WARDEN_CONSOLE_ORIGIN, WARDEN_CONSOLE_RP_ID), its pages served
    at the first origin; unset, ``http://localhost:<the port it listens on>`` (WebAuthn takes a
    host name as the relying party's id, never an IP address)."""
    party = console_party(settings)
    if party is not None:
        return party
    port = (listen or settings.console_http).rpartition(":")[2]
    return RelyingParty("localhost", (f"http://localhost:{port}",))


def cookie_name(origin: str) -> str:
    """The session cookie's name: ``__Host-`` prefixed over https (the browser then keeps it only
    if it is Secure, for this host alone, on path /)."""
    return "__Host-warden_session" if is_https(origin) else "warden_session"


def is_https(origin: str) -> bool:
    return urlsplit(origin).scheme == "https"


class CookieAttributes(TypedDict):
    httponly: bool
    samesite: str
    path: str
    secure: bool


def cookie_attributes(origin: str) -> CookieAttributes:
    """The session cookie's attributes: HttpOnly, SameSite=Strict, path /, Secure over https; no
    Max-Age (the browser forgets it when it closes; the console forgets it sooner)."""
    return {"httponly": True, "samesite": "Strict", "path": "/", "secure": is_https(origin)}


def change_problem(
    method: str, origin_header: str | None, sent_token: str | None, session: Session | None, origin: str
) -> Problem | None:
    """None when a request that changes something may go on; else why it is refused."""
    if method != "POST":
        return Problem(f"{method} changes nothing here; a change is a POST from the console's own pages")
    if origin_header != origin:
        return Problem(
            f"the request's Origin is {str(origin_header)[:100]!r}, not the console's {origin!r}: "
            "only the console's own pages may change anything"
        )
    if session is None:
        return Problem("no session (expired after 15 minutes idle or 8 hours): reload the page")
    if not session.csrf_matches(sent_token):
        return Problem("the request does not carry this session's CSRF token: reload the page")
    return None
