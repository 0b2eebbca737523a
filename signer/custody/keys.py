"""Signing keys for agents: provision, list, rotate, deactivate, open for signing.

Keys are ``private_key`` secrets in the ``__agent-keys`` vault at
``agents/{agent_id}/chains/{chain}/private_key`` (an agent's own key) or
``keys/{chain}-signer`` (a shared signer key). Every management operation is for
admins; agents get ``PermissionDenied``. The signer opens a key with
``open_private_key``, a context manager whose bytearray is wiped on exit, and
finds which key to use with ``resolve_signing_path``. Addresses and public keys
are stored beside the ciphertext as public metadata, so listing never decrypts.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from runtime.registry import REGISTRY
from schemas.chains import UnknownChain
from signer import chain_keys
from signer.custody._crypto import wipe
from signer.custody.access import AGENT_KEYS_VAULT, parse_actor
from signer.custody.errors import Conflict, CustodyError, NotFound, PermissionDenied
from signer.custody.modes import CLIENT_MODES, Mode
from signer.custody.names import check_path, prefix_covers
from signer.custody.vault import Vaults

DEFAULT_ORG = "default"
DEFAULT_ALLOWED_PREFIXES: tuple[str, ...] = ("agents/", "keys/")
SIGNER_ACTOR = "service:signer"

_AGENT_PATH_RE = re.compile(r"^agents/([^/]+)/chains/([^/]+)/")
_SIGNER_PATH_RE = re.compile(r"^keys/([a-z0-9]+)-signer$")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def agent_key_path(agent_id: str, chain: str) -> str:
    return f"agents/{agent_id}/chains/{chain}/private_key"


def signer_key_path(chain: str) -> str:
    return f"keys/{chain}-signer"


def key_chain_for(network: str) -> str:
    """The key chain a network signs with: EVM networks (``base``, ``sepolia``)
    map to ``ethereum`` through the chain registry; non-EVM chains name themselves."""
    try:
        chain = REGISTRY.get(network).key_chain
    except UnknownChain:
        chain = network
    if chain not in chain_keys.KEY_CHAINS:
        raise CustodyError(
            f"no signing keys for chain {network!r}; key chains: {', '.join(chain_keys.KEY_CHAINS)} "
            "(EVM networks use the ethereum key)"
        )
    return chain


@dataclass(frozen=True)
class ProvisionedKey:
    """What provisioning tells: where the key lives and its public side. Never the key."""

    agent_id: str | None
    chain: str
    path: str
    version: int
    address: str
    public_key_hex: str
    # Set only by the call that created a client-custody vault: shown once, kept nowhere.
    client_share: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KeyInfo:
    agent_id: str | None
    chain: str
    path: str
    version: int
    address: str
    public_key_hex: str
    active: bool
    created_at: datetime
    created_by: str
    development: bool


class KeyStore:
    """Signing-key management over a ``Vaults``: the ``__agent-keys`` vault of one org.

    ``mode`` is the vault's custody mode, fixed when the first key creates the vault. In the
    client-custody modes every write and every signature needs the client share: the first
    ``provision`` returns it once (``ProvisionedKey.client_share``), and later calls take it."""

    def __init__(
        self, vaults: Vaults, *, org: str = DEFAULT_ORG, mode: Mode = "standard", providers: Sequence[str] | None = None
    ):
        self.vaults = vaults
        self.org = org
        self.mode = mode
        self.providers = providers

    def __repr__(self) -> str:
        return f"KeyStore(org={self.org!r}, mode={self.mode!r})"

    # ---- admin operations ------------------------------------------------

    def _admin(self, actor: str, action: str) -> None:
        kind, _ = parse_actor(actor)
        if kind != "admin":
            raise PermissionDenied(
                f"`warden keys {action}` is for admins only; actor {actor!r} is not admin:<key id>"
                + (" (agents never manage or read signing keys: they submit intents)" if kind == "agent" else "")
            )

    def _ensure_vault(self, actor: str, now: float | None) -> str | None:
        """Create the vault on first use; returns the client share if that made a client-custody vault."""
        if not self.vaults.has_vault(self.org, AGENT_KEYS_VAULT):
            try:
                return self.vaults.create_vault(
                    self.org, AGENT_KEYS_VAULT, actor=actor, mode=self.mode, providers=self.providers, now=now
                )
            except Conflict:
                pass  # another process created it first: same outcome
        return None

    # These two read the vault state as of the last refresh; the signer's per-intent key lookup
    # (active_version) has just refreshed it.

    @property
    def client_custody(self) -> bool:
        """True when every signature needs the client share (the vault's mode, not the configured one)."""
        try:
            return self.vaults.mode(self.org, AGENT_KEYS_VAULT) in CLIENT_MODES
        except NotFound:
            return False

    @property
    def cmek_fingerprint(self) -> str | None:
        """The fingerprint of the vault's customer-managed key, when it has one: every signature needs it too."""
        try:
            return self.vaults.cmek_fingerprint(self.org, AGENT_KEYS_VAULT)
        except NotFound:
            return None

    def _store(
        self,
        agent_id: str | None,
        chain: str,
        path: str,
        actor: str,
        now: float | None,
        client_share: str | bytes | bytearray | None,
        created_share: str | None,
    ) -> ProvisionedKey:
        private_key = chain_keys.generate_private_key(chain)
        try:
            public = chain_keys.public_key(chain, private_key)
            address = chain_keys.address(chain, public)
            version = self.vaults.write_secret(
                self.org,
                AGENT_KEYS_VAULT,
                path,
                private_key,
                "private_key",
                actor=actor,
                now=now,
                client_share=created_share or client_share,
                public={"chain": chain, "agent_id": agent_id or "", "address": address, "public_key": public.hex()},
            )
        finally:
            wipe(private_key)
        return ProvisionedKey(agent_id, chain, path, version, address, public.hex(), client_share=created_share)

    def active_version(self, path: str) -> int:
        """The version a signature at ``path`` uses now: the newest active one."""
        versions = self._active_versions(path)
        if not versions:
            raise NotFound(f"no active key at {path}")
        return max(versions)

    def _active_versions(self, path: str) -> list[int]:
        try:
            return self.vaults.active_versions(self.org, AGENT_KEYS_VAULT, path)
        except NotFound:
            return []

    def provision(
        self,
        agent_id: str,
        chain: str,
        actor: str,
        *,
        client_share: str | bytes | bytearray | None = None,
        now: float | None = None,
    ) -> ProvisionedKey:
        """Make the agent's key for ``chain``. Refused if it already has an active one (use ``rotate``)."""
        self._admin(actor, "provision")
        chain = _check_chain(chain)
        path = agent_key_path(_check_agent(agent_id), chain)
        created = self._ensure_vault(actor, now)
        if self._active_versions(path):
            raise Conflict(f"agent {agent_id!r} already has an active {chain} key; use `warden keys rotate`")
        return self._store(agent_id, chain, path, actor, now, client_share, created)

    def provision_signer(
        self, chain: str, actor: str, *, client_share: str | bytes | bytearray | None = None, now: float | None = None
    ) -> ProvisionedKey:
        """Make the shared ``keys/{chain}-signer`` key that agents without their own key sign with."""
        self._admin(actor, "provision")
        chain = _check_chain(chain)
        path = signer_key_path(chain)
        created = self._ensure_vault(actor, now)
        if self._active_versions(path):
            raise Conflict(f"{path} already has an active version; rotate it instead")
        return self._store(None, chain, path, actor, now, client_share, created)

    def rotate(
        self,
        agent_id: str,
        chain: str,
        actor: str,
        *,
        client_share: str | bytes | bytearray | None = None,
        now: float | None = None,
    ) -> ProvisionedKey:
        """A new version becomes the agent's key. Older versions stay readable by
        version number (funds may remain at their addresses) until deactivated."""
        self._admin(actor, "rotate")
        chain = _check_chain(chain)
        path = agent_key_path(_check_agent(agent_id), chain)
        created = self._ensure_vault(actor, now)
        if not self._active_versions(path):
            raise NotFound(
                f"agent {agent_id!r} has no active {chain} key to rotate; "
                f"an admin runs `warden keys provision --agent {agent_id} --chain {chain}`"
            )
        return self._store(agent_id, chain, path, actor, now, client_share, created)

    def deactivate(
        self, agent_id: str, chain: str, actor: str, *, version: int | None = None, now: float | None = None
    ) -> list[int]:
        """Deactivate one version of the agent's key, or all of them."""
        self._admin(actor, "deactivate")
        chain = _check_chain(chain)
        path = agent_key_path(_check_agent(agent_id), chain)
        return self.vaults.deactivate(self.org, AGENT_KEYS_VAULT, path, version, actor=actor, now=now)

    def list_keys(self, actor: str, *, agent_id: str | None = None, chain: str | None = None) -> list[KeyInfo]:
        self._admin(actor, "list")
        try:
            infos = self.vaults.list_secrets(self.org, AGENT_KEYS_VAULT, actor=actor)
        except NotFound:
            return []
        keys = []
        for info in infos:
            meta = info.public
            key = KeyInfo(
                meta.get("agent_id") or None,
                meta.get("chain", ""),
                info.path,
                info.version,
                meta.get("address", ""),
                meta.get("public_key", ""),
                info.active,
                info.created_at,
                info.created_by,
                info.development,
            )
            if (agent_id is None or key.agent_id == agent_id) and (chain is None or key.chain == chain):
                keys.append(key)
        return keys

    # ---- the signer's side ------------------------------------------------

    @contextlib.contextmanager
    def open_private_key(
        self,
        path: str,
        version: int | None = None,
        *,
        actor: str = SIGNER_ACTOR,
        client_share: bytes | bytearray | None = None,
        cmek: bytes | bytearray | None = None,
        now: float | None = None,
    ) -> Iterator[bytearray]:
        """Decrypt a signing key for the duration of a ``with`` block; the
        bytearray is wiped on exit, exceptions included. Agents are refused
        (and the refusal audited) by the vault itself. ``client_share``: the
        client's share in client-custody modes; ``cmek``: the vault's
        customer-managed key, if it has one (the caller wipes both)."""
        with self.vaults.open_secret(
            self.org, AGENT_KEYS_VAULT, path, version, actor=actor, client_share=client_share, cmek=cmek, now=now
        ) as key:
            yield key

    def resolve_signing_path(
        self,
        agent_id: str,
        network_chain: str,
        requested_path: str | None = None,
        allowed_prefixes: Sequence[str] = DEFAULT_ALLOWED_PREFIXES,
    ) -> str:
        """The key path to sign an intent with.

        ``requested_path`` (the intent's ``signing_key_path``) is honoured only
        under ``allowed_prefixes``, only for this agent's own keys or shared
        signer keys, and only for the intent's key chain. Without one: the
        agent's key for the chain if it has an active one, else
        ``keys/{chain}-signer``."""
        chain = key_chain_for(network_chain)
        _check_agent(agent_id)
        if requested_path:
            check_path(requested_path)
            if not any(prefix_covers(p, requested_path) for p in allowed_prefixes):
                raise PermissionDenied(
                    f"signing key path {requested_path!r} is outside the allowed prefixes {list(allowed_prefixes)}"
                )
            owned = _AGENT_PATH_RE.match(requested_path)
            shared = _SIGNER_PATH_RE.match(requested_path)
            if owned and owned.group(1) != agent_id:
                raise PermissionDenied(f"agent {agent_id!r} may not sign with another agent's key ({requested_path!r})")
            key_chain = owned.group(2) if owned else shared.group(1) if shared else None
            if key_chain is not None and key_chain != chain:
                raise PermissionDenied(
                    f"signing key path {requested_path!r} holds a {key_chain} key; network {network_chain!r} signs with {chain}"
                )
            return requested_path
        for candidate in (agent_key_path(agent_id, chain), signer_key_path(chain)):
            if any(prefix_covers(p, candidate) for p in allowed_prefixes) and self._active_versions(candidate):
                return candidate
        raise NotFound(
            f"no signing key for agent {agent_id!r} on {chain}: an admin runs "
            f"`warden keys provision --agent {agent_id} --chain {chain}` (or provisions keys/{chain}-signer)"
        )


def _check_chain(chain: str) -> str:
    if chain not in chain_keys.KEY_CHAINS:
        raise CustodyError(f"unknown key chain {chain!r}; choose one of {', '.join(chain_keys.KEY_CHAINS)}")
    return chain


def _check_agent(agent_id: str) -> str:
    if not isinstance(agent_id, str) or not _AGENT_ID_RE.match(agent_id):
        raise CustodyError(f"bad agent id {agent_id!r}")
    return agent_id
