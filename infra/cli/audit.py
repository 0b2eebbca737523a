"""``warden audit ...``: verify, prove, check-proof, consistency, check-consistency, log-key, receipt,
check-receipt, export, query, pubkey.

Each handler takes the parsed arguments and returns an exit code: 0 on success,
1 when verification fails, 2 when the command cannot run (the message on stderr
says what to do next). Commands reach the store through ``store.open_reader``:
the ClickHouse server when WARDEN_CLICKHOUSE_URL is set, else the running
sink's endpoint, else the chDB directory itself.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from infra.cli.output import fail, note, print_json
from ledger.keys import SigningKeyError, key_path, load_or_create_signing_key, local_public_key, public_key_hex
from ledger.note import COSIGNATURE_V1, ED25519, Note, NoteCheckpoint, NoteError, NoteKey
from ledger.receipt import Policy, Receipt
from ledger.receipt import check as check_receipt
from ledger.schema import AUDIT_LOG
from runtime.config import Settings, load
from schemas.errors import Problem

# The ledger's store (ClickHouse or chDB, pyarrow), its proofs and verifier (an HTTP client for
# the witnesses) and the SDK's records (Kafka) cost most of a second to import: each command
# imports the ones it uses, so `audit log-key` or `audit check-receipt` loads none of them.
if TYPE_CHECKING:
    from ledger.witnessed import KeptReceipt

EXPORT_PAGE_ROWS = 200_000
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXPORT_COLUMNS = (
    "chain, seq, event_id, actor, action, resource, formatDateTime(ts, '%Y-%m-%dT%H:%i:%S.%fZ') AS ts, "
    "intent_id, agent_id, details, prev_hash, integrity_hash"
)


def parse_time(text: str, now: datetime) -> datetime:
    """``90d``/``12h``/``30m``/``45s``/``2w`` before ``now``, or an ISO 8601 time (UTC if no zone)."""
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (90d, 12h, 30m) nor an ISO 8601 time (2026-11-21T10:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _log_key(args: argparse.Namespace) -> NoteKey:
    """The log's verifier key checkpoints are checked under: ``--log-key VKEY``, else this host's
    (its ledger key under WARDEN_LEDGER_LOG_NAME)."""
    if args.log_key:
        try:
            key = NoteKey.from_vkey(args.log_key)
        except NoteError as exc:
            raise SigningKeyError(f"--log-key {args.log_key}: {exc}") from None
        if key.type != ED25519:
            raise SigningKeyError(
                f"--log-key {args.log_key}: not a log's Ed25519 vkey (`warden audit log-key` prints it)"
            )
        return key
    settings = load()
    return NoteKey(settings.ledger.log_name, ED25519, local_public_key(settings.home))


def _fail(message: str) -> int:
    return fail("warden audit", message, 2)


def _witnessed(args: argparse.Namespace, settings: Settings, log: NoteKey) -> tuple[list[NoteKey], list[KeptReceipt]]:
    """The witness keys verify pins (``--witness``, else the sink's WARDEN_LEDGER_WITNESSES) and
    the receipts a client kept (``--receipt``, ``--receipts``), each checked on its own first."""
    from ledger.cosigning import parse_witnesses
    from ledger.witnessed import kept_receipt

    if args.witness:
        witnesses = []
        for vkey in args.witness:
            try:
                witnesses.append(NoteKey.from_vkey(vkey))
            except NoteError as exc:
                raise NoteError(f"--witness {vkey}: {exc}") from None
            if witnesses[-1].type != COSIGNATURE_V1:
                raise NoteError(
                    f"--witness {vkey}: not a witness's cosignature/v1 vkey (`warden witness key` prints it)"
                )
    else:
        witnesses = [w.key for w in parse_witnesses(settings.ledger.witnesses)]
    files = [Path(f) for f in args.receipt or ()]
    if args.receipts:
        directory = Path(args.receipts)
        if not directory.is_dir():
            raise OSError(f"--receipts {directory}: not a directory of receipts")
        files += sorted(f for f in directory.iterdir() if f.is_file())
    receipts = [kept_receipt(str(f), f.read_text(), log, witnesses) for f in files]
    for kept in receipts:
        if args.chain is not None and kept.chain != args.chain:
            raise NoteError(
                f"the receipt {kept.source} is of chain {kept.chain}: verify without --chain, or with --chain {kept.chain}"
            )
    return witnesses, receipts


def cmd_verify(args: argparse.Namespace) -> int:
    from ledger.store import StoreError, open_reader
    from ledger.verify import NOT_BELIEVED_SQL, not_believed, source_changes, verify

    now = datetime.now(timezone.utc)
    try:
        log = _log_key(args)
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
        settings = load()
        witnesses, receipts = _witnessed(args, settings, log)
        store = open_reader(settings)
    except (SigningKeyError, StoreError, argparse.ArgumentTypeError, NoteError) as exc:
        return _fail(str(exc))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return _fail(f"cannot read the witnesses or receipts to check: {exc}")

    def progress(done: int, total: int) -> None:
        note(f"verify: {done:,}/{total:,} rows ({100 * done // max(total, 1)}%)")

    try:
        chains = [args.chain] if args.chain is not None else None
        report = verify(
            store, log.public, chains, since, until, progress, log.name, witnesses=witnesses, receipts=receipts
        )
        changes = source_changes(store)
        doubted = not_believed(store)
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    if args.json:
        print_json({**report.to_dict(), "source_changes": changes, "records_not_believed": doubted})
    elif report.ok:
        rate = f", {report.rows / report.seconds:,.0f} rows/s" if report.seconds else ""
        uncovered = sum(c.uncovered_rows for c in report.chains)
        print(
            f"OK: {len(report.chains)} chain(s), {report.rows:,} rows and "
            f"{sum(c.checkpoints for c in report.chains):,} signed checkpoints verified in {report.seconds:.2f}s{rate}"
            + (f"; {uncovered:,} newest rows are not yet under a checkpoint" if uncovered else "")
        )
        cosigned = sum(held.checkpoints for chain in report.cosigned.values() for held in chain.values())
        if report.witnesses or report.receipts:
            print(
                f"OK: {cosigned:,} cosignature(s) of {len(report.witnesses)} pinned witness(es) and "
                f"{report.receipts} kept receipt(s) agree with the checkpoints stored now"
            )
    else:
        print(f"FAILED: {len(report.problems)} problem(s); the first bad row of each chain:")
        for problem in report.problems:
            print(f"  {problem.describe()}")
    for change in [] if args.json else changes:  # --json carries them as "source_changes"
        # Not a broken chain, but a possible gap: said every time, so it is never missed.
        print(
            f"note: at {change['ts']} the ledger's broker changed ({change['previous_cluster_id']} -> "
            f"{change['cluster_id']}); records the previous broker held past offsets "
            f"{change['previous_next_offsets']} were never appended"
        )
    if report.unchecked_cosignatures and not args.json:  # --json: "unchecked_cosignatures"
        # Lines of signers verify was not told to trust: nothing they say was checked.
        print(
            f"note: {report.unchecked_cosignatures:,} stored cosignature line(s) are by witnesses not pinned here and "
            "were not checked; pin each witness with --witness VKEY (`warden witness key` prints it)"
        )
    if doubted and not args.json:  # --json: "records_not_believed"
        # Not a broken chain either: attempts to write the trail, kept as evidence.
        print(
            f"note: {doubted:,} record(s) on warden.audit.events were not believed (unsigned, signed by a key "
            "the ledger does not pin, or speaking as another service); see them with `warden audit query "
            f"\"SELECT ts, resource, JSONExtractString(details, 'reason') FROM audit_log WHERE {NOT_BELIEVED_SQL}\"`"
        )
    return 0 if report.ok else 1


def _built(build: Callable[[Any, Settings], Any], show: Callable[[Any], None] = print_json) -> int:
    """Shows what ``build(store, settings)`` made from the ledger (a proof, JSON by default), or why
    it could not."""
    from ledger import proof as proofs
    from ledger.store import StoreError, open_reader

    settings = load()
    try:
        store = open_reader(settings)
    except StoreError as exc:
        return _fail(str(exc))
    try:
        built = build(store, settings)
    except (proofs.ProofError, StoreError) as exc:
        return _fail(str(exc))
    finally:
        store.close()
    show(built)
    return 0


def _checked(args: argparse.Namespace, check: Callable[..., Any], holds: Callable[[Any], str]) -> int:
    """Checks the proof file ``args.proof`` offline with ``check(proof, log)`` (the log's verifier
    key); ``holds(proof)`` is the line printed when it holds."""
    try:
        key = _log_key(args)
        raw = sys.stdin.buffer.read() if args.proof == "-" else Path(args.proof).read_bytes()
        proof = orjson.loads(raw)
    except (SigningKeyError, OSError, orjson.JSONDecodeError) as exc:
        return _fail(f"cannot read the proof: {exc}" if not isinstance(exc, SigningKeyError) else str(exc))
    problem = check(proof, key) if isinstance(proof, dict) else Problem("a proof is a JSON object")
    reason = None if problem is None else str(problem)
    if args.json:
        print_json({"ok": reason is None, "reason": reason}, compact=True)
    elif reason is None:
        print(holds(proof))
    else:
        print(f"FAILED: {reason}")
    return 0 if reason is None else 1


def cmd_prove(args: argparse.Namespace) -> int:
    from ledger import proof as proofs

    return _built(lambda store, settings: proofs.build(store, args.event_id, settings.ledger.log_name))


def _signed(text: str) -> NoteCheckpoint:
    return NoteCheckpoint.parse(Note.parse(text).text)


def cmd_check_proof(args: argparse.Namespace) -> int:
    from ledger import proof as proofs

    def holds(proof: dict[str, Any]) -> str:
        event, cp = proof["event"], _signed(proof["checkpoint"])
        return (
            f"OK: event {event['event_id']} is row seq {event['seq']} of chain {event['chain']}, "
            f"in the checkpoint of {cp.origin} covering {cp.size} rows, signed by the log"
        )

    return _checked(args, proofs.check, holds)


def cmd_consistency(args: argparse.Namespace) -> int:
    from ledger import proof as proofs

    return _built(
        lambda store, settings: proofs.build_consistency(
            store, args.chain, args.old, args.new, settings.ledger.log_name
        )
    )


def cmd_check_consistency(args: argparse.Namespace) -> int:
    from ledger import proof as proofs

    def holds(proof: dict[str, Any]) -> str:
        old, new = _signed(proof["old"]), _signed(proof["new"])
        return (
            f"OK: {new.origin}'s checkpoint of {new.size} rows extends the one of {old.size} rows, both signed by "
            "the log: nothing below it was changed or removed"
        )

    return _checked(args, proofs.check_consistency, holds)


def cmd_export(args: argparse.Namespace) -> int:
    from ledger.store import StoreError, open_reader

    now = datetime.now(timezone.utc)
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
        store = open_reader(load())
    except (StoreError, argparse.ArgumentTypeError) as exc:
        return _fail(str(exc))
    where = []
    if since:
        where.append(f"ts >= toDateTime64({since.timestamp():.6f}, 6, 'UTC')")
    if until:
        where.append(f"ts < toDateTime64({until.timestamp():.6f}, 6, 'UTC')")
    if args.chain is not None:
        where.append(f"chain = {args.chain}")
    condition = " AND ".join(where) or "1"
    out = sys.stdout.buffer
    try:
        ranges = store.arrow(
            f"SELECT chain, min(seq) AS lo, max(seq) AS hi FROM {AUDIT_LOG} WHERE {condition} GROUP BY chain ORDER BY chain"
        ).to_pylist()
        first = True
        # Pages by (chain, seq) keep memory flat at both ends, whatever the store's size.
        for r in ranges:
            for lo in range(r["lo"], r["hi"] + 1, EXPORT_PAGE_ROWS):
                fmt = "JSONEachRow" if args.format == "json" else ("CSVWithNames" if first else "CSV")
                out.write(
                    store.raw(
                        # Filter inside: the output column ts would shadow the stored one.
                        f"SELECT {EXPORT_COLUMNS} FROM (SELECT * FROM {AUDIT_LOG} WHERE {condition} "
                        f"AND chain = {r['chain']} AND seq >= {lo} AND seq < {lo + EXPORT_PAGE_ROWS}) ORDER BY seq",
                        fmt,
                    )
                )
                first = False
        if first and args.format == "csv":
            out.write(store.raw(f"SELECT {EXPORT_COLUMNS} FROM {AUDIT_LOG} WHERE 0", "CSVWithNames"))
        out.flush()
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from ledger.store import StoreError, open_reader

    try:
        store = open_reader(load())
    except StoreError as exc:
        return _fail(str(exc))
    try:
        sys.stdout.buffer.write(store.raw(args.sql, args.format))
        sys.stdout.flush()
    except StoreError as exc:
        return _fail(str(exc))
    finally:
        store.close()
    return 0


def cmd_pubkey(args: argparse.Namespace) -> int:
    home = load().home
    try:
        key = load_or_create_signing_key(home)
    except SigningKeyError as exc:
        return _fail(str(exc))
    if args.json:
        body = {"algorithm": "ed25519", "public_key": public_key_hex(key), "key_file": str(key_path(home))}
        print_json(body, compact=True)
    else:
        print(public_key_hex(key))
    return 0


def cmd_log_key(args: argparse.Namespace) -> int:
    from ledger.cosigning import log_key

    settings = load()
    try:
        key = log_key(settings.ledger.log_name, load_or_create_signing_key(settings.home))
    except SigningKeyError as exc:
        return _fail(str(exc))
    if args.json:
        print_json({"name": key.name, "vkey": key.vkey, "key_id": key.key_id.hex()}, compact=True)
    else:
        print(key.vkey)
    return 0


def cmd_receipt(args: argparse.Namespace) -> int:
    from ledger import proof as proofs

    def show(receipt: Receipt) -> None:
        if args.json:
            print_json({"event": receipt.event, "receipt": receipt.text})
        else:
            sys.stdout.write(receipt.text)

    return _built(lambda store, settings: proofs.build_receipt(store, args.event_id, settings.ledger.log_name), show)


def cmd_check_receipt(args: argparse.Namespace) -> int:
    from sdk.records import receipt_subject, subject_problem

    named = (args.intent_id, args.agent, args.intent_digest)
    if any(named) and not all(named):
        return _fail("name the intent whole: --intent-id, --agent and --intent-digest together (or none)")
    try:
        raw = sys.stdin.read() if args.receipt == "-" else Path(args.receipt).read_text()
        policy = Policy(
            NoteKey.from_vkey(args.log_key), tuple(NoteKey.from_vkey(w) for w in args.witness or ()), args.quorum
        )
        receipt = Receipt.parse(raw)
        checkpoint = check_receipt(receipt, policy)
        reason = None
    except OSError as exc:
        return _fail(f"cannot read the receipt: {exc}")
    except NoteError as exc:
        reason = str(exc)
    about = receipt_subject(raw) if reason is None else None
    expected = (args.intent_id, args.agent, args.intent_digest)
    if reason is None and any(expected):
        wrong = subject_problem(raw, expected)
        reason = None if wrong is None else str(wrong)
    if args.json:
        subject = None if about is None else dict(zip(("intent_id", "agent_id", "intent_digest"), about, strict=True))
        print_json({"ok": reason is None, "reason": reason, "about": subject}, compact=True)
    elif reason is None:
        event = receipt.event
        about_text = "" if about is None else f", about intent {about[0]} of agent {about[1]} (digest {about[2]})"
        print(
            f"OK: event {event['event_id']} ({event['action']}{about_text}) is leaf {receipt.index} of "
            f"{checkpoint.origin}, in its tree of {checkpoint.size} signed by the log and cosigned by at least "
            f"{policy.quorum} witness(es)"
        )
    else:
        print(f"FAILED: {reason}")
    return 0 if reason is None else 1


def _log_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-key",
        metavar="VKEY",
        help="the log's verifier key checkpoints are checked under (`warden audit log-key` prints it); "
        "default: this host's",
    )


def add_arguments(command: str, audit: argparse.ArgumentParser) -> None:
    """Register verify, the proof and receipt commands, and export, query and pubkey under ``warden audit``."""
    audit_subparsers = audit.add_subparsers(dest="audit_command", required=True)
    _add_verify_command(audit_subparsers)
    _add_proof_commands(audit_subparsers)
    _add_reading_commands(audit_subparsers)


def _add_verify_command(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``verify``: replay the chains, over a time range, with the witnesses and receipts to check."""
    p = audit_subparsers.add_parser("verify", help="replay the hash chains against the signed checkpoints")
    p.add_argument("--chain", type=int, help="verify only this chain (ledger partition)")
    p.add_argument("--since", help="only rows from this time on: 90d, 12h, or an ISO 8601 time")
    p.add_argument("--until", help="only rows before this time: 1d, or an ISO 8601 time")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--witness",
        action="append",
        metavar="VKEY",
        help="a witness's vkey whose stored cosignatures must verify over the checkpoints stored now; "
        "repeat (default: the witnesses of WARDEN_LEDGER_WITNESSES)",
    )
    p.add_argument(
        "--receipt", action="append", metavar="FILE", help="a receipt a client kept, checked against the store; repeat"
    )
    p.add_argument("--receipts", metavar="DIR", help="every file in DIR is a kept receipt to check")
    _log_key_option(p)
    p.set_defaults(handler=cmd_verify)


def _add_proof_commands(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """What an auditor checks offline and how it is made: inclusion proofs, the log's key, receipts
    and consistency proofs, each with its offline check."""
    p = audit_subparsers.add_parser("prove", help="print an inclusion proof (JSON) for one event")
    p.add_argument("event_id")
    p.set_defaults(handler=cmd_prove)

    p = audit_subparsers.add_parser("log-key", help="print the ledger's note key (vkey): for witnesses and auditors")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_log_key)

    p = audit_subparsers.add_parser(
        "receipt", help="print an event's receipt: a c2sp.org/tlog-proof with the witnesses' cosignatures"
    )
    p.add_argument("event_id")
    p.add_argument("--json", action="store_true", help="the receipt and its event as JSON")
    p.set_defaults(handler=cmd_receipt)

    p = audit_subparsers.add_parser(
        "check-receipt", help="check a receipt offline against the log's key and a witness policy"
    )
    p.add_argument("receipt", help="the receipt file, or - for standard input")
    p.add_argument("--log-key", required=True, help="the ledger's vkey (`warden audit log-key`)")
    p.add_argument("--witness", action="append", help="a witness's vkey (`warden witness key`); repeat")
    p.add_argument("--quorum", type=int, default=0, help="how many of those witnesses must have cosigned")
    p.add_argument("--intent-id", help="the receipt must be about this intent (with --agent and --intent-digest)")
    p.add_argument("--agent", help="... of this agent")
    p.add_argument("--intent-digest", help="... with this digest (the intent_digest its signed outcome names)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_check_receipt)

    p = audit_subparsers.add_parser("check-proof", help="check an inclusion proof offline")
    p.add_argument("proof", help="the proof file, or - for standard input")
    p.add_argument("--json", action="store_true")
    _log_key_option(p)
    p.set_defaults(handler=cmd_check_proof)

    p = audit_subparsers.add_parser(
        "consistency", help="print a consistency proof (JSON) between two signed checkpoints of a chain"
    )
    p.add_argument("--chain", type=int, required=True, help="the chain (ledger partition)")
    p.add_argument("old", type=int, help="rows the older checkpoint covers (its seq + 1)")
    p.add_argument("new", type=int, help="rows the newer checkpoint covers")
    p.set_defaults(handler=cmd_consistency)

    p = audit_subparsers.add_parser(
        "check-consistency", help="check offline that a newer checkpoint only added rows to an older one"
    )
    p.add_argument("proof", help="the proof file, or - for standard input")
    p.add_argument("--json", action="store_true")
    _log_key_option(p)
    p.set_defaults(handler=cmd_check_consistency)


def _add_reading_commands(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Reading the ledger itself: export for a SIEM, read-only SQL, and its public key."""
    p = audit_subparsers.add_parser("export", help="stream ledger rows for a SIEM")
    p.add_argument(
        "--format", choices=("csv", "json"), default="json", help="csv (with header) or json (one object per line)"
    )
    p.add_argument("--since", help="90d, 12h, or an ISO 8601 time")
    p.add_argument("--until", help="90d, 12h, or an ISO 8601 time")
    p.add_argument("--chain", type=int)
    p.set_defaults(handler=cmd_export)

    p = audit_subparsers.add_parser("query", help="run read-only SQL against the ledger")
    p.add_argument("sql")
    p.add_argument(
        "--format", default="PrettyCompactMonoBlock", help="any ClickHouse output format (default: %(default)s)"
    )
    p.set_defaults(handler=cmd_query)

    p = audit_subparsers.add_parser("pubkey", help="print the ledger's Ed25519 public key (hex)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_pubkey)
