"""A PSBT (BIP-174 v0, BIP-370 v2) read as Warden judges it: the transaction, what each input
spends, and the fee, with embit's parser (`embit.psbt.PSBT`).

An agent hands Warden a PSBT that spends outputs of its own wallet (`btc.wallet`); Warden reads
what it pays, judges it and signs it (`btc.signing`). What this module reads is what the signer
signs: both go through `parse`, so a field embit would read one way and another tool another is
refused here rather than judged one way and signed the other:

- each key-value map is also walked by its lengths (embit's `read_string`) before embit reads it,
  which bounds a v2 PSBT's declared input and output counts (embit would build that many objects)
  and shows the fields embit would take from the wrong version (a v0 input's
  ``PSBT_IN_PREVIOUS_TXID`` overrides the unsigned transaction's prevout in embit);
- a ``non_witness_utxo`` must be exactly one transaction of its stated length (embit reads it off
  the stream, not off its length), must hash to the prevout's txid (embit checks it only when
  asked) and must agree with the ``witness_utxo`` when both are given;
- the transaction embit writes back to sign must be the PSBT's unsigned transaction byte for
  byte (embit writes a sequence of 0 as 0xffffffff and a version of 0 as 2, and drops scriptSigs);
- BIP-370's per-input lock times are refused: embit does not compute the lock time from them.

Amounts are checked as the network checks them: none above 21e6 BTC, and the outputs not above
the inputs when the PSBT gives every input's amount.

Everything embit raises for malformed bytes becomes `PsbtInvalid`, which says what is wrong; no
input makes `read` raise anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from embit import compact
from embit.psbt import PSBT, read_string
from embit.script import Script, Witness
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from btc.wallet import OwnScripts

__all__ = [
    "MAX_PSBT_BYTES",
    "MAX_MONEY",
    "ECDSA_DER_BYTES",
    "PsbtInvalid",
    "Input",
    "Output",
    "Psbt",
    "read",
    "vsize",
    "Parsed",
    "parse",
]

MAX_PSBT_BYTES = 100_000
MAX_MONEY = 21_000_000 * 100_000_000  # sats: no amount on the network is larger (consensus)
_MAGIC = b"psbt\xff"
_BASE64_MAGIC = b"cHNidP"  # "psbt\xff" in base64: the text form, not the bytes
_RBF_BELOW = 0xFFFFFFFE  # BIP-125: a sequence below this signals replaceability
# Fields by key type (BIP-174, BIP-370) that only one PSBT version has.
_V2_GLOBALS = {
    0x02: "TX_VERSION",
    0x03: "FALLBACK_LOCKTIME",
    0x04: "INPUT_COUNT",
    0x05: "OUTPUT_COUNT",
    0x06: "TX_MODIFIABLE",
}
_V2_INPUTS = {
    0x0E: "PREVIOUS_TXID",
    0x0F: "OUTPUT_INDEX",
    0x10: "SEQUENCE",
    0x11: "REQUIRED_TIME_LOCKTIME",
    0x12: "REQUIRED_HEIGHT_LOCKTIME",
}
_V2_OUTPUTS = {0x03: "AMOUNT", 0x04: "SCRIPT"}
# Input fields that carry a signature: partial sig, final scriptSig and witness, taproot key path
# sig (0x13, which embit keeps as unknown) and script path sigs.
_SIGNATURE_KEYS = frozenset({0x02, 0x07, 0x08, 0x13, 0x14})

# embit's PSBT object; embit has no types, so this module keeps it inside typed functions.
EmbitPsbt = Any
_Map = Mapping[bytes, bytes]


class PsbtInvalid(ValueError):
    """Bytes that are not a PSBT Warden reads, with what is wrong."""


@dataclass(frozen=True)
class Input:
    txid: str  # the spent output's transaction id, hex, as explorers show it
    vout: int
    sequence: int
    amount: int | None  # sats, from witness_utxo or non_witness_utxo (None: the PSBT says not)
    script: bytes | None  # the spent output's scriptPubKey (None: not said)
    sighash: int | None  # PSBT_IN_SIGHASH_TYPE, None when absent
    has_signatures: bool  # partial sigs / taproot key sig / final witness already present


@dataclass(frozen=True)
class Output:
    script: bytes
    amount: int


@dataclass(frozen=True)
class Psbt:
    txid: str  # the unsigned transaction's id (segwit: the signed one's too)
    version: int  # the transaction's version (not the PSBT's)
    locktime: int
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]

    @property
    def signals_rbf(self) -> bool:
        """Whether an input opts in to replacement by fee (BIP-125)."""
        return any(i.sequence < _RBF_BELOW for i in self.inputs)

    def fee(self) -> int | None:
        """Inputs less outputs, in sats; None when an input's amount is unknown."""
        amounts = [i.amount for i in self.inputs]
        if any(a is None for a in amounts):
            return None
        return sum(a for a in amounts if a is not None) - sum(o.amount for o in self.outputs)


def read(raw: bytes) -> Psbt:
    """The PSBT's bytes → `Psbt`, or `PsbtInvalid` saying what is wrong with them."""
    return summary(parse(raw))


# --------------------------------------------------------------------------
# Parsing (shared with btc.signing)
# --------------------------------------------------------------------------


def _read_map(stream: BytesIO, where: str) -> dict[bytes, bytes]:
    entries: dict[bytes, bytes] = {}
    try:
        while key := bytes(read_string(stream)):
            if key in entries:
                raise PsbtInvalid(f"{where} has the key {key.hex()} twice (BIP-174: keys are unique in a map)")
            entries[key] = bytes(read_string(stream))
    except PsbtInvalid:
        raise
    except Exception:  # noqa: BLE001 - embit's PSBTError, compact's RuntimeError, BytesIO's OverflowError
        raise PsbtInvalid(f"{where} ends before its key-value pairs do (a length runs past the bytes)") from None
    return entries


def _count(value: bytes, what: str, most: int) -> int:
    try:
        count = int(compact.from_bytes(value))
    except Exception:  # noqa: BLE001 - a compact size that is not one
        raise PsbtInvalid(f"{what} is not a compact size") from None
    if count > most:
        raise PsbtInvalid(f"{what} is {count}, more than {most} fit in the PSBT's bytes")
    return count


def _version(globals_: _Map, size: int) -> int:
    """The PSBT's version, after checking the global fields that depend on it."""
    raw_version = globals_.get(b"\xfb", b"\x00\x00\x00\x00")
    if len(raw_version) != 4:
        raise PsbtInvalid("PSBT_GLOBAL_VERSION must be 4 bytes")
    version = int.from_bytes(raw_version, "little")
    if version not in (0, 2):
        raise PsbtInvalid(f"PSBT version {version} is not one Warden reads: v0 (BIP-174) or v2 (BIP-370)")
    if version == 0:
        if b"\x00" not in globals_:
            raise PsbtInvalid("a v0 PSBT must carry its unsigned transaction (PSBT_GLOBAL_UNSIGNED_TX)")
        # The unsigned transaction has no witnesses (BIP-174), so its fifth byte is its input
        # count; embit would read a 0 there as the segwit marker.
        if globals_[b"\x00"][4:5] == b"\x00":
            raise PsbtInvalid("the unsigned transaction has no inputs, or is written with witnesses (BIP-174: without)")
        for key in globals_:
            if len(key) == 1 and key[0] in _V2_GLOBALS:
                raise PsbtInvalid(f"a v0 PSBT must not carry PSBT_GLOBAL_{_V2_GLOBALS[key[0]]} (a v2 field)")
        return version
    if b"\x00" in globals_:
        raise PsbtInvalid("a v2 PSBT must not carry PSBT_GLOBAL_UNSIGNED_TX (BIP-370)")
    for key, name, length in ((b"\x02", "TX_VERSION", 4), (b"\x03", "FALLBACK_LOCKTIME", 4)):
        if key in globals_ and len(globals_[key]) != length:
            raise PsbtInvalid(f"PSBT_GLOBAL_{name} must be {length} bytes")
    for key, name in ((b"\x02", "TX_VERSION"), (b"\x04", "INPUT_COUNT"), (b"\x05", "OUTPUT_COUNT")):
        if key not in globals_:
            raise PsbtInvalid(f"a v2 PSBT must carry PSBT_GLOBAL_{name} (BIP-370)")
    if int.from_bytes(globals_[b"\x02"], "little") < 2:
        raise PsbtInvalid("a v2 PSBT's transaction version must be 2 or more (BIP-370)")
    # Each map ends in a separator byte, so no more maps than bytes.
    _count(globals_[b"\x04"], "PSBT_GLOBAL_INPUT_COUNT", size)
    _count(globals_[b"\x05"], "PSBT_GLOBAL_OUTPUT_COUNT", size)
    return version


def _check_v2_input(i: int, fields: _Map) -> None:
    for key, name, length in ((b"\x0e", "PREVIOUS_TXID", 32), (b"\x0f", "OUTPUT_INDEX", 4), (b"\x10", "SEQUENCE", 4)):
        if key in fields and len(fields[key]) != length:
            raise PsbtInvalid(f"input {i}: PSBT_IN_{name} must be {length} bytes")
    for key, name in ((b"\x0e", "PREVIOUS_TXID"), (b"\x0f", "OUTPUT_INDEX")):
        if key not in fields:
            raise PsbtInvalid(f"input {i}: a v2 PSBT's input must carry PSBT_IN_{name} (BIP-370)")
    for key in (b"\x11", b"\x12"):
        if key in fields:
            raise PsbtInvalid(
                f"input {i}: PSBT_IN_{_V2_INPUTS[key[0]]} is not read by Warden; set the lock time with "
                "PSBT_GLOBAL_FALLBACK_LOCKTIME instead"
            )


def _check_v2_output(i: int, fields: _Map) -> None:
    if b"\x03" not in fields or b"\x04" not in fields:
        raise PsbtInvalid(f"output {i}: a v2 PSBT's output must carry PSBT_OUT_AMOUNT and PSBT_OUT_SCRIPT (BIP-370)")
    if len(fields[b"\x03"]) != 8:
        raise PsbtInvalid(f"output {i}: PSBT_OUT_AMOUNT must be 8 bytes")


def _check_v0_fields(kind: str, i: int, fields: _Map, v2_only: Mapping[int, str]) -> None:
    for key in fields:
        if len(key) == 1 and key[0] in v2_only:
            prefix = "PSBT_IN_" if kind == "input" else "PSBT_OUT_"
            raise PsbtInvalid(f"{kind} {i}: a v0 PSBT must not carry {prefix}{v2_only[key[0]]} (a v2 field)")


def _embit(raw: bytes) -> EmbitPsbt:
    try:
        return PSBT.parse(raw)
    except Exception as exc:  # noqa: BLE001 - embit raises PSBTError, EmbitError, ValueError, IndexError, ...
        raise PsbtInvalid(f"the PSBT does not parse: {_said(exc)}") from None


def _said(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_maps(raw: bytes, psbt: EmbitPsbt, version: int) -> tuple[dict[bytes, bytes], ...]:
    """Walk every input and output map by its lengths; check what embit read against it."""
    stream = BytesIO(raw)
    stream.seek(len(_MAGIC))
    _read_map(stream, "the global map")
    inputs = tuple(_read_map(stream, f"input {i}'s map") for i in range(len(psbt.inputs)))
    outputs = tuple(_read_map(stream, f"output {i}'s map") for i in range(len(psbt.outputs)))
    if stream.read(1):
        raise PsbtInvalid("bytes follow the PSBT's last output map")
    for i, fields in enumerate(inputs):
        if version == 2:
            _check_v2_input(i, fields)
        else:
            _check_v0_fields("input", i, fields, _V2_INPUTS)
        nwu = psbt.inputs[i].non_witness_utxo
        if b"\x00" in fields and (nwu is None or bytes(nwu.serialize()) != fields[b"\x00"]):
            raise PsbtInvalid(f"input {i}: its non_witness_utxo is not one whole transaction of its stated length")
    for i, fields in enumerate(outputs):
        if version == 2:
            _check_v2_output(i, fields)
        else:
            _check_v0_fields("output", i, fields, _V2_OUTPUTS)
    return inputs


@dataclass(frozen=True)
class Parsed:
    """A PSBT as embit reads it, checked (`parse`); ``signed[i]``: input i carries a signature."""

    embit: EmbitPsbt
    signed: tuple[bool, ...]


def parse(raw: bytes) -> Parsed:
    """embit's reading of ``raw``, checked as the module docstring says (`PsbtInvalid` if not);
    `read` and `btc.signing.sign` both start here."""
    if not isinstance(raw, bytes | bytearray):
        raise PsbtInvalid(f"a PSBT is bytes, not a {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) > MAX_PSBT_BYTES:
        raise PsbtInvalid(f"the PSBT is {len(raw)} bytes; Warden reads at most {MAX_PSBT_BYTES}")
    if not raw.startswith(_MAGIC):
        hint = " (that is its base64 text: give the decoded bytes)" if raw.startswith(_BASE64_MAGIC) else ""
        raise PsbtInvalid(f"not a PSBT: BIP-174 bytes begin with 'psbt' 0xff{hint}")
    stream = BytesIO(raw)
    stream.seek(len(_MAGIC))
    globals_ = _read_map(stream, "the global map")
    version = _version(globals_, len(raw))
    psbt = _embit(raw)
    inputs = _check_maps(raw, psbt, version)
    if not psbt.inputs:
        raise PsbtInvalid("the transaction has no inputs")
    if not psbt.outputs:
        raise PsbtInvalid("the transaction has no outputs")
    _check_written_back(psbt, globals_.get(b"\x00"))
    _check_prevouts(psbt)
    _check_amounts(psbt)
    return Parsed(psbt, tuple(any(k and k[0] in _SIGNATURE_KEYS for k in fields) for fields in inputs))


def _check_written_back(psbt: EmbitPsbt, unsigned: bytes | None) -> None:
    """The transaction embit builds to sign is the one the PSBT gives. embit writes a sequence of 0
    as 0xffffffff and a version of 0 as 2, and drops scriptSigs and witnesses, which BIP-174 wants
    empty in the unsigned transaction: any of them would sign a transaction other than the one
    the agent built."""
    try:
        written = bytes(psbt.tx.serialize())
    except Exception as exc:  # noqa: BLE001 - a field embit read but cannot write (a v2 field's size)
        raise PsbtInvalid(f"the transaction cannot be serialized: {_said(exc)}") from None
    for i, inp in enumerate(psbt.inputs):
        if inp.sequence == 0:
            raise PsbtInvalid(f"input {i}: a sequence of 0 is not read (embit writes it as 0xffffffff); use 1 or more")
    if psbt.tx_version == 0:
        raise PsbtInvalid("a transaction version of 0 is not read (embit writes it as 2); use version 2")
    if unsigned is not None and written != unsigned:
        raise PsbtInvalid(
            "the unsigned transaction is not the one embit writes back to sign: its scriptSigs must be "
            "empty and it must have no witnesses (BIP-174: signatures go in the input maps), and no "
            "input's sequence may be 0 (embit writes it as 0xffffffff)"
        )


def _check_prevouts(psbt: EmbitPsbt) -> None:
    seen: dict[tuple[bytes, int], int] = {}
    for i, inp in enumerate(psbt.inputs):
        outpoint = (bytes(inp.txid), int(inp.vout))
        if outpoint in seen:
            raise PsbtInvalid(
                f"inputs {seen[outpoint]} and {i} spend the same output {outpoint[0].hex()}:{outpoint[1]}"
            )
        seen[outpoint] = i
        nwu = inp.non_witness_utxo
        if nwu is None:
            continue
        if bytes(nwu.txid()) != outpoint[0]:
            raise PsbtInvalid(
                f"input {i}: its non_witness_utxo is transaction {bytes(nwu.txid()).hex()}, "
                f"not {outpoint[0].hex()}, the one the input spends"
            )
        if outpoint[1] >= len(nwu.vout):
            raise PsbtInvalid(f"input {i}: its non_witness_utxo has no output {outpoint[1]} (it has {len(nwu.vout)})")
        spent, wu = nwu.vout[outpoint[1]], inp.witness_utxo
        if wu is not None and (
            wu.value != spent.value or bytes(wu.script_pubkey.data) != bytes(spent.script_pubkey.data)
        ):
            raise PsbtInvalid(f"input {i}: its witness_utxo and non_witness_utxo disagree on the output it spends")


def _spent(inp: Any) -> Any:
    """The output an input spends, as the PSBT gives it (embit's TransactionOutput), or None."""
    if inp.witness_utxo is not None:
        return inp.witness_utxo
    if inp.non_witness_utxo is not None:
        return inp.non_witness_utxo.vout[inp.vout]
    return None


def _check_amounts(psbt: EmbitPsbt) -> None:
    total_in = 0
    for i, inp in enumerate(psbt.inputs):
        spent = _spent(inp)
        if spent is not None and spent.value > MAX_MONEY:
            raise PsbtInvalid(f"input {i}: it spends {spent.value} sats, more than the 21e6 BTC there are")
        total_in += spent.value if spent is not None else 0
    total_out = 0
    for i, out in enumerate(psbt.outputs):
        if out.value > MAX_MONEY:
            raise PsbtInvalid(f"output {i}: it pays {out.value} sats, more than the 21e6 BTC there are")
        total_out += out.value
    if total_out > MAX_MONEY:
        raise PsbtInvalid(f"the outputs pay {total_out} sats together, more than the 21e6 BTC there are")
    if all(_spent(inp) is not None for inp in psbt.inputs) and total_out > total_in:
        raise PsbtInvalid(f"the outputs pay {total_out} sats, more than the {total_in} the inputs spend")


def summary(parsed: Parsed) -> Psbt:
    """What a checked PSBT says, as this module's types."""
    psbt = parsed.embit
    tx = psbt.tx
    txid = bytes(tx.txid()).hex()
    inputs = []
    for i, inp in enumerate(psbt.inputs):
        spent = _spent(inp)
        inputs.append(
            Input(
                txid=bytes(inp.txid).hex(),
                vout=int(inp.vout),
                sequence=int(tx.vin[i].sequence),
                amount=None if spent is None else int(spent.value),
                script=None if spent is None else bytes(spent.script_pubkey.data),
                sighash=None if inp.sighash_type is None else int(inp.sighash_type),
                has_signatures=parsed.signed[i],
            )
        )
    outputs = tuple(Output(script=bytes(o.script_pubkey.data), amount=int(o.value)) for o in tx.vout)
    return Psbt(txid=txid, version=int(tx.version), locktime=int(tx.locktime), inputs=tuple(inputs), outputs=outputs)


# --------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------

# The witness of each own input as `btc.signing` signs it, byte for byte. A P2WPKH signature is
# DER at exactly `ECDSA_DER_BYTES` (the signer grinds its nonce until it is: a low R and a low S,
# neither short) and its sighash byte; a key path P2TR one is 64 bytes, 65 with an explicit sighash
# byte (SIGHASH_ALL given in the PSBT). So the size judged is the size signed, and a fee rate the
# judge allows is the rate the network sees, not a little over it.
ECDSA_DER_BYTES = 70
_P2WPKH_WITNESS = len(Witness([bytes(ECDSA_DER_BYTES + 1), bytes(33)]).serialize())
_P2TR_WITNESS = len(Witness([bytes(64)]).serialize())
_SEGWIT_MARKER = 2  # the marker and flag bytes, counted at witness weight


def vsize(psbt: Psbt, own: OwnScripts) -> int:
    """The signed transaction's virtual size (BIP-141) once every input is signed as an own
    P2WPKH or an own P2TR key path input by `btc.signing` (its signatures are of the sizes above,
    so this is the signed transaction's size exactly). `ValueError` for an input of another
    script, which Warden does not sign."""
    tx = Transaction(
        version=psbt.version,
        locktime=psbt.locktime,
        vin=[TransactionInput(bytes.fromhex(i.txid), i.vout, sequence=i.sequence) for i in psbt.inputs],
        vout=[TransactionOutput(o.amount, Script(o.script)) for o in psbt.outputs],
    )
    witness = _SEGWIT_MARKER
    for n, i in enumerate(psbt.inputs):
        if i.script == own.p2wpkh:
            witness += _P2WPKH_WITNESS
        elif i.script == own.p2tr:
            witness += _P2TR_WITNESS + (1 if i.sighash not in (None, 0) else 0)
        else:
            raise ValueError(f"input {n} does not spend the agent's own P2WPKH or P2TR script: its size is unknown")
    weight = 4 * len(tx.serialize()) + witness
    return (weight + 3) // 4
