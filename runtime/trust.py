"""Trust anchors: the public keys a Warden process believes, pinned by configuration.

- Admins' policy-signing keys: a deployment pins them with ``WARDEN_ADMIN_KEYS``
  ("key_id=0x<hex>,...") and keeps the private keys off the workers; the embedded
  stack creates one local admin key under ``$WARDEN_HOME/admin`` (mode 0600).
- Services' outcome-signing keys: each streams worker and each signer signs what
  it decides with its own Ed25519 key. Clients (and the worker, for the signer's
  refusals) pin the public halves with ``WARDEN_WORKER_KEYS`` and
  ``WARDEN_SIGNER_KEYS``; on the embedded stack each service makes its key under
  ``$WARDEN_HOME/services/<role>/<key id>.pem`` and readers pin those. The
  supervisor has one too (``WARDEN_SUPERVISOR_KEYS``), for the restarts it records, and the
  console one of the same kind, for what people did in it.
- Audit records: each writer signs its records on warden.audit.events with the key
  above (admins with theirs, the ledger with its checkpoint key); the ledger sink
  believes them through ``PinnedAuditKeys``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.admins import Admins, AdminSetBook
from runtime.config import Settings
from schemas import topics
from schemas.admins import ACTIONS, parse_thresholds, valid_admin_keys
from schemas.auth import AuditSigner, Role, load_or_create_ed25519, public_key_hex, read_ed25519
from schemas.errors import WardenError
from schemas.passkeys import RelyingParty

SERVICE_ROLES: tuple[Role, ...] = get_args(Role)

LOCAL_ADMIN_ID = "local-admin"
CONSOLE_KEY_ID = "console"  # the console's audit key, among the supervisor's (`console_audit_signer`)
_PUBLIC_KEY = re.compile(r"0x[0-9a-f]{64}")


def local_admin_key_file(home: Path) -> Path:
    return admin_key_file(home, LOCAL_ADMIN_ID)


def _pairs(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {key_id.strip(): pub.strip() for key_id, pub in pairs}


def admin_key_file(home: Path, admin_id: str) -> Path:
    """Where an admin's command line keeps its key (``WARDEN_ADMIN_ID`` picks whose)."""
    return home / "admin" / f"{admin_id}.pem"


def pinned_admins(settings: Settings) -> Admins:
    """The configured admin set (version 0) with its thresholds (``WARDEN_ADMIN_QUORUM``) and the
    relying party passkey admins' assertions are checked for (`console_party`). A process that
    checks admins' signatures follows warden.admins for the changes a quorum made since."""
    keys, party = pinned_admin_keys(settings), console_party(settings)
    if not keys:  # nothing pinned: no admin's signature verifies, whatever the threshold
        return Admins({}, dict.fromkeys(ACTIONS, 1), party=party)
    try:
        return Admins(valid_admin_keys(keys), parse_thresholds(settings.admin_quorum, keys), party=party)
    except ValueError as exc:
        raise ValueError(f"WARDEN_ADMIN_QUORUM {settings.admin_quorum!r} with WARDEN_ADMIN_KEYS: {exc}") from None


class ConsoleOriginError(WardenError, ValueError):
    """WARDEN_CONSOLE_ORIGIN or WARDEN_CONSOLE_RP_ID is not what a browser would make a passkey's
    assertion for."""


def console_party(settings: Settings) -> RelyingParty | None:
    """Whom a passkey admin's assertion must be made for: the console's origins
    (``WARDEN_CONSOLE_ORIGIN``, comma-separated ``scheme://host[:port]``, each as a browser writes
    it in an assertion) and its relying party id (``WARDEN_CONSOLE_RP_ID``, else the first origin's
    host name), which each origin's host must be or end in, as browsers require. None when no
    origin is set: no passkey is believed."""
    given = [o.strip() for o in (settings.console_origin or "").split(",") if o.strip()]
    if not given:
        return None
    origins = [_origin(origin) for origin in given]
    rp_id = (settings.console_rp_id or origins[0][1]).strip().lower()
    for origin, host in origins:
        if host != rp_id and not host.endswith("." + rp_id):
            raise ConsoleOriginError(
                f"WARDEN_CONSOLE_ORIGIN {origin!r}: its host {host!r} is not the relying party id {rp_id!r} nor "
                "under it, so no browser makes a passkey assertion for it there",
                "set WARDEN_CONSOLE_RP_ID to the console's host name or a domain it is under",
            )
    return RelyingParty(rp_id=rp_id, origins=tuple(origin for origin, _ in origins))


def _origin(given: str) -> tuple[str, str]:
    """``given`` as a browser serializes an origin (scheme and host in lower case, no default
    port, no trailing slash) and its host name; ConsoleOriginError unless it is
    ``http(s)://host[:port]``."""
    parts = urlsplit(given.rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or "@" in parts.netloc
        or any((parts.path, parts.query, parts.fragment))
    ):
        raise ConsoleOriginError(
            f"WARDEN_CONSOLE_ORIGIN {given[:100]!r} is not an origin: scheme://host[:port], http or https, "
            "with no path, user, query or fragment (e.g. https://console.example.com or http://localhost:8790)"
        )
    host = parts.hostname.lower()
    shown = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{shown}" + ("" if port in (None, default) else f":{port}"), host


async def admins_in_force(settings: Settings) -> Admins:
    """The admin set in force: the configured one, with every change on warden.admins its
    quorum signed (`runtime.admins.AdminSetBook`), the topic read until it is quiet. For a command,
    or a process that checks an admin's signature now and then, rather than following the topic."""
    from runtime.kafka import read_to_quiet  # a command that only checks a signature reads no topic

    admins = pinned_admins(settings)
    book = AdminSetBook(admins)
    async for _, value in read_to_quiet(settings, (topics.ADMINS,), 2):
        book.read(value)
    return admins


def pinned_admin_keys(settings: Settings) -> dict[str, str]:
    """key_id → public key hex. WARDEN_ADMIN_KEYS wins; else the local admin key, if one exists."""
    if settings.admin_keys:
        return _pairs(settings.admin_keys)
    path = local_admin_key_file(settings.home)
    if not path.exists():
        return {}
    return {LOCAL_ADMIN_ID: public_key_hex(read_ed25519(path))}


def service_key_file(home: Path, role: Role, key_id: str) -> Path:
    return home / "services" / role / f"{key_id}.pem"


def service_key(settings: Settings, role: Role) -> tuple[str, Ed25519PrivateKey]:
    """This process's outcome-signing key (key id, private key), made on first start. Its public
    half is written next to it (``.pub``, hex): that file is all a local reader needs."""
    key_id = {"worker": settings.worker_id, "signer": settings.signer_id, "supervisor": "supervisor"}[role]
    return key_id, _key_and_public(service_key_file(settings.home, role, key_id))


def _key_and_public(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``, made on first use, with its public half beside it."""
    key = load_or_create_ed25519(path)
    public, pub_file = public_key_hex(key) + "\n", path.with_suffix(".pub")
    # Replaced whole, never rewritten in place: a reader that caught the file empty or half
    # written would pin no key, or a wrong one, and refuse this service's records.
    if not pub_file.exists() or pub_file.read_text() != public:
        temporary = pub_file.with_suffix(f".pub.{os.getpid()}.tmp")
        temporary.write_text(public)
        temporary.replace(pub_file)
    return key


class PinnedServiceKeys:
    """The workers' and signers' public keys this reader believes (``schemas.auth.ServiceKeys``).

    Configured keys are fixed. Without configuration the local services' key files are read,
    and read again (at most once a second) when an unknown key id shows up, so a reader
    started before a service still comes to know that service's key."""

    def __init__(self, settings: Settings):
        self.settings = settings
        configured = {
            "worker": settings.worker_keys,
            "signer": settings.signer_keys,
            "supervisor": settings.supervisor_keys,
        }
        self._fixed = {role: _pairs(text) for role, text in configured.items() if text}
        self._local: dict[str, dict[str, str]] = {}
        self._read_at = 0.0

    def key(self, role: Role, key_id: str) -> str | None:
        if role in self._fixed:
            return self._fixed[role].get(key_id)
        if key_id not in self._local.get(role, {}) and time.monotonic() - self._read_at >= 1.0:
            self._read_local()
        return self._local.get(role, {}).get(key_id)

    def pins_any(self, role: Role) -> bool:
        """Whether this reader believes any key of ``role``: one configured, or a local key file now."""
        if role in self._fixed:
            return bool(self._fixed[role])
        self._read_local()
        return bool(self._local.get(role))

    def key_now(self, role: Role, key_id: str) -> str | None:
        """Like `key`, reading the local key files again for an unknown id however recently they
        were read: for a reader whose "unknown" voids a record rather than delaying it."""
        if role not in self._fixed and key_id not in self._local.get(role, {}):
            self._read_local()
        return self.key(role, key_id)

    def _read_local(self) -> None:
        self._read_at = time.monotonic()
        for role in SERVICE_ROLES:
            folder = self.settings.home / "services" / role
            found = {path.stem: path.read_text().strip() for path in sorted(folder.glob("*.pub"))}
            # Only what looks like a key: a file caught mid-write must not be pinned as one.
            self._local[role] = {key_id: pub for key_id, pub in found.items() if _PUBLIC_KEY.fullmatch(pub)}


class KeysNow:
    """Pinned service keys (``schemas.auth.ServiceKeys``) asking for an unknown key id at once
    (``PinnedServiceKeys.key_now``) where the keys can: for a reader that decides a record once,
    for good (a stage envelope, an abandoned intent), and must not take one from a service started
    a moment ago for a forgery, and leave its intent without an outcome."""

    def __init__(self, keys: Any) -> None:  # PinnedServiceKeys, or any reader with a key(role, key_id)
        self.key = getattr(keys, "key_now", keys.key)


def audit_signer(settings: Settings, role: Role) -> AuditSigner:
    """What signs this service's records on warden.audit.events: its service key."""
    return AuditSigner(role, *service_key(settings, role))


def console_audit_signer(settings: Settings) -> AuditSigner:
    """What signs the console's audit records (its logins, logouts, decisions relayed): a key of
    its own, of the supervisor's kind (``$WARDEN_HOME/services/supervisor/console.pem``, pinned by
    key id ``console`` in WARDEN_SUPERVISOR_KEYS). Like the supervisor, the console is the
    operator's process reporting what happened; neither decides anything a service relies on (a
    decision the console relays is the admin's passkey assertion, checked by the worker and the
    signer), so neither needs a role of its own."""
    return AuditSigner(
        "supervisor", CONSOLE_KEY_ID, _key_and_public(service_key_file(settings.home, "supervisor", CONSOLE_KEY_ID))
    )


class PinnedAuditKeys:
    """The keys the ledger sink believes audit records from (``schemas.auth.AuditKeys``): the
    services' (``PinnedServiceKeys``), the pinned admins' and the ledger's own (given by the sink,
    which alone knows it; other readers believe no ledger notice).

    An unknown key id reads the local key files again at once: the sink decides a record once,
    for good, so a service whose key file appeared a moment ago must not be called a forger."""

    def __init__(self, settings: Settings, ledger_key_id: str | None = None, ledger_public_hex: str | None = None):
        self.settings = settings
        self._services = PinnedServiceKeys(settings)
        self._admins = pinned_admin_keys(settings)
        self._ledger = {ledger_key_id: ledger_public_hex} if ledger_key_id and ledger_public_hex else {}

    def audit_key(self, role: str, key_id: str) -> str | None:
        if role == "ledger":
            return self._ledger.get(key_id)
        if role == "admin":
            if key_id not in self._admins and not self.settings.admin_keys:
                with contextlib.suppress(ValueError):  # the local admin key caught mid-write: no new key yet
                    self._admins = pinned_admin_keys(self.settings)
            return self._admins.get(key_id)
        for service in SERVICE_ROLES:
            if service == role:
                return self._services.key_now(service, key_id)
        return None
