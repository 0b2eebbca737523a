"""``warden vault`` commands that change a vault itself (admins): create, mode,
require-attestation, grant, revoke and cmek.

A client share exists outside the client exactly once, when its vault is made: it goes to a
new 0600 file (``--client-share-out``) or to stderr, never into the ``--json`` document.
"""

from __future__ import annotations

import os
from typing import Any

from infra.cli.custody import UsageError, read_cmek, write_all
from infra.cli.output import note as _note
from infra.cli.output import print_json as _print_json
from infra.cli.vault_run import VaultCommandContext, not_agent_keys
from signer.custody import AGENT_KEYS_VAULT, CLIENT_MODES, MODES, CustodyError, fingerprint
from signer.custody.modes import mode_named


def _hand_over_share(
    ctx: VaultCommandContext, share: str, mode: str | None, out_fd: int | None, doc: dict[str, Any]
) -> None:
    """The one time a client share exists outside the client: into the --client-share-out file
    (created before the vault, so it cannot be lost to a taken path), else on stderr. Never in
    the --json document on stdout, which tends to be logged. ``mode`` is only named: only a
    client-custody mode makes a share, but a share is handed over whatever the mode says, as
    without it the vault's secrets are lost."""
    vault = ctx.args.vault
    where = None
    if out_fd is not None:
        path = ctx.args.client_share_out
        try:
            write_all(out_fd, share.encode() + b"\n")
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


def _set_mode_or_create(ctx: VaultCommandContext, name: str | None, create: bool) -> None:
    mode = None if name is None else mode_named(name)
    args = ctx.args
    not_agent_keys(args.vault, "creating or changing" if create else "setting the mode of")
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
        if mode is None:
            raise UsageError(f"give the mode to set: --mode, one of {', '.join(MODES)}")
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


def cmd_create(ctx: VaultCommandContext) -> None:
    _set_mode_or_create(ctx, None if ctx.args.mode == "none" else ctx.args.mode, create=True)


def cmd_mode(ctx: VaultCommandContext) -> None:
    _set_mode_or_create(ctx, ctx.args.mode, create=False)


def _agent_id(text: str) -> str:
    kind, sep, ident = text.partition(":")
    if not sep:
        ident = text
    elif kind != "agent":
        raise UsageError(f"--agent {text!r}: give the agent's id (or agent:<id>); grants are for agents only")
    if not ident:
        raise UsageError("--agent: empty agent id")
    return ident


def _grant(ctx: VaultCommandContext, granted: bool) -> None:
    args = ctx.args
    not_agent_keys(args.vault, "granting access to")
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


def cmd_grant(ctx: VaultCommandContext) -> None:
    _grant(ctx, True)


def cmd_revoke(ctx: VaultCommandContext) -> None:
    _grant(ctx, False)


def cmd_cmek(ctx: VaultCommandContext) -> None:
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


def cmd_require_attestation(ctx: VaultCommandContext) -> None:
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
