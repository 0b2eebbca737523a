"""``warden vault`` commands on the secrets in a vault: put, get, list and deactivate.

Values are read from files and written byte for byte; ``get`` never shows key material
(custody refuses it, and audits the refusal, before anything is decrypted).
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

from infra.cli.custody import read_secret_value, write_all
from infra.cli.output import note as _note
from infra.cli.output import print_json as _print_json
from infra.cli.vault_run import VaultCommandContext, not_agent_keys
from signer.custody import NotFound


def cmd_put(ctx: VaultCommandContext) -> None:
    args = ctx.args
    not_agent_keys(args.vault, "writing to")
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


def _versions_at(ctx: VaultCommandContext, path: str, actor: str) -> list[Any]:
    return [info for info in ctx.vaults.list_secrets(ctx.org, ctx.args.vault, path, actor=actor) if info.path == path]


def cmd_get(ctx: VaultCommandContext) -> None:
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
            write_all(out_fd, plaintext)
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


def cmd_list(ctx: VaultCommandContext) -> None:
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
    width = max(len("PATH"), *(len(str(r["path"])) for r in rows))
    print(f"{'PATH':{width}}  VERSION  {'TYPE':11}  ACTIVE  {'CREATED_AT':32}  CREATED_BY")
    for r in rows:
        print(
            f"{r['path']:{width}}  {r['version']:>7}  {r['secret_type']:11}  {'yes' if r['active'] else 'no':6}  "
            f"{r['created_at']:32}  {r['created_by']}" + ("  (CMEK)" if r["cmek_fingerprint"] else "")
        )


def cmd_deactivate(ctx: VaultCommandContext) -> None:
    args = ctx.args
    not_agent_keys(args.vault, "deactivating keys in")
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
