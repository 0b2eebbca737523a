"""``warden webhooks add|list|remove``: audit webhooks (docs/webhooks.md). ``add`` and ``remove``
are an admin's requests, signed with this admin's key (WARDEN_ADMIN_ID) and checked by the ledger
(`sdk.webhooks`); ``list`` reads the ledger's store, as ``warden audit`` does."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from infra.cli.output import add_json_flag, print_json
from runtime.clock import utcnow
from runtime.config import load
from schemas.webhooks import checked_events, checked_url
from sdk.admin import load_or_create_admin_key
from sdk.webhooks import add_webhook, remove_webhook


def cmd_add(args: argparse.Namespace) -> int:
    settings = load()
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    # Checked before any key is read: a typo is told as such, with what is allowed.
    checked_url(args.url)
    checked_events(events)
    key = load_or_create_admin_key(settings.home, settings.admin_id)
    answer = add_webhook(settings, args.url, events, key, settings.admin_id, utcnow())
    if args.json:
        print_json({"id": answer["id"], "secret": answer["secret"], "url": answer["url"], "events": answer["events"]})
        return 0
    print(f"webhook {answer['id']} added by {settings.admin_id}: {answer['url']}")
    print(f"  events: {', '.join(answer['events'])}")
    print(f"  signing secret: {answer['secret']}")
    print("  the secret is shown only now: keep it where the receiver verifies signatures (docs/webhooks.md)")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    settings = load()
    key = load_or_create_admin_key(settings.home, settings.admin_id)
    answer = remove_webhook(settings, args.webhook_id, key, settings.admin_id, utcnow())
    if args.json:
        print_json(answer)
    else:
        print(f"webhook {answer['id']} removed by {settings.admin_id}; nothing more is sent to it")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ledger.store import open_reader  # chDB and pyarrow: this command only
    from ledger.webhook_store import summaries

    store = open_reader(load())
    try:
        listed = summaries(store)
    finally:
        store.close()
    if args.json:
        print_json([_document(row) for row in listed])
        return 0
    if not listed:
        print("no webhook endpoints; add one with `warden webhooks add URL --events ACTION,...`")
        return 0
    for row in listed:
        print(f"{row['webhook_id']}  {row['url']}")
        print(f"  events: {', '.join(row['events'])}")
        print(f"  added {_when(row['added_at'])} by {row['added_by']}")
        pending = f"{row['pending']} pending"
        if row["oldest_pending"] is not None:
            pending += f" (oldest owed since {_when(row['oldest_pending'])})"
        print(f"  delivered {row['delivered']}, {pending}, given up {row['given_up']}")
        if row["last_error"]:
            print(f"  last error: {row['last_error']}")
        if row["given_up_events"]:
            print(f"  given up (newest first): {', '.join(row['given_up_events'])}")
    return 0


def _document(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["webhook_id"],
        "url": row["url"],
        "events": row["events"],
        "added_at": _when(row["added_at"]),
        "added_by": row["added_by"],
        "delivered": row["delivered"],
        "pending": row["pending"],
        "oldest_pending": _when(row["oldest_pending"]) if row["oldest_pending"] is not None else None,
        "given_up": row["given_up"],
        "given_up_events": row["given_up_events"],
        "last_error": row["last_error"] or None,
    }


def _when(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser(
        "add", help="register an endpoint for audit actions; prints its id and signing secret (shown once)"
    )
    add.add_argument("url", help="https://... (plain http only to localhost, 127.0.0.1 or ::1)")
    add.add_argument("--events", required=True, help="audit actions, comma-separated: intent.parked,tx.final,...")
    add_json_flag(add)
    add.set_defaults(handler=cmd_add)
    listing = sub.add_parser("list", help="the endpoints, what each was delivered, what is pending or given up")
    add_json_flag(listing)
    listing.set_defaults(handler=cmd_list)
    remove = sub.add_parser("remove", help="stop delivering to an endpoint")
    remove.add_argument("webhook_id", help="the endpoint's id (wh_...), as `warden webhooks list` prints it")
    add_json_flag(remove)
    remove.set_defaults(handler=cmd_remove)
