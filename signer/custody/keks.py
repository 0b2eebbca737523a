"""Vault KEKs: made and split by the vault's custody mode, wrapped by the roots of
trust, rebuilt and checked when needed, and cached in memory for a while.

Each wrapped piece sits in a ``KeySlot`` whose associated data binds (org, vault,
kek_id, mode, x, provider), so a slot copied elsewhere does not unwrap. A rebuilt
KEK is used only if it matches the vault's commitment (an HMAC under the KEK
itself), so a provider returning a wrong piece, or a wrong client share, is the
one opaque ``InvalidKey`` and never a wrong key.

Unwrapped KEKs are cached for ``ttl`` seconds as AES-GCM contexts; the raw bytes
are wiped as soon as the context holds them. In the client-custody modes only
the server's unwrapped piece is cached, so every use still needs the client share.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signer.custody._crypto import KEY_BYTES, aad, from_b64, random_key, wipe
from signer.custody.errors import AttestationRequired, CustodyError, InvalidKey, ProviderUnavailable
from signer.custody.events import KeySlot, ModeSet
from signer.custody.modes import CustodyMode, custody_mode
from signer.custody.roots import RootOfTrust

DEFAULT_KEK_TTL = 300.0

_COUNTS = {1: "one", 2: "two", 3: "three"}


def _count(n: int) -> str:
    return _COUNTS.get(n, str(n))


def slot_aad(org: str, vault: str, kek_id: str, mode: str, x: int, provider: str) -> bytes:
    return aad("warden/kek-slot/v1", org, vault, kek_id, mode, x, provider)


def _commitment(kek: bytes | bytearray, org: str, vault: str, kek_id: str) -> str:
    return hmac.new(kek, aad("warden/kek-commitment/v1", org, vault, kek_id), hashlib.sha256).hexdigest()


@dataclass
class _CacheEntry:
    expires: float
    aead: AESGCM | None = None  # the whole KEK, for modes without a client share
    shares: list[tuple[int, bytearray]] | None = None  # server-side shares, for client modes
    attested: bool = False  # unwrapped through an attested key release

    def wipe(self) -> None:
        for _, share in self.shares or ():
            wipe(share)
        self.aead = None
        self.shares = None


class Keks:
    """The KEKs of every vault this process uses, over one set of roots (name → root)."""

    def __init__(
        self,
        roots: Mapping[str, RootOfTrust],
        ttl: float = DEFAULT_KEK_TTL,
        release: Callable[[Callable[[], bytearray], str, bytes, datetime], bytearray] | None = None,
    ):
        self._roots = dict(roots)
        self.ttl = ttl
        # signer.key_release.Attester: how a vault requiring attestation is unwrapped.
        self._release = release
        self._lock = threading.RLock()
        self._cache: dict[str, _CacheEntry] = {}

    def __repr__(self) -> str:
        return f"Keks(roots={list(self._roots)!r}, cached={len(self._cache)})"

    @property
    def roots(self) -> dict[str, RootOfTrust]:
        return dict(self._roots)

    # ---- a new KEK -----------------------------------------------------------

    def make(
        self, org: str, vault: str, mode: CustodyMode, providers: Sequence[str] | None, *, actor: str, ts: datetime
    ) -> tuple[ModeSet, str | None]:
        """A fresh KEK for the vault, split and wrapped as ``mode`` says: the ``ModeSet``
        event that records it, and the client share (base64) in client modes, which
        exists nowhere else once the caller has handed it over."""
        roots = self._pick_roots(mode, providers)
        # A fresh random name for a fresh key: no two KEKs may share associated data.
        kek_id = secrets.token_hex(16)
        kek = random_key()
        pieces: list[tuple[int, bytearray]] = []
        client: bytearray | None = None
        try:
            pieces, client = mode.split(kek)
            slots = tuple(
                KeySlot(
                    x=x,
                    provider=root.name,
                    wrapped=base64.b64encode(
                        root.wrap(bytes(piece), slot_aad(org, vault, kek_id, mode.name, x, root.name))
                    ).decode(),
                )
                for (x, piece), root in zip(pieces, roots, strict=True)
            )
            event = ModeSet.new(
                org=org,
                vault=vault,
                actor=actor,
                ts=ts,
                mode=mode.name,
                kek_id=kek_id,
                slots=slots,
                kek_commitment=_commitment(kek, org, vault, kek_id),
                development=any(getattr(r, "development", False) for r in roots),
            )
            return event, base64.b64encode(client).decode() if client is not None else None
        finally:
            wipe(kek)
            for _, piece in pieces:
                wipe(piece)
            wipe(client)

    def _pick_roots(self, mode: CustodyMode, providers: Sequence[str] | None) -> list[RootOfTrust]:
        names = list(providers) if providers is not None else list(self._roots)[: mode.roots]
        missing = [n for n in names if n not in self._roots]
        if missing:
            raise ProviderUnavailable(f"root provider(s) {missing} are not configured; configured: {list(self._roots)}")
        if len(set(names)) != len(names) or len(names) != mode.roots:
            raise CustodyError(
                f"custody mode {mode.name!r} needs {mode.roots} distinct root provider(s), got {names}; configure "
                "more with WARDEN_ROOT_PROVIDERS"
            )
        return [self._roots[n] for n in names]

    # ---- using a KEK -----------------------------------------------------------

    def aead(
        self,
        org: str,
        vault: str,
        kek: ModeSet,
        client_share: str | bytes | bytearray | None,
        now: float,
        attested: bool = False,
    ) -> AESGCM:
        """The vault's KEK as an AES-GCM context, from the cache or rebuilt; in client
        modes, rebuilt with ``client_share`` on every call. ``attested``: the vault requires
        attestation, so each root unwrap goes through the attested key release, and a KEK cached
        before the vault required it is dropped rather than used."""
        mode = custody_mode(kek.mode)
        if not mode.client_custody and client_share is not None:
            raise CustodyError(f"vault {vault!r} is in mode {mode.name!r}, which takes no client share")
        with self._lock:
            entry = self._cache.get(kek.kek_id)
            if entry is not None and (entry.expires <= now or (attested and not entry.attested)):
                entry.wipe()
                del self._cache[kek.kek_id]
                entry = None
            if entry is None:
                entry = self._load(org, vault, kek, mode, now, attested)
                self._cache[kek.kek_id] = entry
            if entry.aead is not None:
                return entry.aead
            if entry.shares is None or mode.client_x is None:
                # A KEK id cached for a mode without a client share, now named by a client-custody one.
                raise CustodyError(f"vault {vault!r}: KEK {kek.kek_id[:16]} is held for another custody mode")
            client = _client_share_bytes(client_share)
            try:
                return self._checked(mode.rebuild([entry.shares[0], (mode.client_x, client)]), org, vault, kek)
            finally:
                wipe(client)

    def evict(self, now: float, *, everything: bool = False) -> int:
        """Drop cached KEKs past their TTL (or all of them); returns how many went."""
        with self._lock:
            gone = [k for k, e in self._cache.items() if everything or e.expires <= now]
            for k in gone:
                self._cache.pop(k).wipe()
            return len(gone)

    def _load(self, org: str, vault: str, kek: ModeSet, mode: CustodyMode, now: float, attested: bool) -> _CacheEntry:
        expires = now + self.ttl
        unwrap = self._attested_unwrap(now) if attested else self._unwrap_slot
        if mode.client_custody:
            # The server's pieces only; the client brings the last one with every use.
            return _CacheEntry(
                expires, shares=self._server_pieces(org, vault, kek, mode.threshold - 1, unwrap), attested=attested
            )
        return _CacheEntry(expires, aead=self._rebuild(org, vault, kek, mode, unwrap), attested=attested)

    def _attested_unwrap(self, now: float) -> Callable[[str, str, ModeSet, KeySlot], bytearray]:
        release = self._release
        if release is None:
            raise AttestationRequired(
                "the vault requires attestation and this process has no attested key "
                "release configured; only the signer in its confidential VM opens it"
            )
        at = datetime.fromtimestamp(now, timezone.utc)

        def unwrap(org: str, vault: str, kek: ModeSet, slot: KeySlot) -> bytearray:
            context = slot_aad(org, vault, kek.kek_id, kek.mode, slot.x, slot.provider)
            return release(lambda: self._unwrap_slot(org, vault, kek, slot), f"vault:{org}/{vault}", context, at)

        return unwrap

    def _rebuild(
        self,
        org: str,
        vault: str,
        kek: ModeSet,
        mode: CustodyMode,
        unwrap: Callable[[str, str, ModeSet, KeySlot], bytearray],
    ) -> AESGCM:
        """Unwrap slots until ``threshold`` of them rebuild a KEK that verifies. A set that
        does not verify (a provider that returned a wrong share) is dropped in favour of
        the others; a provider that is down is skipped."""
        pieces: list[tuple[int, bytearray]] = []
        auth_failed = False
        outages: list[str] = []
        try:
            for slot in kek.slots:
                try:
                    pieces.append((slot.x, unwrap(org, vault, kek, slot)))
                except InvalidKey:
                    auth_failed = True
                    continue
                except ProviderUnavailable as exc:
                    outages.append(str(exc))
                    continue
                for combo in itertools.combinations(pieces, mode.threshold):
                    if combo[-1] is not pieces[-1]:
                        continue  # sets without the newest piece were tried already
                    rebuilt = mode.rebuild(combo)
                    try:
                        return self._checked(rebuilt, org, vault, kek)
                    except InvalidKey:
                        auth_failed = True
        finally:
            for _, piece in pieces:
                wipe(piece)
        if auth_failed or len(pieces) >= mode.threshold:
            raise InvalidKey()
        raise ProviderUnavailable(self._outage(mode, kek, outages))

    def _server_pieces(
        self, org: str, vault: str, kek: ModeSet, wanted: int, unwrap: Callable[[str, str, ModeSet, KeySlot], bytearray]
    ) -> list[tuple[int, bytearray]]:
        """Unwrap ``wanted`` slots, skipping providers that are down. Fails closed:
        any authentication failure makes the whole attempt InvalidKey if too few remain."""
        pieces: list[tuple[int, bytearray]] = []
        auth_failed = False
        outages: list[str] = []
        for slot in kek.slots:
            if len(pieces) == wanted:
                break
            try:
                pieces.append((slot.x, unwrap(org, vault, kek, slot)))
            except InvalidKey:
                auth_failed = True
            except ProviderUnavailable as exc:
                outages.append(str(exc))
        if len(pieces) < wanted:
            for _, piece in pieces:
                wipe(piece)
            if auth_failed:
                raise InvalidKey()
            raise ProviderUnavailable("; ".join(outages) or "no root provider could unwrap this vault's KEK")
        return pieces

    def _unwrap_slot(self, org: str, vault: str, kek: ModeSet, slot: KeySlot) -> bytearray:
        root = self._roots.get(slot.provider)
        if root is None:
            raise ProviderUnavailable(f"root provider {slot.provider!r} is not configured here")
        associated = slot_aad(org, vault, kek.kek_id, kek.mode, slot.x, slot.provider)
        try:
            piece = root.unwrap(from_b64(slot.wrapped), associated)
        except CustodyError:
            raise
        except Exception as exc:
            # A provider library's error text is not ours to repeat (it may echo
            # request bodies); its class name is enough to debug an outage.
            raise ProviderUnavailable(f"root provider {slot.provider!r} failed: {type(exc).__name__}") from None
        if len(piece) != KEY_BYTES:
            wipe(piece)
            raise InvalidKey()
        return piece

    @staticmethod
    def _checked(rebuilt: bytearray, org: str, vault: str, kek: ModeSet) -> AESGCM:
        """``rebuilt`` as an AES-GCM context if it is the vault's KEK; wiped either way."""
        try:
            if not hmac.compare_digest(_commitment(rebuilt, org, vault, kek.kek_id), kek.kek_commitment):
                raise InvalidKey()
            return AESGCM(rebuilt)
        finally:
            wipe(rebuilt)

    @staticmethod
    def _outage(mode: CustodyMode, kek: ModeSet, outages: list[str]) -> str:
        said = "; ".join(outages)
        if len(kek.slots) <= mode.threshold:
            return said or "no root provider could unwrap this vault's KEK"
        return f"{mode.name} needs {_count(mode.threshold)} of its {_count(len(kek.slots))} root providers; " + (
            said or "too few answered"
        )


def _client_share_bytes(client_share: str | bytes | bytearray | None) -> bytearray:
    # Wrong or missing client shares fail exactly like a wrong key: no oracle.
    if client_share is None:
        raise InvalidKey()
    if isinstance(client_share, str):
        try:
            raw = bytearray(base64.b64decode(client_share.strip(), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidKey() from None
    else:
        raw = bytearray(client_share)
    if len(raw) != KEY_BYTES:
        wipe(raw)
        raise InvalidKey()
    return raw
