"""The log's side of witnessing: each chain's checkpoint notes (`ledger.checkpoint`), sent to the
witnesses, and the cosignatures they answer, stored in ``audit_note_signatures``.

Chain C of the ledger is the log ``<log name>/C`` (`LedgerSettings.log_name`); its checkpoint at
tree size N is the note ``<log name>/C``, N, the base64 root, signed with the ledger's Ed25519 key
under the key name ``<log name>``: that signature line is stored with the checkpoint itself
(``audit_checkpoints.signature``), the witnesses' beside it (`store_signatures`).

`Witnesses` sends a new checkpoint to each configured witness with a consistency proof from the
size that witness last cosigned (asked with ``old 0`` the first time: a 409 names it), and keeps
the cosignatures that verify under the witness's configured key. A witness that refuses (a 409
fork, a 422 proof) is logged as the alarm it is; one that is down is asked again at the next
checkpoint, which covers this one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import pyarrow as pa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import checkpoint as checkpoints
from ledger.merkle import consistency_path
from ledger.note import ED25519, Note, NoteCheckpoint, NoteError, NoteKey, Signature, verified_by
from ledger.schema import AUDIT_NOTE_SIGNATURES
from ledger.store import Store
from ledger.witness import SIZE_TYPE, request_body

log = logging.getLogger("warden.ledger")
TIMEOUT_S = 5.0
RETRY_S = 30.0


def log_key(log_name: str, key: Ed25519PrivateKey) -> NoteKey:
    """The log's verifier key: what auditors and witnesses are configured with."""
    return NoteKey.of(log_name, ED25519, key)


@dataclass(frozen=True)
class WitnessConfig:
    url: str  # its submission prefix: add-checkpoint is POSTed to <url>/add-checkpoint
    key: NoteKey


def parse_witnesses(text: str) -> list[WitnessConfig]:
    """``WARDEN_LEDGER_WITNESSES``: ``<url>=<vkey>`` separated by commas."""
    configs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        url, sep, vkey = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ValueError(
                f"WARDEN_LEDGER_WITNESSES: {item!r} is not <url>=<vkey> (e.g. http://127.0.0.1:7380=witness.example/w1+...)"
            )
        try:
            key = NoteKey.from_vkey(vkey)
        except NoteError as exc:
            raise ValueError(f"WARDEN_LEDGER_WITNESSES: the key of {url}: {exc}") from None
        if key.type != 0x04:
            raise ValueError(f"WARDEN_LEDGER_WITNESSES: the key of {url} is not a cosignature/v1 key (0x04)")
        configs.append(WitnessConfig(url.rstrip("/"), key))
    return configs


class Witnesses:
    """The configured witnesses and the size each last cosigned, per origin (learnt from them)."""

    def __init__(self, configs: list[WitnessConfig]):
        self.configs = configs
        self.sizes: dict[tuple[str, str], int] = {}  # (witness url, origin) → the size it cosigned
        self.down_until: dict[str, float] = {}  # witness url → monotonic time it is asked again
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def cosign(
        self, note: Note, leaves_of: Callable[[int], Awaitable[list[bytes]]]
    ) -> list[tuple[WitnessConfig, Signature]]:
        """Each witness's cosignature of ``note`` that verifies, the witnesses asked at once;
        ``await leaves_of(size)`` gives the chain's leaf hashes up to a size (read once, for the
        consistency proofs). A witness that did not answer is left alone for ``RETRY_S``: its next
        checkpoint covers this one."""
        checkpoint = NoteCheckpoint.parse(note.text)
        leaves: list[bytes] | None = None
        reading = asyncio.Lock()

        async def proof_from(old: int) -> list[bytes]:
            nonlocal leaves
            if not 0 < old < checkpoint.size:
                return []
            async with reading:
                if leaves is None:
                    leaves = await leaves_of(checkpoint.size)
            return consistency_path(leaves, old)

        now = time.monotonic()
        asked = [w for w in self.configs if now >= self.down_until.get(w.url, 0.0)]
        answers = await asyncio.gather(*(self._ask(w, note, checkpoint, proof_from) for w in asked))
        return [cosigned for answer in answers for cosigned in answer]

    async def _ask(
        self,
        witness: WitnessConfig,
        note: Note,
        checkpoint: NoteCheckpoint,
        proof_from: Callable[[int], Awaitable[list[bytes]]],
    ) -> list[tuple[WitnessConfig, Signature]]:
        """One witness's add-checkpoint: from the size it last cosigned, and once more from the
        size its 409 names (what it holds, when this sink did not know it)."""
        known = (witness.url, checkpoint.origin)
        old = self.sizes.get(known, 0)
        for _ in range(2):
            try:
                status, body, kind = await self._post(witness, request_body(old, await proof_from(old), note))
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("witness %s did not answer (%s); asked again in %.0f s", witness.url, exc, RETRY_S)
                self.down_until[witness.url] = time.monotonic() + RETRY_S
                return []
            if status == 200:
                self.sizes[known] = checkpoint.size
                return self._verified(witness, note, body)
            size = body.strip()  # ASCII digits: str.isdigit() is true for "²", which int() refuses
            named = int(size) if status == 409 and kind == SIZE_TYPE and size.isascii() and size.isdigit() else old
            if named == old:
                log.error(
                    "witness %s refused %s at size %d (HTTP %d: %s): a witness refuses what does not extend "
                    "what it saw. Run `warden audit verify`",
                    witness.url,
                    checkpoint.origin,
                    checkpoint.size,
                    status,
                    body.strip()[:300],
                )
                return []
            self.sizes[known] = old = named
            if old > checkpoint.size:
                log.error(
                    "witness %s has cosigned %s at size %d, past this checkpoint's %d: this ledger lost rows "
                    "it had shown (or another sink signs for it). Run `warden audit verify`",
                    witness.url,
                    checkpoint.origin,
                    old,
                    checkpoint.size,
                )
                return []
        return []

    async def _post(self, witness: WitnessConfig, body: bytes) -> tuple[int, str, str]:
        if self._session is None:  # made on the first request: a ClientSession belongs to the running loop
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        async with self._session.post(f"{witness.url}/add-checkpoint", data=body) as response:
            return response.status, await response.text(), response.content_type

    @staticmethod
    def _verified(witness: WitnessConfig, note: Note, body: str) -> list[tuple[WitnessConfig, Signature]]:
        kept = []
        for line in body.splitlines():
            try:
                signature = Signature.from_line(line)
                verified_by(Note(note.text, (signature,)), [witness.key])
            except NoteError as exc:
                log.warning("witness %s answered a line that is not its cosignature (%s); ignored", witness.url, exc)
                continue
            kept.append((witness, signature))
        return kept


def store_signatures(
    store: Store, cp: checkpoints.Checkpoint, signed: list[tuple[NoteKey, Signature]], now: datetime
) -> None:
    """The witnesses' cosignature lines of the checkpoint's note (the log's own line is the
    checkpoint's ``signature``, stored with it)."""
    rows = [
        {"chain": cp.chain, "seq": cp.seq, "signer": key.vkey, "line": signature.line, "ts": now}
        for key, signature in signed
    ]
    if not rows:
        return
    store.insert(AUDIT_NOTE_SIGNATURES, pa.Table.from_pylist(rows, schema=SIGNATURE_ARROW_SCHEMA))


SIGNATURE_ARROW_SCHEMA = pa.schema(
    [
        ("chain", pa.uint16()),
        ("seq", pa.uint64()),
        ("signer", pa.string()),
        ("line", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)
