"""What every ``warden vault`` command runs in: the ``VaultCommandContext`` it is given, and ``run``, which
turns custody's errors into exit codes and messages and publishes what the command changed.

Exit codes: 0 done, 1 custody error (no such vault, immutable mode, authentication failed...),
2 usage error (a missing or malformed file, a bad option), 3 refused (the actor may not do
this; the refusal's audit record is still published).
"""

from __future__ import annotations

import argparse
import os
from typing import Callable

from infra.cli.custody import UsageError, cli_hint, create_exclusive, publish, read_client_share, read_cmek
from infra.cli.output import note as _note
from runtime.config import Settings, load
from sdk.vault_creation import vault_creation_pending
from signer.custody import (
    AGENT_KEYS_VAULT,
    CLIENT_MODES,
    AttestationRequired,
    CustodyError,
    InvalidKey,
    PermissionDenied,
    Vaults,
    parse_actor,
)
from signer.custody._crypto import wipe
from signer.custody_wiring import AuditOutbox, VaultOutbox, keystore_from_settings

# The commands that build no change on an existing vault (they read it, or create a new one): every
# other one does, so the vault's creation must be in force first (`sdk.vault_creation`).
BUILD_ON_NO_VAULT = ("get", "list", "create")

INVALID_KEY_HINT = (
    "Warden does not say which key failed to authenticate. Check the client share (--client-share-file: "
    "the one shown when this vault was created), the customer-managed key (--cmek-file, --current-key-file) "
    "and that WARDEN_ROOT_PROVIDER is the root of trust this vault was created under."
)


class VaultCommandContext:
    """One command's arguments, its vaults (opened on first use), and what to wipe or undo when it ends."""

    def __init__(self, args: argparse.Namespace, settings: Settings):
        self.args = args
        self.settings = settings
        self.org: str = args.org
        self.actor: str = args.actor
        self.outbox = AuditOutbox()
        self.vault_events = VaultOutbox()
        self._vaults: Vaults | None = None
        self._buffers: list[bytearray] = []
        self._cleanups: list[Callable[[], None]] = []

    @property
    def vaults(self) -> Vaults:
        if self._vaults is None:
            self._vaults = keystore_from_settings(
                self.settings, audit=self.outbox, vault_outbox=self.vault_events
            ).vaults
        return self._vaults

    def keep(self, buf: bytearray) -> bytearray:
        """Wipe ``buf`` when the command ends, however it ends."""
        self._buffers.append(buf)
        return buf

    def on_failure(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` if the command fails before ``commit`` (e.g. remove a file made for its output)."""
        self._cleanups.append(undo)

    def commit(self) -> None:
        self._cleanups.clear()

    def new_output_file(self, path: str, flag: str) -> int:
        """A new 0600 file for key material, removed again if the command then fails."""
        fd = create_exclusive(path, flag)

        def undo() -> None:
            os.close(fd)
            os.unlink(path)

        self.on_failure(undo)
        return fd

    def finish(self, failed: bool) -> None:
        for buf in self._buffers:
            wipe(buf)
        if failed:
            for undo in reversed(self._cleanups):
                undo()

    def load_cmeks(self, specs: list[str] | None) -> None:
        for spec in specs or ():
            key = self.keep(read_cmek(spec, "--cmek-file"))
            self.vaults.load_cmek(self.org, self.args.vault, key)

    def client_share(self, mode: str | None) -> bytearray | None:
        spec = self.args.client_share_file
        if spec is None:
            if mode in CLIENT_MODES:
                raise UsageError(
                    f"vault {self.args.vault!r} is in {mode}: every read and write needs its client "
                    "share; pass --client-share-file FILE (- for stdin), the file written when the "
                    "vault was created"
                )
            return None
        return self.keep(read_client_share(spec))


def run(args: argparse.Namespace, body: Callable[[VaultCommandContext], None]) -> int:
    name = f"warden vault {args.vault_command}"
    settings = load()
    ctx = VaultCommandContext(args, settings)
    code = 0
    try:
        try:
            parse_actor(args.actor)
        except PermissionDenied as exc:
            raise UsageError(f"--actor: {exc}") from None
        stdin_users = [
            flag
            for flag, value in (
                ("--value-file", getattr(args, "value_file", None)),
                ("--client-share-file", getattr(args, "client_share_file", None)),
                ("--key-file", getattr(args, "key_file", None)),
                ("--current-key-file", getattr(args, "current_key_file", None)),
                *(("--cmek-file", spec) for spec in getattr(args, "cmek_file", None) or ()),
            )
            if value == "-"
        ]
        if len(stdin_users) > 1:
            raise UsageError(
                f"only one of {', '.join(stdin_users)} can read standard input (-); put the others in files"
            )
        if args.vault_command in BUILD_ON_NO_VAULT:
            pending = None
        else:
            pending = vault_creation_pending(settings, ctx.vaults, ctx.org, args.vault)
        if pending is not None:
            raise CustodyError(pending)
        body(ctx)
    except UsageError as exc:
        _note(f"{name}: {exc}")
        code = 2
    except (PermissionDenied, AttestationRequired) as exc:
        _note(f"{name}: refused: {exc}")
        code = 3
    except InvalidKey as exc:
        # The one opaque error: the same words whatever failed, so a caller probing keys learns nothing.
        _note(f"{name}: {exc}. {INVALID_KEY_HINT}")
        code = 1
    except CustodyError as exc:
        _note(f"{name}: {cli_hint(str(exc))}")
        code = 1
    finally:
        ctx.finish(failed=code != 0)
        publish(settings, ctx.vault_events.drain() + ctx.outbox.drain(), args.wait)
    return code


def handler(body: Callable[[VaultCommandContext], None]) -> Callable[[argparse.Namespace], int]:
    return lambda args: run(args, body)


def not_agent_keys(vault: str, what: str) -> None:
    if vault == AGENT_KEYS_VAULT:
        raise UsageError(
            f"vault {AGENT_KEYS_VAULT!r} holds the signing keys and is managed by `warden keys`; "
            f"{what} it with `warden vault` is refused"
        )
