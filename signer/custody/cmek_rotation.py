"""A vault's customer-managed key over time: putting one on, rotating it, and loading it here.

Rotation re-wraps every version's DEK under the new key in batches, holding the
log's write lock per batch only, so reads and writes go on in between. The vault
records the new key first (with the old one retiring) and the end of the rotation
last, so an interrupted rotation is resumed by running it again with the same key.
Only the outer layer changes (``cmek.CmekLayer.rotate``): no KEK and no client share.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from schemas.actions import AuditAction
from signer.custody import access
from signer.custody._crypto import from_b64
from signer.custody.book import VaultBook, VaultState
from signer.custody.cmek import CMEK_BATCH, CmekLayer, check_key, fingerprint
from signer.custody.errors import Conflict, CustodyError, InvalidKey
from signer.custody.events import CmekSet, SecretVersionWritten, utc


class CmekRotation:
    """Customer-managed keys of the vaults in ``book``; ``cmeks`` holds the keys this process has."""

    def __init__(self, book: VaultBook, cmeks: CmekLayer, auditor: access.Auditor, clock: Callable[[], float]):
        self._book = book
        self._cmeks = cmeks
        self._auditor = auditor
        self._clock = clock

    def load_cmek(self, org: str, vault: str, cmek: bytes | bytearray) -> str:
        """Hand this process the vault's customer-managed key (kept in memory only).
        Refused unless its fingerprint is the vault's current or retiring one."""
        state = self._book.state(org, vault)
        fp = fingerprint(cmek)
        if state.cmek is None or fp not in (state.cmek.fingerprint, state.cmek.retiring):
            raise InvalidKey()
        return self._cmeks.load(cmek)

    def set_cmek(
        self,
        org: str,
        vault: str,
        cmek: bytes | bytearray,
        *,
        actor: str,
        batch_size: int = CMEK_BATCH,
        now: float | None = None,
        between_batches: Callable[[int], None] | None = None,
    ) -> str:
        """Put a customer-managed key on the vault, or rotate to a new one.

        Announces the new key (with the old one retiring), re-wraps every
        version's DEK in batches of ``batch_size`` (holding the write lock only
        per batch, so reads and writes go on between batches), then retires the
        old key. Returns the new fingerprint. The old key must be loaded."""
        access.require_admin(actor, "setting a customer-managed key")
        check_key(cmek)
        now = self._clock() if now is None else now
        new_fp = fingerprint(cmek)
        announced = self._announce(org, vault, cmek, new_fp, actor, now)
        if announced is None:
            return new_fp
        old_fp, seq = announced
        done = self._rewrap_all(org, vault, new_fp, batch_size, between_batches)
        if old_fp is not None:
            self._retire(org, vault, actor, now, new_fp, old_fp, seq)
        self._auditor.record(
            actor,
            AuditAction.VAULT_CMEK_SET,
            f"vault:{org}/{vault}",
            now,
            new_fp,
            str(old_fp),
            str(seq),
            fingerprint=new_fp,
            previous=old_fp,
            rewrapped=done,
        )
        return new_fp

    def _announce(
        self, org: str, vault: str, cmek: bytes | bytearray, new_fp: str, actor: str, now: float
    ) -> tuple[str | None, int] | None:
        """Record the new key as the vault's, with the old one retiring: the old fingerprint and the
        event's seq, or None if the new key is the vault's already."""
        book = self._book
        with book.log.write_lock():
            state = book.state(org, vault)
            old = state.cmek
            if old is None:
                old_fp = None
            elif old.retiring is not None:
                if new_fp != old.fingerprint:
                    raise Conflict(f"a CMEK rotation of vault {vault!r} is under way; finish it with the same new key")
                old_fp = old.retiring  # resuming an interrupted rotation
            elif new_fp == old.fingerprint:
                return None
            else:
                old_fp = old.fingerprint
            if old_fp is not None and not self._cmeks.holds(old_fp):
                raise CustodyError("load the vault's current customer-managed key first (Vaults.load_cmek)")
            self._cmeks.load(cmek)
            seq = (old.seq if old else 0) + 1
            book.emit(
                [
                    CmekSet.new(
                        org=org, vault=vault, actor=actor, ts=utc(now), fingerprint=new_fp, retiring=old_fp, seq=seq
                    )
                ]
            )
        return old_fp, seq

    def _rewrap_all(
        self, org: str, vault: str, new_fp: str, batch_size: int, between_batches: Callable[[int], None] | None
    ) -> int:
        """Re-wrap every version's DEK not yet under the new key, a batch per write lock: how many were."""
        book = self._book
        done = 0
        while True:
            with book.log.write_lock():
                state = book.state(org, vault)
                book.refresh()
                todo = [
                    s for versions in state.secrets.values() for s in versions.values() if s.cmek_fingerprint != new_fp
                ][:batch_size]
                if not todo:
                    break
                book.emit([self._rewrap(state, s, new_fp) for s in todo])
                done += len(todo)
            if between_batches is not None:
                between_batches(done)
        return done

    def _retire(self, org: str, vault: str, actor: str, now: float, new_fp: str, old_fp: str, seq: int) -> None:
        """Record the end of the rotation (no key retiring any more) and forget the old key here."""
        book = self._book
        with book.log.write_lock():
            book.emit(
                [
                    CmekSet.new(
                        org=org,
                        vault=vault,
                        actor=actor,
                        ts=utc(now),
                        fingerprint=new_fp,
                        retiring=None,
                        seq=seq + 1,
                    )
                ]
            )
        self._cmeks.forget(old_fp)

    def _rewrap(self, state: VaultState, secret: SecretVersionWritten, new_fp: str) -> SecretVersionWritten:
        # The version keeps its author and time; who rotated, and when, is the cmek.set event's.
        outer = self._cmeks.rotate(
            from_b64(secret.wrapped_dek),
            secret.cmek_fingerprint,
            new_fp,
            (state.org, state.vault, secret.path, secret.version),
        )
        return secret.derive(
            wrapped_dek=base64.b64encode(outer).decode(), cmek_fingerprint=new_fp, wrap_seq=secret.wrap_seq + 1
        )
