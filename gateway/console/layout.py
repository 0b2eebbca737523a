"""The one page frame every console page is drawn in, and the escaping every value goes through.

Pages are drawn on the server; what script a page has is a file under ``gateway/console/static`` (the
Content-Security-Policy allows no inline script and no other origin), so markup here carries no
``<script>`` body, no ``on*=`` handler and no ``style=`` attribute.

Much of what a page shows was written by someone else: an agent, a chain, a webhook receiver, an
admin who may be a rogue. A character that draws nothing or reorders what is drawn around it (a
bidi override such as U+202E, a zero-width space, any other control or format character) could
make a page show other text than the bytes hold, so each is shown as what it is: a marked box
naming its code point (``<span class="cc" data-cp="202E">U+202E</span>``), and in text that can
hold no markup, ``[U+202E]``."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from html import escape

# Categories of characters that draw nothing by themselves: controls, format characters (bidi
# controls, zero-width characters, tags), private-use, surrogate and unassigned code points, line
# and paragraph separators, and spaces other than the space (U+00A0, U+2000-U+200A, U+3000, ...).
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp", "Zs"})
# Letters and marks that draw nothing: the Hangul fillers, the combining grapheme joiner, the
# variation selectors, the braille blank.
_UNSEEN_OTHERS = re.compile("[\u115f\u1160\u3164\uffa0\u034f\u2800\ufe00-\ufe0f\U000e0100-\U000e01ef]")
# What a page draws as it is: the space, and the line break and tab of a <pre>.
_SEEN = frozenset(" \n\t")


def unseen(char: str) -> bool:
    """Whether ``char`` would be drawn as nothing, or change how the text around it is drawn."""
    return char not in _SEEN and (unicodedata.category(char) in _UNSEEN_CATEGORIES or bool(_UNSEEN_OTHERS.match(char)))


def code_point(char: str) -> str:
    """``char``'s code point as people write it: ``U+202E``."""
    return f"U+{ord(char):04X}"


def _marked(char: str) -> str:
    name = unicodedata.name(char, "")
    title = f' title="{name}"' if name else ""
    return f'<span class="cc" data-cp="{ord(char):X}"{title}>{code_point(char)}</span>'


def esc(value: object) -> str:
    """``value`` as text in an element of a page, quotes included, each character that draws
    nothing shown as a marked box (`unseen`): every value a page shows goes through this, or
    through `plain` where no markup can be, or `attr` in an attribute."""
    text = escape(str(value), quote=True)
    return "".join(_marked(c) if unseen(c) else c for c in text) if any(map(unseen, text)) else text


def plain(value: object) -> str:
    """``value`` as text where no markup is drawn (a ``<title>``, an SVG chart, an ``<option>``,
    a ``<textarea>``, an ``aria-label``): each character that draws nothing as ``[U+202E]``."""
    text = escape(str(value), quote=True)
    return "".join(f"[{code_point(c)}]" if unseen(c) else c for c in text) if any(map(unseen, text)) else text


def attr(value: object) -> str:
    """``value`` in an attribute that a form or the page's script sends back as it is (an input's
    value, an id, a ``data-`` attribute): escaped, every character kept."""
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
        "".join(f'<a href="{attr(item.path)}">{esc(item.label)}</a>' for item in NAV)
        + f'<span class="who">{esc(who)}</span><form method="post" action="/logout">'
        + f'<input type="hidden" name="csrf" value="{attr(csrf)}"><button>Log out</button></form>'
        if who is not None
        else ""
    )
    tags = "".join(f'<script src="/static/{attr(name)}" defer></script>' for name in scripts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name="csrf" content="{attr(csrf)}"><title>{plain(title)} · Warden</title>'
        f'<link rel="stylesheet" href="/static/console.css">{tags}</head>'
        f"<body><header><strong>Warden</strong><nav>{nav}</nav></header>"
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
