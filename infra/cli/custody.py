"""What the commands that touch custody share: reading key material from files (never from
argv) and writing it to new ones, custody's messages in the CLI's words, and publishing the
custody events a change leaves behind."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import sys
from pathlib import Path

from infra.cli.output import note
from runtime.clock import utcnow
from runtime.config import Settings
from schemas.emit import Emit
from schemas.errors import WardenError
from schemas.sealing import decode_client_share
from sdk.quorum import publish_custody_change
from signer.custody import MAX_SECRET_BYTES
from signer.custody._crypto import KEY_BYTES, wipe

KEY_FILE_LIMIT = 4096


def read_client_share_text(path: str) -> str:
    """A client share from a file (``-``: standard input), never from the command line, where
    other users of the machine could read it in the process list."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    decode_client_share(text)  # a clear error now rather than an opaque refusal later
    return text.strip()


# How long a command waits for a signer to apply the key change it published (`--wait`).
WAIT_S = 30.0
WAIT_HELP = "seconds to wait for a signer to apply the key change (default 30; 0: publish and return)"


def publish(settings: Settings, emits: list[Emit], wait_s: float = WAIT_S) -> None:
    """Custody changes belong on their topics and in the ledger. The vault events go out as one
    change signed by this admin: published when that is the quorum for ``keys`` (and waited for,
    up to ``wait_s``, until a signer applied them), else proposed for the other admins to sign.
    Without a reachable broker, say so plainly: the home's file log holds the change, but no
    signer has it."""
    if not emits:
        return
    try:
        change = publish_custody_change(settings, emits, utcnow(), wait_s=wait_s)
        done = asyncio.run(asyncio.wait_for(change, timeout=30 + wait_s))
    except Exception as exc:  # the change is done here; its audit record must not vanish silently
        note(
            f"warning: {len(emits)} custody event(s) not published to warden.vault / warden.audit.events "
            f"({exc.__class__.__name__}: broker {settings.broker} unreachable?); no signer has this change"
        )
        return
    signed = f"signed by {', '.join(done.signed_by) or 'nobody pinned'}, {len(done.signed_by)} of {done.needed}"
    if done.proposal_id is not None:  # not published: proposed to the other admins
        note(
            f"key change proposed ({done.proposal_id[:16]}), {signed}: no signer uses it until "
            f"another admin signs it (`warden approvals sign {done.proposal_id[:16]}`)"
        )
    elif done.refused:
        note(f"warning: a signer refused this key change ({signed}): {next(iter(done.refused.values()))}")
    elif not done.applied and wait_s > 0:
        note(
            f"key change published ({signed}); no signer applied it within {wait_s:.0f} s (is a signer "
            "running, and are its keys pinned here?)"
        )


class UsageError(WardenError):
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
            note(f"reading {flag.removeprefix('--')} from standard input; end it with Ctrl-D")
    else:
        try:
            stream = open(spec, "rb")  # noqa: SIM115 - handed to the caller, who closes it
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
        note(
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


def create_exclusive(path: str, flag: str) -> int:
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


def write_all(fd: int, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view) :]
    os.fsync(fd)


def cli_hint(message: str) -> str:
    """Custody's messages name the Python API where the CLI has a flag for it."""
    return message.replace(
        "load the vault's current customer-managed key first (Vaults.load_cmek)",
        "give the vault's current customer-managed key with --current-key-file FILE",
    ).replace("load it with Vaults.load_cmek", "pass it with --cmek-file FILE (32 raw bytes or base64)")
