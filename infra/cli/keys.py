"""``warden keys``: the agents' signing keys, provisioned, listed, rotated or deactivated (admins)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Any

from btc import addresses, wallet
from infra.cli.custody import WAIT_HELP, WAIT_S, UsageError, cli_hint, publish, read_client_share_text, read_cmek
from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.config import load
from runtime.registry import REGISTRY
from schemas.chains import UnknownChain
from sdk.vault_creation import vault_creation_pending
from signer.chain_keys import KEY_CHAINS
from signer.custody import AGENT_KEYS_VAULT, CLIENT_MODES
from signer.custody.errors import AttestationRequired, CustodyError, InvalidKey, PermissionDenied
from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings

if TYPE_CHECKING:
    from signer.custody.keys import KeyStore


def cmd_keys(args: argparse.Namespace) -> int:
    name = f"warden keys {args.action}"
    required = {"list": (), "provision-signer": ("chain",)}.get(args.action, ("agent", "chain"))
    missing = [f"--{option}" for option in required if not getattr(args, option)]
    if missing:
        return fail(name, f"{' and '.join(missing)} required", 2)
    if args.chain is not None:
        try:
            args.chain = key_chain(args.chain)
        except UsageError as exc:
            return fail(name, exc, 2)
    settings = load()
    outbox, vault_events = AuditOutbox(), VaultOutbox()
    try:
        share = None if args.client_share_file is None else read_client_share_text(args.client_share_file)
    except (ValueError, OSError) as exc:
        return fail(name, exc, 2)
    doc: dict[str, Any] | list[dict[str, Any]]  # one key's record, or the list's rows
    try:
        store = keystore_from_settings(settings, audit=outbox, vault_outbox=vault_events)
        if args.cmek_file is not None:
            try:
                cmek = read_cmek(args.cmek_file, "--cmek-file")
            except UsageError as exc:
                return fail(name, exc, 2)
            try:
                store.vaults.load_cmek("default", AGENT_KEYS_VAULT, cmek)
            finally:
                cmek[:] = bytes(len(cmek))
        pending = (
            None
            if args.action == "list"
            else vault_creation_pending(settings, store.vaults, store.org, AGENT_KEYS_VAULT)
        )
        if pending is not None:
            return fail(name, pending, 1)
        doc = _run_action(store, args, share)
    except (PermissionDenied, AttestationRequired) as exc:
        note(f"{name}: refused: {exc}")
        publish(settings, outbox.drain(), args.wait)
        return 3
    except InvalidKey:
        return fail(name, f"{InvalidKey()}: {_unwrap_hint(store)}")
    except CustodyError as exc:
        return fail(name, cli_hint(str(exc)))
    publish(settings, vault_events.drain() + outbox.drain(), args.wait)
    if isinstance(doc, dict):  # a list has no client share
        created_share = doc.pop("client_share", None)
        if created_share is not None:
            _hand_over_client_share(created_share, args.client_share_out, settings.key_mode, doc)
    _print_keys(doc, args.json)
    return 0


def key_chain(name: str) -> str:
    """The key chain ``--chain`` names: a key chain itself (``ethereum``), or a network of the
    registry (``anvil``, ``base``, ``solana-local``), which signs with its family's key chain."""
    if name in KEY_CHAINS:
        return name
    try:
        network = REGISTRY.get(name)
    except UnknownChain:
        raise UsageError(
            f"--chain {name!r} is neither a key chain nor a network Warden knows; give a key chain "
            f"({', '.join(KEY_CHAINS)}) or a network that signs with one (`warden chains` lists them: "
            f"anvil and every EVM network sign with ethereum)"
        ) from None
    note(f"network {name} signs with the {network.key_chain} key chain: --chain {network.key_chain}")
    return network.key_chain


def _run_action(store: KeyStore, args: argparse.Namespace, share: str | None) -> dict[str, Any] | list[dict[str, Any]]:
    """Do what ``args.action`` names on the key store: one key's record, or the list's rows."""
    actor = args.actor
    if args.action == "provision":
        return _with_networks(
            dataclasses.asdict(store.provision(args.agent, args.chain, actor=actor, client_share=share))
        )
    if args.action == "provision-signer":
        return _with_networks(dataclasses.asdict(store.provision_signer(args.chain, actor=actor, client_share=share)))
    if args.action == "rotate":
        return _with_networks(dataclasses.asdict(store.rotate(args.agent, args.chain, actor=actor, client_share=share)))
    if args.action == "deactivate":
        return {
            "agent_id": args.agent,
            "chain": args.chain,
            "deactivated_versions": store.deactivate(args.agent, args.chain, actor=actor, version=args.version),
        }
    return [
        _with_networks({**dataclasses.asdict(k), "created_at": k.created_at.isoformat()})
        for k in store.list_keys(actor, agent_id=args.agent, chain=args.chain)
    ]


def _with_networks(row: dict[str, Any]) -> dict[str, Any]:
    """A Bitcoin key's record with its addresses on each Bitcoin network (``address`` is its mainnet
    P2WPKH one): network → [P2WPKH, P2TR], the two the signer signs for there."""
    if row.get("chain") != "bitcoin":
        return row
    public_key = bytes.fromhex(row["public_key_hex"])
    networks = {name: list(wallet.addresses(public_key, net)) for name, net in addresses.NETWORK_OF_CHAIN.items()}
    return {**row, "networks": networks}


def _unwrap_hint(store: KeyStore) -> str:
    """Why the signing-key vault's key did not unwrap: what it needs that was not given (the client
    share, the customer-managed key), or a root of trust's refusal when it needs neither."""
    mode = store.vaults.mode("default", AGENT_KEYS_VAULT)
    needs: list[str] = []
    if mode in CLIENT_MODES:
        needs.append(f"the client share shown when it was created (it is in {mode}; --client-share-file)")
    if store.vaults.cmek_fingerprint("default", AGENT_KEYS_VAULT) is not None:
        needs.append("its current customer-managed key (--cmek-file)")
    if needs:
        return "the signing-key vault needs " + " and ".join(needs)
    return "a root of trust refused to unwrap the vault key"


def _print_keys(doc: dict[str, Any] | list[dict[str, Any]], as_json: bool) -> None:
    """Print one key's record or the list's rows: one JSON document, or ``name=value`` lines (a
    listed key's public key left out)."""
    if as_json:
        print_json(doc)
    elif isinstance(doc, list):
        for row in doc:
            print("  ".join(f"{k}={_text(v)}" for k, v in row.items() if k != "public_key_hex"))
    else:
        print("  ".join(f"{k}={_text(v)}" for k, v in doc.items()))


def _text(value: object) -> str:
    """A field as the ``name=value`` line shows it: a Bitcoin key's networks as
    ``network:p2wpkh,p2tr`` each."""
    if isinstance(value, dict):
        return " ".join(f"{name}:{','.join(found)}" for name, found in value.items())
    return str(value)


def _hand_over_client_share(share: str, out: str | None, mode: str, doc: dict[str, Any]) -> None:
    """The one time the client share exists outside the client: write it to ``out`` (0600) or
    show it on stderr, never in the ``--json`` document on stdout, which tends to be logged."""
    if out is not None:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(share + "\n")
        doc["client_share_written_to"] = out
        where = f"written to {out} (mode 0600)"
    else:
        note(f"CLIENT SHARE ({mode}), shown once: {share}")
        where = "printed above on stderr"
    note(
        f"The signing-key vault was created in {mode}. Its client share is {where}. Warden keeps no copy, "
        "and cannot sign or add keys without it (--client-share-file): keep it safe."
    )


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    p.set_defaults(handler=cmd_keys)
    add_json_flag(p)
    p.add_argument("action", choices=("provision", "provision-signer", "list", "rotate", "deactivate"))
    p.add_argument("--agent", help="required except for list and provision-signer (the shared keys/{chain}-signer)")
    p.add_argument("--version", type=int, help="deactivate: one version (default: every active one)")
    p.add_argument("--wait", type=float, default=WAIT_S, help=WAIT_HELP)
    p.add_argument(
        "--chain",
        help="ethereum, bitcoin, solana, xrp, cardano or tron, or a network that signs with one "
        "(anvil, base, ...: ethereum; solana-local: solana); default for list: all",
    )
    p.add_argument("--actor", default="admin:local-admin", help='who asks: "admin:<id>" or "agent:<id>"')
    p.add_argument("--client-share-file", help="client-custody vaults: file holding the client share (- for stdin)")
    p.add_argument(
        "--cmek-file",
        help="the signing-key vault's customer-managed key, if it has one (32 raw bytes or base64), for writes",
    )
    p.add_argument(
        "--client-share-out",
        help="when this call creates a client-custody vault: write its client "
        "share to this new file (0600) instead of showing it on stderr",
    )
