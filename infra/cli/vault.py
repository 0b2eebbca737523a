"""``warden vault ...``: vaults and secrets from the command line, over ``signer.custody.Vaults``.

create, mode, put, get, list, deactivate, grant, revoke, cmek. Every command takes ``--org``
(default ``default``), ``--actor`` (default ``admin:local-admin``) and ``--json`` (one JSON
document on stdout). The vaults live in the file log ``$WARDEN_HOME/vault/events.jsonl``, shared
with the signer on this machine; what a command changes is also published to ``warden.vault``
and its audit records to ``warden.audit.events`` (a warning says so when the broker is down).

Exit codes: 0 done, 1 custody error (no such vault, immutable mode, authentication failed...),
2 usage error (a missing or malformed file, a bad option), 3 refused (the actor may not do
this; the refusal's audit record is still published). Who may see what is custody's to decide
(``signer.custody.access``); this module parses arguments and prints.

Key material never travels on the command line, where other users could read it in the
process list: secret values, client shares and customer-managed keys are read from files
(``-``: standard input). A client share is shown exactly once, when the vault is made.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from typing import Any, Callable

from infra.cli.custody import publish
from infra.cli.output import note as _note
from infra.cli.output import print_json as _print_json
from runtime.config import Settings, load
from signer.custody import (
    AGENT_KEYS_VAULT,
    CLIENT_MODES,
    MAX_SECRET_BYTES,
    MODES,
    SECRET_TYPES,
    AttestationRequired,
    CustodyError,
    InvalidKey,
    NotFound,
    PermissionDenied,
    fingerprint,
    parse_actor,
)
from signer.custody._crypto import KEY_BYTES, wipe
from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings

DEFAULT_ORG = "default"
DEFAULT_ACTOR = "admin:local-admin"
KEY_FILE_LIMIT = 4096

INVALID_KEY_HINT = (
    "Warden does not say which key failed to authenticate. Check the client share (--client-share-file: "
    "the one shown when this vault was created), the customer-managed key (--cmek-file, --current-key-file) "
    "and that WARDEN_ROOT_PROVIDER is the root of trust this vault was created under."
)


class UsageError(Exception):
    """The command cannot run as given (exit 2). The message names the option and the fix."""


# -- reading key material from files (never from argv) ---------------------------------------------


def _read_limited(spec: str, limit: int, flag: str) -> bytearray:
    """At most ``limit`` bytes from the file ``spec`` (``-``: standard input), read straight into
    a bytearray the caller wipes."""
    label = "standard input" if spec == "-" else spec
    if spec == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise UsageError(f"{flag} -: standard input is not readable as bytes here; give a file instead")
        if sys.stdin.isatty():
            _note(f"reading {flag.removeprefix('--')} from standard input; end it with Ctrl-D")
    else:
        try:
            stream = open(spec, "rb")
        except FileNotFoundError:
            raise UsageError(f"{flag} {spec}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{flag} {spec}: is a directory; give the file itself") from None
        except OSError as exc:
            raise UsageError(f"{flag} {spec}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    buf = bytearray(limit + 1)
    size = 0
    try:
        with memoryview(buf) as view:
            while size < len(buf):
                got = stream.readinto(view[size:])
                if not got:
                    break
                size += got
            if size > limit:
                raise UsageError(f"{flag} {label}: larger than {limit} bytes")
            return bytearray(view[:size])
    except OSError as exc:
        raise UsageError(f"{flag} {label}: cannot read it ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        wipe(buf)
        if spec != "-":
            stream.close()


def read_secret_value(spec: str) -> bytearray:
    value = _read_limited(spec, MAX_SECRET_BYTES, "--value-file")
    if not value:
        raise UsageError(
            f"--value-file {'standard input' if spec == '-' else spec}: empty; a secret is 1..{MAX_SECRET_BYTES} bytes"
        )
    if value.endswith(b"\n"):
        _note(
            "note: the value ends with a newline, which is stored as part of the secret "
            "(write the file with `printf %s` or `echo -n` to leave it out)"
        )
    return value


def _b64_32(raw: bytearray) -> bytearray | None:
    """The 32 bytes that ``raw`` holds as base64 text, or None if it is not that."""
    text = raw.strip()
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    finally:
        wipe(text)
    out = bytearray(decoded)
    if len(out) != KEY_BYTES:
        wipe(out)
        return None
    return out


def read_client_share(spec: str) -> bytearray:
    """A client share file (``-``: stdin): the base64 text shown when the vault was created."""
    raw = _read_limited(spec, KEY_FILE_LIMIT, "--client-share-file")
    try:
        share = _b64_32(raw)
    finally:
        wipe(raw)
    if share is None:
        raise UsageError(
            f"--client-share-file {'standard input' if spec == '-' else spec}: not a client share; "
            "expected the base64 text (44 characters) shown once when the vault was created"
        )
    return share


def read_cmek(spec: str, flag: str) -> bytearray:
    """A customer-managed key file: exactly 32 raw bytes, or those 32 bytes as base64 text."""
    raw = _read_limited(spec, KEY_FILE_LIMIT, flag)
    try:
        if len(raw) == KEY_BYTES:
            return bytearray(raw)
        key = _b64_32(raw)
    finally:
        wipe(raw)
    if key is None:
        raise UsageError(
            f"{flag} {'standard input' if spec == '-' else spec}: not a customer-managed key; "
            f"expected exactly {KEY_BYTES} raw bytes or their base64 (44 characters), e.g. "
            "`head -c 32 /dev/urandom > cmek.key`"
        )
    return key


def _create_exclusive(path: str, flag: str) -> int:
    """A new file for key material: 0600, and never an existing one (it may hold something else)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(
            f"{flag} {path}: already exists; Warden never overwrites a file here, so choose a new "
            "path (or remove the old file first)"
        ) from None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create it ({exc.strerror or exc.__class__.__name__})") from None


def _write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view) :]
    os.fsync(fd)


# -- the context every command runs in -------------------------------------------------------------


class _Context:
    def __init__(self, args: argparse.Namespace, settings: Settings):
        self.args = args
        self.settings = settings
        self.org: str = args.org
        self.actor: str = args.actor
        self.outbox = AuditOutbox()
        self.vault_events = VaultOutbox()
        self._vaults = None
        self._buffers: list[bytearray] = []
        self._cleanups: list[Callable[[], None]] = []

    @property
    def vaults(self):
        if self._vaults is None:
            self._vaults = keystore_from_settings(
                self.settings, audit=self.outbox, vault_outbox=self.vault_events
            ).vaults
        return self._vaults

    def keep(self, buf: bytearray) -> bytearray:
        """Wipe ``buf`` when the command ends, however it ends."""
        self._buffers.append(buf)
        return buf

    def on_failure(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` if the command fails before ``commit`` (e.g. remove a file made for its output)."""
        self._cleanups.append(undo)

    def commit(self) -> None:
        self._cleanups.clear()

    def new_output_file(self, path: str, flag: str) -> int:
        """A new 0600 file for key material, removed again if the command then fails."""
        fd = _create_exclusive(path, flag)

        def undo() -> None:
            os.close(fd)
            os.unlink(path)

        self.on_failure(undo)
        return fd

    def finish(self, failed: bool) -> None:
        for buf in self._buffers:
            wipe(buf)
        if failed:
            for undo in reversed(self._cleanups):
                undo()

    def load_cmeks(self, specs: list[str] | None) -> None:
        for spec in specs or ():
            key = self.keep(read_cmek(spec, "--cmek-file"))
            self.vaults.load_cmek(self.org, self.args.vault, key)

    def client_share(self, mode: str | None) -> bytearray | None:
        spec = self.args.client_share_file
        if spec is None:
            if mode in CLIENT_MODES:
                raise UsageError(
                    f"vault {self.args.vault!r} is in {mode}: every read and write needs its client "
                    "share; pass --client-share-file FILE (- for stdin), the file written when the "
                    "vault was created"
                )
            return None
        return self.keep(read_client_share(spec))


def cli_hint(message: str) -> str:
    """Custody's messages name the Python API where the CLI has a flag for it."""
    return message.replace(
        "load the vault's current customer-managed key first (Vaults.load_cmek)",
        "give the vault's current customer-managed key with --current-key-file FILE",
    ).replace("load it with Vaults.load_cmek", "pass it with --cmek-file FILE (32 raw bytes or base64)")


def _run(args: argparse.Namespace, body: Callable[[_Context], None]) -> int:
    name = f"warden vault {args.vault_command}"
    settings = load()
    ctx = _Context(args, settings)
    code = 0
    try:
        try:
            parse_actor(args.actor)
        except PermissionDenied as exc:
            raise UsageError(f"--actor: {exc}") from None
        stdin_users = [
            flag
            for flag, value in (
                ("--value-file", getattr(args, "value_file", None)),
                ("--client-share-file", getattr(args, "client_share_file", None)),
                ("--key-file", getattr(args, "key_file", None)),
                ("--current-key-file", getattr(args, "current_key_file", None)),
                *(("--cmek-file", spec) for spec in getattr(args, "cmek_file", None) or ()),
            )
            if value == "-"
        ]
        if len(stdin_users) > 1:
            raise UsageError(
                f"only one of {', '.join(stdin_users)} can read standard input (-); put the others in files"
            )
        body(ctx)
    except UsageError as exc:
        _note(f"{name}: {exc}")
        code = 2
    except (PermissionDenied, AttestationRequired) as exc:
        _note(f"{name}: refused: {exc}")
        code = 3
    except InvalidKey as exc:
        # The one opaque error: the same words whatever failed, so a caller probing keys learns nothing.
        _note(f"{name}: {exc}. {INVALID_KEY_HINT}")
        code = 1
    except CustodyError as exc:
        _note(f"{name}: {cli_hint(str(exc))}")
        code = 1
    finally:
        ctx.finish(failed=code != 0)
        publish(settings, ctx.vault_events.drain() + ctx.outbox.drain())
    return code


def _handler(body: Callable[[_Context], None]) -> Callable[[argparse.Namespace], int]:
    return lambda args: _run(args, body)


def _not_agent_keys(vault: str, what: str) -> None:
    if vault == AGENT_KEYS_VAULT:
        raise UsageError(
            f"vault {AGENT_KEYS_VAULT!r} holds the signing keys and is managed by `warden keys`; "
            f"{what} it with `warden vault` is refused"
        )


# -- commands ---------------------------------------------------------------------------------------


def _hand_over_share(ctx: _Context, share: str, mode: str, out_fd: int | None, doc: dict) -> None:
    """The one time a client share exists outside the client: into the --client-share-out file
    (created before the vault, so it cannot be lost to a taken path), else on stderr. Never in
    the --json document on stdout, which tends to be logged."""
    vault = ctx.args.vault
    where = None
    if out_fd is not None:
        path = ctx.args.client_share_out
        try:
            _write_all(out_fd, share.encode() + b"\n")
            where = f"written to {path} (mode 0600)"
            doc["client_share_written_to"] = path
        except OSError as exc:
            _note(f"could not write the client share to {path} ({exc.strerror}); showing it here instead")
        finally:
            os.close(out_fd)
    if where is None:
        _note(f"CLIENT SHARE for vault {vault!r} ({mode}), shown once: {share}")
        where = "printed above on stderr"
        doc["client_share_shown_on"] = "stderr"
    _note(
        f"Vault {vault!r} is in {mode}. Its client share is {where}. Warden keeps no copy: every read and "
        "write of this vault needs it (--client-share-file), and without it the secrets are lost. Keep it safe."
    )


def _set_mode_or_create(ctx: _Context, mode: str | None, create: bool) -> None:
    args = ctx.args
    _not_agent_keys(args.vault, "creating or changing" if create else "setting the mode of")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None
    out_fd = None
    if args.client_share_out is not None:
        if mode not in CLIENT_MODES:
            raise UsageError(
                f"--client-share-out is for the client-custody modes ({', '.join(sorted(CLIENT_MODES))}); "
                f"mode {mode or 'none'} has no client share"
            )
        out_fd = ctx.new_output_file(args.client_share_out, "--client-share-out")
    if create:
        try:
            share = ctx.vaults.create_vault(ctx.org, args.vault, actor=ctx.actor, mode=mode, providers=providers)
        except CustodyError:
            if (
                mode is not None
                and ctx.vaults.has_vault(ctx.org, args.vault)
                and ctx.vaults.mode(ctx.org, args.vault) is None
            ):
                _note(
                    f"note: vault {args.vault!r} was created, but without a custody mode; once the problem below "
                    f"is fixed, set one with `warden vault mode --vault {args.vault} --mode {mode}`"
                )
            raise
    else:
        share = ctx.vaults.set_mode(ctx.org, args.vault, mode, actor=ctx.actor, providers=providers)
    ctx.commit()  # the share file now belongs to the vault
    doc: dict[str, Any] = {"org": ctx.org, "vault": args.vault, "mode": mode}
    if share is not None:
        _hand_over_share(ctx, share, mode, out_fd, doc)
    if args.json:
        _print_json(doc)
    elif mode is None:
        print(
            f"created vault {args.vault!r} in org {ctx.org!r} with no custody mode yet; set one with "
            f"`warden vault mode --vault {args.vault} --mode <{'|'.join(MODES)}>` before storing secrets"
        )
    else:
        print(
            f"{'created vault' if create else 'vault'} {args.vault!r} in org {ctx.org!r}: custody mode {mode}"
            + (" (immutable)" if not create else "")
        )


def cmd_create(ctx: _Context) -> None:
    _set_mode_or_create(ctx, None if ctx.args.mode == "none" else ctx.args.mode, create=True)


def cmd_mode(ctx: _Context) -> None:
    _set_mode_or_create(ctx, ctx.args.mode, create=False)


def cmd_put(ctx: _Context) -> None:
    args = ctx.args
    _not_agent_keys(args.vault, "writing to")
    value = ctx.keep(read_secret_value(args.value_file))
    share = ctx.client_share(ctx.vaults.mode(ctx.org, args.vault))
    ctx.load_cmeks(args.cmek_file)
    version = ctx.vaults.write_secret(
        ctx.org, args.vault, args.path, value, args.type, actor=ctx.actor, client_share=share
    )
    doc = {"org": ctx.org, "vault": args.vault, "path": args.path, "version": version, "secret_type": args.type}
    if args.json:
        _print_json(doc)
    else:
        print(f"stored {args.path} version {version} ({args.type}) in vault {args.vault!r}")


def _versions_at(ctx: _Context, path: str, actor: str) -> list:
    return [info for info in ctx.vaults.list_secrets(ctx.org, ctx.args.vault, path, actor=actor) if info.path == path]


def cmd_get(ctx: _Context) -> None:
    args = ctx.args
    share = ctx.client_share(ctx.vaults.mode(ctx.org, args.vault))
    ctx.load_cmeks(args.cmek_file)
    out_fd = None
    if args.out is not None:
        out_fd = ctx.new_output_file(args.out, "--out")
    # The vault judges the read before it decrypts anything (an agent's grant, the Intents API,
    # never a signing key to anyone) and audits each refusal.
    with ctx.vaults.reveal(ctx.org, args.vault, args.path, args.version, actor=ctx.actor, client_share=share) as (
        info,
        plaintext,
    ):
        doc: dict[str, Any] = {
            "org": ctx.org,
            "vault": args.vault,
            "path": args.path,
            "version": info.version,
            "secret_type": info.secret_type,
        }
        if out_fd is not None:
            _write_all(out_fd, plaintext)
            os.close(out_fd)
            ctx.commit()
            doc["written_to"] = args.out
            if args.json:
                _print_json(doc)
            else:
                _note(f"wrote {args.path} version {doc['version']} to {args.out} (mode 0600)")
            return
        if args.json:
            try:
                doc["value"] = plaintext.decode()
            except UnicodeDecodeError:
                doc["value_base64"] = base64.b64encode(plaintext).decode()
            _print_json(doc)
            return
        # The value byte for byte (a newline is added only for a terminal), so it pipes cleanly.
        sys.stdout.flush()
        tty = sys.stdout.isatty() and not plaintext.endswith(b"\n")
        stream = getattr(sys.stdout, "buffer", None)
        if stream is None:  # a text-only stdout (some embeddings): the closest it can take
            sys.stdout.write(plaintext.decode(errors="replace") + ("\n" if tty else ""))
            sys.stdout.flush()
            return
        stream.write(plaintext)
        if tty:
            stream.write(b"\n")
        stream.flush()


def cmd_list(ctx: _Context) -> None:
    args = ctx.args
    infos = ctx.vaults.list_secrets(ctx.org, args.vault, args.prefix, actor=ctx.actor)
    rows = [
        {
            "path": i.path,
            "version": i.version,
            "secret_type": i.secret_type,
            "active": i.active,
            "created_at": i.created_at.isoformat(),
            "created_by": i.created_by,
            "cmek_fingerprint": i.cmek_fingerprint,
            "development": i.development,
            "public": i.public,
        }
        for i in infos
    ]
    if args.json:
        _print_json(
            {
                "org": ctx.org,
                "vault": args.vault,
                "mode": ctx.vaults.mode(ctx.org, args.vault),
                "prefix": args.prefix,
                "secrets": rows,
            }
        )
        return
    if not rows:
        where = f" under {args.prefix!r}" if args.prefix else ""
        _note(f"vault {args.vault!r} holds no secrets{where}")
        return
    width = max(len("PATH"), *(len(r["path"]) for r in rows))
    print(f"{'PATH':{width}}  VERSION  {'TYPE':11}  ACTIVE  {'CREATED_AT':32}  CREATED_BY")
    for r in rows:
        print(
            f"{r['path']:{width}}  {r['version']:>7}  {r['secret_type']:11}  {'yes' if r['active'] else 'no':6}  "
            f"{r['created_at']:32}  {r['created_by']}" + ("  (CMEK)" if r["cmek_fingerprint"] else "")
        )


def cmd_deactivate(ctx: _Context) -> None:
    args = ctx.args
    _not_agent_keys(args.vault, "deactivating keys in")
    done = ctx.vaults.deactivate(ctx.org, args.vault, args.path, args.version, actor=ctx.actor)
    if not done and not _versions_at(ctx, args.path, ctx.actor):
        raise NotFound(
            f"no secret at {args.path!r} in vault {args.vault!r}; `warden vault list --vault "
            f"{args.vault}` shows what is there"
        )
    if args.json:
        _print_json({"org": ctx.org, "vault": args.vault, "path": args.path, "deactivated_versions": done})
    elif done:
        print(f"deactivated {args.path} version(s) {', '.join(map(str, done))} in vault {args.vault!r}")
    else:
        print(
            f"nothing to do: {args.path} has no active version"
            + (f" {args.version}" if args.version is not None else "")
            + f" in vault {args.vault!r}"
        )


def _agent_id(text: str) -> str:
    kind, sep, ident = text.partition(":")
    if not sep:
        ident = text
    elif kind != "agent":
        raise UsageError(f"--agent {text!r}: give the agent's id (or agent:<id>); grants are for agents only")
    if not ident:
        raise UsageError("--agent: empty agent id")
    return ident


def _grant(ctx: _Context, granted: bool) -> None:
    args = ctx.args
    _not_agent_keys(args.vault, "granting access to")
    agent = _agent_id(args.agent)
    ctx.vaults.grant(ctx.org, args.vault, agent, args.prefix, actor=ctx.actor, granted=granted)
    where = repr(args.prefix) if args.prefix else "the whole vault"
    if args.json:
        _print_json({"org": ctx.org, "vault": args.vault, "agent_id": agent, "prefix": args.prefix, "granted": granted})
    elif granted:
        print(f"agent {agent!r} may read secrets under {where} in vault {args.vault!r}")
    else:
        print(
            f"agent {agent!r} no longer holds the grant on {where} in vault {args.vault!r} "
            "(grants on other prefixes still apply)"
        )


def cmd_grant(ctx: _Context) -> None:
    _grant(ctx, True)


def cmd_revoke(ctx: _Context) -> None:
    _grant(ctx, False)


def cmd_cmek(ctx: _Context) -> None:
    args = ctx.args
    new = ctx.keep(read_cmek(args.key_file, "--key-file"))
    current = ctx.keep(read_cmek(args.current_key_file, "--current-key-file")) if args.current_key_file else None
    vaults = ctx.vaults
    if current is not None:
        vaults.load_cmek(ctx.org, args.vault, current)
    new_fp = fingerprint(new)
    try:
        todo = sum(1 for i in vaults.list_secrets(ctx.org, args.vault, actor=ctx.actor) if i.cmek_fingerprint != new_fp)
    except CustodyError:
        todo = None  # set_cmek below says why (an agent, no such vault)

    def progress(done: int) -> None:
        _note(f"cmek: re-wrapped {done}" + (f"/{todo}" if todo else "") + " secret version(s)")

    fp = vaults.set_cmek(ctx.org, args.vault, new, actor=ctx.actor, between_batches=progress)
    doc = {
        "org": ctx.org,
        "vault": args.vault,
        "fingerprint": fp,
        "previous_fingerprint": fingerprint(current) if current is not None else None,
    }
    if args.json:
        _print_json(doc)
    else:
        print(f"vault {args.vault!r}: customer-managed key fingerprint {fp}")
        if args.vault == AGENT_KEYS_VAULT:
            _note(
                "every signature now needs this key in the intent, sealed to the signer: "
                "`warden submit --cmek-file FILE` (SDK: Client.cmek); `warden keys` writes need --cmek-file too"
            )
        else:
            _note("reads and writes of this vault now need the key: --cmek-file FILE")


def cmd_require_attestation(ctx: _Context) -> None:
    args = ctx.args
    changed = ctx.vaults.require_attestation(ctx.org, args.vault, actor=ctx.actor)
    doc = {"org": ctx.org, "vault": args.vault, "attestation_required": True, "changed": changed}
    if args.json:
        _print_json(doc)
    elif changed:
        print(
            f"vault {args.vault!r} now releases its key only to a signer with a verified SEV-SNP report "
            "(WARDEN_ATTESTATION_MEASUREMENTS lists the images allowed); this cannot be undone"
        )
    else:
        print(f"vault {args.vault!r} already requires attestation")


# -- parser -----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("versions start at 1")
    return value


def add_arguments(command: str, vault: argparse.ArgumentParser) -> None:
    """Register create, mode, put, get, list, deactivate, grant, revoke and cmek under ``warden vault``."""
    sub = vault.add_subparsers(dest="vault_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one machine-readable JSON document on stdout")
    common.add_argument("--org", default=DEFAULT_ORG, help=f"organisation (default {DEFAULT_ORG})")
    common.add_argument(
        "--actor",
        default=DEFAULT_ACTOR,
        help=f'who asks: "admin:<key id>", "agent:<id>" or "service:<name>" (default {DEFAULT_ACTOR})',
    )
    common.add_argument("--vault", required=True, help="the vault's name")
    share_in = argparse.ArgumentParser(add_help=False)
    share_in.add_argument(
        "--client-share-file",
        metavar="FILE",
        help="client-custody vaults: the file holding the client share (- for stdin)",
    )
    cmek_in = argparse.ArgumentParser(add_help=False)
    cmek_in.add_argument(
        "--cmek-file",
        metavar="FILE",
        action="append",
        help="vaults with a customer-managed key: the file holding it (32 raw bytes or base64; "
        "- for stdin); give both keys during an unfinished rotation",
    )
    share_out = argparse.ArgumentParser(add_help=False)
    share_out.add_argument(
        "--providers", help="comma-separated root providers to spread the KEK over (default: the first configured ones)"
    )
    share_out.add_argument(
        "--client-share-out",
        metavar="FILE",
        help="client-custody modes: write the client share to this new file (0600) instead of showing it on stderr",
    )

    def command(name: str, body: Callable[[_Context], None], help_: str, *parents) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common, *parents])
        p.set_defaults(handler=_handler(body))
        return p

    p = command("create", cmd_create, "create a vault and set its custody mode (admins)", share_out)
    p.add_argument(
        "--mode",
        choices=(*MODES, "none"),
        default="standard",
        help="custody mode, immutable once set (default standard; none: set it later with "
        "`warden vault mode`). Client modes show the client share once.",
    )

    p = command("mode", cmd_mode, "set the custody mode of a vault created without one (once only; admins)", share_out)
    p.add_argument("--mode", choices=MODES, required=True)

    command(
        "require-attestation",
        cmd_require_attestation,
        "release the vault's key only to an attested signer from now on (immutable; admins)",
    )

    p = command(
        "put", cmd_put, "store a new version of a secret (admins); prints its path and version", share_in, cmek_in
    )
    p.add_argument("--path", required=True, help="e.g. services/stripe/api_key")
    p.add_argument("--type", required=True, choices=SECRET_TYPES, help="the secret's type")
    p.add_argument(
        "--value-file",
        required=True,
        metavar="FILE",
        help="file holding the value, stored byte for byte (- for stdin); never on the command line",
    )

    p = command(
        "get", cmd_get, "print a secret (never private_key or ssh_key: the signer uses those)", share_in, cmek_in
    )
    p.add_argument("--path", required=True)
    p.add_argument("--version", type=_positive_int, help="default: the newest active version")
    p.add_argument("--out", metavar="FILE", help="write the value to this new file (0600) instead of stdout")

    p = command("list", cmd_list, "list secret versions and their metadata, never values (admins, services)")
    p.add_argument("--prefix", default="", help="only paths under this prefix")

    p = command("deactivate", cmd_deactivate, "deactivate a secret version, or every active one (admins)")
    p.add_argument("--path", required=True)
    p.add_argument("--version", type=_positive_int, help="default: every active version")

    for name, body, help_ in (
        ("grant", cmd_grant, "let an agent read the secrets under a prefix (admins)"),
        ("revoke", cmd_revoke, "withdraw an agent's grant on a prefix (admins)"),
    ):
        p = command(name, body, help_)
        p.add_argument("--agent", required=True, help="the agent's id")
        p.add_argument(
            "--prefix", required=True, help='path prefix, matched on "/" boundaries ("" for the whole vault)'
        )

    p = command("cmek", cmd_cmek, "set or rotate the vault's customer-managed key (admins); prints its fingerprint")
    p.add_argument(
        "--key-file",
        required=True,
        metavar="FILE",
        help="the new key: a file of exactly 32 raw bytes, or their base64 text (- for stdin)",
    )
    p.add_argument(
        "--current-key-file", metavar="FILE", help="rotating: the vault's current key, same format (- for stdin)"
    )
