"""``warden vault ...``: vaults and secrets from the command line, over ``signer.custody.Vaults``.

create, mode, put, get, list, deactivate, grant, revoke, cmek. Every command takes ``--org``
(default ``default``), ``--actor`` (default ``admin:local-admin``) and ``--json`` (one JSON
document on stdout). The vaults live in the file log ``$WARDEN_HOME/vault/events.jsonl``, shared
with the signer on this machine; what a command changes is also published to ``warden.vault``
and its audit records to ``warden.audit.events`` (a warning says so when the broker is down).

Exit codes: 0 done, 1 custody error (no such vault, immutable mode, authentication failed...),
2 usage error (a missing or malformed file, a bad option), 3 refused (the actor may not do
this; the refusal's audit record is still published). Who may see what is custody's to decide
(``signer.custody.access``). This module declares the commands and their arguments;
``vault_admin`` (create, mode, require-attestation, grant, revoke, cmek) and ``vault_secrets``
(put, get, list, deactivate) run them, in the context ``vault_run`` gives every command.

Key material never travels on the command line, where other users could read it in the
process list: secret values, client shares and customer-managed keys are read from files
(``-``: standard input). A client share is shown exactly once, when the vault is made.
"""

from __future__ import annotations

import argparse
from typing import Callable

from infra.cli.custody import WAIT_HELP, WAIT_S
from infra.cli.vault_admin import cmd_cmek, cmd_create, cmd_grant, cmd_mode, cmd_require_attestation, cmd_revoke
from infra.cli.vault_run import VaultCommandContext, handler
from infra.cli.vault_secrets import cmd_deactivate, cmd_get, cmd_list, cmd_put
from signer.custody import MODES, SECRET_TYPES

DEFAULT_ORG = "default"
DEFAULT_ACTOR = "admin:local-admin"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("versions start at 1")
    return value


# A subcommand's parser, made by ``add_arguments``'s ``subcommand``: its name, what runs it, its
# help line and the option groups it takes beside the common ones.
Subcommand = Callable[..., argparse.ArgumentParser]


def add_arguments(command: str, vault: argparse.ArgumentParser) -> None:
    """Register create, mode, put, get, list, deactivate, grant, revoke and cmek under ``warden vault``."""
    sub = vault.add_subparsers(dest="vault_command", required=True)
    common = _common_options()
    share_in, cmek_in, share_out = _key_material_options()

    def subcommand(
        name: str, body: Callable[[VaultCommandContext], None], help_: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common, *parents])
        p.set_defaults(handler=handler(body))
        return p

    _add_vault_commands(subcommand, share_out)
    _add_secret_commands(subcommand, share_in, cmek_in)
    _add_access_commands(subcommand)


def _common_options() -> argparse.ArgumentParser:
    """The options every vault command takes: --json, --org, --wait, --actor and --vault."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one machine-readable JSON document on stdout")
    common.add_argument("--org", default=DEFAULT_ORG, help=f"organisation (default {DEFAULT_ORG})")
    common.add_argument("--wait", type=float, default=WAIT_S, help=WAIT_HELP)
    common.add_argument(
        "--actor",
        default=DEFAULT_ACTOR,
        help=f'who asks: "admin:<key id>", "agent:<id>" or "service:<name>" (default {DEFAULT_ACTOR})',
    )
    common.add_argument("--vault", required=True, help="the vault's name")
    return common


def _key_material_options() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The files key material is read from or written to, as parent parsers: the client share
    read in, the customer-managed key read in, and where a new client share goes."""
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
    return share_in, cmek_in, share_out


def _add_vault_commands(subcommand: Subcommand, share_out: argparse.ArgumentParser) -> None:
    """The vault's own settings: create, mode and require-attestation."""
    p = subcommand("create", cmd_create, "create a vault and set its custody mode (admins)", share_out)
    p.add_argument(
        "--mode",
        choices=(*MODES, "none"),
        default="standard",
        help="custody mode, immutable once set (default standard; none: set it later with "
        "`warden vault mode`). Client modes show the client share once.",
    )

    p = subcommand(
        "mode", cmd_mode, "set the custody mode of a vault created without one (once only; admins)", share_out
    )
    p.add_argument("--mode", choices=MODES, required=True)

    subcommand(
        "require-attestation",
        cmd_require_attestation,
        "release the vault's key only to an attested signer from now on (immutable; admins)",
    )


def _add_secret_commands(
    subcommand: Subcommand, share_in: argparse.ArgumentParser, cmek_in: argparse.ArgumentParser
) -> None:
    """The secrets: put, get, list and deactivate."""
    p = subcommand(
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

    p = subcommand(
        "get", cmd_get, "print a secret (never private_key or ssh_key: the signer uses those)", share_in, cmek_in
    )
    p.add_argument("--path", required=True)
    p.add_argument("--version", type=_positive_int, help="default: the newest active version")
    p.add_argument("--out", metavar="FILE", help="write the value to this new file (0600) instead of stdout")

    p = subcommand("list", cmd_list, "list secret versions and their metadata, never values (admins, services)")
    p.add_argument("--prefix", default="", help="only paths under this prefix")

    p = subcommand("deactivate", cmd_deactivate, "deactivate a secret version, or every active one (admins)")
    p.add_argument("--path", required=True)
    p.add_argument("--version", type=_positive_int, help="default: every active version")


def _add_access_commands(subcommand: Subcommand) -> None:
    """Who may read, and under which key: grant, revoke and cmek."""
    for name, body, help_ in (
        ("grant", cmd_grant, "let an agent read the secrets under a prefix (admins)"),
        ("revoke", cmd_revoke, "withdraw an agent's grant on a prefix (admins)"),
    ):
        p = subcommand(name, body, help_)
        p.add_argument("--agent", required=True, help="the agent's id")
        p.add_argument(
            "--prefix", required=True, help='path prefix, matched on "/" boundaries ("" for the whole vault)'
        )

    p = subcommand("cmek", cmd_cmek, "set or rotate the vault's customer-managed key (admins); prints its fingerprint")
    p.add_argument(
        "--key-file",
        required=True,
        metavar="FILE",
        help="the new key: a file of exactly 32 raw bytes, or their base64 text (- for stdin)",
    )
    p.add_argument(
        "--current-key-file", metavar="FILE", help="rotating: the vault's current key, same format (- for stdin)"
    )
