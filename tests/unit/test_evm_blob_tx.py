"""EIP-4844 blob transactions (type 3): the signed transaction and its network form checked byte for
byte against an independent implementation (eth-account 0.14, which signs type 3 and builds both
network forms, and ckzg under eth-account's own copy of the trusted setup), and mined by a real,
private Anvil (1.7.1, default hardfork Bpo1: Osaka's rules).

eth-account quirk, seen here: ``Account.sign_transaction(..., blobs=...)`` returns the *network*
form as ``raw_transaction`` and its ``hash`` is the keccak of that whole network form, which is not
the transaction hash (that covers the canonical ``0x03 || rlp(body)`` only). The comparisons below
use eth-account's canonical form (signed without ``blobs=``) for hashes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ckzg
import eth_account
import pytest
import rlp
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from evm import blobs
from evm import transactions as txs
from evm.blobs import Sidecar
from evm.constants import SECP256K1N
from tests.evm_support import BLOBS, CHAIN, TO, blob_of

KEY = bytes.fromhex("4c0883a69102937d6231471b5decb2243e0e3ad3b0ad39fea4d99bb1b1b3c2c7")
ADDRESS = Account.from_key(KEY).address
SLOT = bytes(31) + b"\x07"
ACCESS = ((bytes.fromhex("11" * 20), (SLOT, bytes(32))),)
# eth-account's copy of the mainnet setup: an independent load of the same ceremony output.
THEIR_SETUP = Path(eth_account.__file__).parent / "typed_transactions" / "blob_transactions" / "kzg_trusted_setup.txt"


def _tx(hashes: tuple[bytes, ...], **overrides: Any) -> txs.BlobTransaction:
    fields: dict[str, Any] = dict(
        chain_id=CHAIN,
        nonce=4,
        max_priority_fee_per_gas=10**9,
        max_fee_per_gas=3 * 10**10,
        gas=100_000,
        to=TO,
        value=5,
        data=b"\x01\x02\x00",
        access_list=ACCESS,
        max_fee_per_blob_gas=7,
        blob_versioned_hashes=hashes,
    )
    return txs.BlobTransaction(**(fields | overrides))


def _theirs(tx: txs.BlobTransaction) -> dict[str, Any]:
    """The same transaction as eth-account's dict (without the versioned hashes)."""
    return {
        "type": 3,
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
        "maxFeePerGas": tx.max_fee_per_gas,
        "gas": tx.gas,
        "to": to_checksum_address(tx.to),
        "value": tx.value,
        "data": "0x" + tx.data.hex(),
        "maxFeePerBlobGas": tx.max_fee_per_blob_gas,
        "accessList": [
            {"address": to_checksum_address(a), "storageKeys": ["0x" + k.hex() for k in keys]}
            for a, keys in tx.access_list
        ],
    }


# --- against eth-account and ckzg -------------------------------------------------------------------
#
# eth-account loads its trusted setup again for every blob and every property it computes (about three
# seconds each here, 37 s of this module), so its network form is made once per module, and its own
# setup file is loaded once: eth-account still computes everything itself, under its own setup.


@pytest.fixture(scope="module", autouse=True)
def _eth_account_loads_its_setup_once() -> Iterator[None]:
    from eth_account.typed_transactions import base

    patch = pytest.MonkeyPatch()
    patch.setattr(base, "load_trusted_setup", functools.cache(ckzg.load_trusted_setup))
    yield
    patch.undo()


@pytest.fixture(scope="module")
def their_network_form(sidecar: Sidecar) -> bytes:
    tx = _tx(sidecar.versioned_hashes)
    return bytes(Account.sign_transaction(_theirs(tx), KEY, blobs=list(BLOBS)).raw_transaction)


def test_a_blob_transaction_is_byte_for_byte_eth_accounts_and_recovers(
    sidecar: Sidecar, their_network_form: bytes
) -> None:
    for count in (1, 2):
        tx = _tx(sidecar.versioned_hashes[:count])
        mine = txs.sign_transaction(tx, KEY, CHAIN)
        assert mine.raw[0] == 3 and mine.v in (0, 1) and mine.s <= SECP256K1N // 2
        # The canonical form: eth-account signs it when given the versioned hashes instead of blobs.
        canonical = Account.sign_transaction(
            _theirs(tx) | {"blobVersionedHashes": ["0x" + h.hex() for h in tx.blob_versioned_hashes]}, KEY
        )
        assert mine.raw == bytes(canonical.raw_transaction)
        assert mine.tx_hash == bytes(canonical.hash) == keccak(mine.raw)
        assert (mine.v, mine.r, mine.s) == (canonical.v, canonical.r, canonical.s)
        assert Account.recover_transaction(mine.raw) == ADDRESS
        assert txs.decode_signed(mine.raw) == (tx, mine.v, mine.r, mine.s)
        assert txs.recover_sender(mine.raw) == mine.sender == bytes.fromhex(ADDRESS[2:])
    # The network form (Osaka: wrapper version 1 and cell proofs), which eth-account makes from the blobs.
    # (eth-account encodes it, but cannot decode a network form whose access list is not empty: it
    # leaves the nested body's access list in RLP structure and then refuses it as a "TypeError:
    # Transaction had invalid fields: {'accessList': ...}". The test below decodes one without.)
    assert blobs.network_encoding(mine.raw, sidecar) == their_network_form


def test_the_sidecar_is_what_eth_account_and_ckzg_compute_under_their_own_trusted_setup(
    sidecar: Sidecar, their_network_form: bytes
) -> None:
    body, version, their_blobs, their_commitments, their_cell_proofs = rlp.decode(their_network_form[1:])
    assert version == b"\x01" and tuple(their_blobs) == sidecar.blobs == BLOBS
    assert sidecar.commitments == tuple(their_commitments)
    assert sidecar.cell_proofs == tuple(their_cell_proofs)
    assert sidecar.versioned_hashes == tuple(body[10])
    # ckzg under eth-account's copy of the setup: the same commitments and proofs, and they verify.
    setup = ckzg.load_trusted_setup(str(THEIR_SETUP), 0)
    assert sidecar.commitments == tuple(ckzg.blob_to_kzg_commitment(blob, setup) for blob in BLOBS)
    assert sidecar.proofs == tuple(
        ckzg.compute_blob_kzg_proof(blob, commitment, setup)
        for blob, commitment in zip(BLOBS, sidecar.commitments, strict=False)
    )
    assert ckzg.verify_blob_kzg_proof_batch(
        b"".join(BLOBS), b"".join(sidecar.commitments), b"".join(sidecar.proofs), setup
    )
    cells = [cell for blob in BLOBS for cell in ckzg.compute_cells(blob, setup)]
    assert ckzg.verify_cell_kzg_proof_batch(
        [c for c in sidecar.commitments for _ in range(blobs.CELLS_PER_BLOB)],
        list(range(blobs.CELLS_PER_BLOB)) * len(BLOBS),
        cells,
        list(sidecar.cell_proofs),
        setup,
    )
    for commitment, versioned in zip(sidecar.commitments, sidecar.versioned_hashes, strict=False):
        assert versioned[0] == blobs.VERSIONED_HASH_VERSION_KZG and len(versioned) == 32
        assert blobs.versioned_hash(commitment) == versioned
    # The all-zero blob commits to the point at infinity; its versioned hash is a well-known constant.
    empty = blobs.make_sidecar((bytes(blobs.BYTES_PER_BLOB),))
    assert empty.commitments[0] == b"\xc0" + bytes(47)
    assert empty.versioned_hashes[0].hex() == "010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014"


def test_the_pre_osaka_network_form_is_the_one_eth_account_decodes() -> None:
    sidecar = blobs.make_sidecar(BLOBS[:1])
    # No access list: eth-account cannot decode a network form with one (see above).
    mine = txs.sign_transaction(_tx(sidecar.versioned_hashes, access_list=()), KEY, CHAIN)
    legacy = blobs.network_encoding(mine.raw, sidecar, osaka=False)
    body, their_blobs, commitments, proofs = rlp.decode(legacy[1:])
    assert body == rlp.decode(mine.raw[1:]) and tuple(their_blobs) == sidecar.blobs
    assert tuple(commitments) == sidecar.commitments and tuple(proofs) == sidecar.proofs
    # eth-account reads [tx_payload_body, blobs, commitments, proofs] (EIP-4844) with its legacy
    # serializer, checks the hashes against the blobs and computes the blob proofs itself.
    decoded = TypedTransaction.from_bytes(HexBytes(legacy)).transaction
    assert decoded.blob_data is not None
    assert [p.as_bytes() for p in decoded.blob_data.proofs] == list(sidecar.proofs)
    for form in (legacy, blobs.network_encoding(mine.raw, sidecar)):
        assert Account.recover_transaction(form) == ADDRESS


# --- refused, with the reason ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blob_list, error",
    [
        ((), "1 to 6 blobs"),
        (tuple(blob_of(i) for i in range(7)), "1 to 6 blobs"),
        ([blob_of(0)], "1 to 6 blobs as a tuple"),
        ((bytes(10),), "blobs[0] is 10 bytes; a blob is exactly 131072"),
        ((blob_of(0), bytes(blobs.BYTES_PER_BLOB + 1)), "blobs[1] is 131073 bytes"),
        ((bytearray(blobs.BYTES_PER_BLOB),), "blobs[0] must be bytes, not bytearray"),
        ((blob_of(0), b"\xff" * blobs.BYTES_PER_BLOB), "blobs[1]: field element 0 (bytes 0..31)"),
        # Exactly the modulus, in the sixth element: the first value that does not fit.
        (
            (bytes(160) + blobs.BLS_MODULUS.to_bytes(32, "big") + bytes(blobs.BYTES_PER_BLOB - 192),),
            "blobs[0]: field element 5 (bytes 160..191) is not below the BLS12-381 modulus",
        ),
    ],
)
def test_blobs_that_cannot_be_committed_are_refused_with_the_reason(blob_list: Any, error: str) -> None:
    with pytest.raises(blobs.InvalidBlob) as caught:
        blobs.make_sidecar(blob_list)
    assert error in str(caught.value)


def test_the_largest_field_element_is_a_blob() -> None:
    largest = (blobs.BLS_MODULUS - 1).to_bytes(32, "big") * 4096
    assert len(blobs.make_sidecar((largest,)).commitments[0]) == 48


@pytest.mark.parametrize(
    "hashes, error",
    [
        ((), "1 to 6 hashes"),
        ((b"\x01" + bytes(31),) * 7, "1 to 6 hashes"),
        ([b"\x01" + bytes(31)], "must be a tuple"),
        ((b"\x01" + bytes(31), b"\x02" + bytes(31)), r"blob_versioned_hashes\[1\] must be 32 bytes starting with 0x01"),
        ((b"\x01" + bytes(30),), r"blob_versioned_hashes\[0\] must be 32 bytes"),
        ((bytearray(b"\x01" + bytes(31)),), r"blob_versioned_hashes\[0\] must be 32 bytes"),
    ],
)
def test_blob_hashes_must_be_kzg_versioned(hashes: Any, error: str) -> None:
    with pytest.raises(txs.InvalidTransaction, match=error):
        _tx(hashes)


def test_a_blob_transaction_cannot_create_a_contract_or_sign_for_another_chain(sidecar: Sidecar) -> None:
    with pytest.raises(txs.InvalidTransaction, match="type 3 cannot create a contract"):
        _tx(sidecar.versioned_hashes, to=b"")
    with pytest.raises(txs.InvalidTransaction, match="max_fee_per_blob_gas must be an int"):
        _tx(sidecar.versioned_hashes, max_fee_per_blob_gas=True)
    with pytest.raises(txs.InvalidTransaction, match="chain_id mismatch"):
        txs.sign_transaction(_tx(sidecar.versioned_hashes), KEY, 1)


def test_a_sidecar_must_match_itself_and_the_transaction_it_is_sent_with(sidecar: Sidecar) -> None:
    one = blobs.make_sidecar(BLOBS[:1])
    with pytest.raises(blobs.InvalidBlob, match=r"versioned_hashes\[0\] is not the versioned hash of commitments\[0\]"):
        blobs.Sidecar(one.blobs, one.commitments, one.proofs, (b"\x01" + bytes(31),))
    with pytest.raises(blobs.InvalidBlob, match="1 blobs need 128 cell proofs"):
        blobs.Sidecar(one.blobs, one.commitments, one.proofs, one.versioned_hashes, one.cell_proofs[:127])
    with pytest.raises(blobs.InvalidBlob, match="2 blobs need 2 commitments"):
        blobs.Sidecar(sidecar.blobs, one.commitments, one.proofs, one.versioned_hashes)
    with pytest.raises(blobs.InvalidBlob, match="a KZG commitment is 48 bytes"):
        blobs.versioned_hash(bytes(32))
    signed = txs.sign_transaction(_tx(sidecar.versioned_hashes), KEY, CHAIN)
    with pytest.raises(blobs.InvalidBlob, match="not the ones the transaction signed"):
        blobs.network_encoding(signed.raw, one)
    with pytest.raises(blobs.InvalidBlob, match="has no cell proofs"):
        blobs.network_encoding(
            signed.raw, blobs.Sidecar(sidecar.blobs, sidecar.commitments, sidecar.proofs, sidecar.versioned_hashes)
        )
    network = blobs.network_encoding(signed.raw, sidecar)
    with pytest.raises(blobs.InvalidBlob, match="not its network form"):
        blobs.network_encoding(network, sidecar)
    with pytest.raises(blobs.InvalidBlob, match="signed type-3 transaction"):
        blobs.network_encoding(b"\x02" + signed.raw[1:], sidecar)
    # decode_signed takes the canonical form only, and says so.
    for form in (network, blobs.network_encoding(signed.raw, sidecar, osaka=False)):
        with pytest.raises(txs.InvalidTransaction, match="network form"):
            txs.decode_signed(form)


def test_a_trusted_setup_that_is_not_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = tmp_path / "kzg_trusted_setup.txt"
    text = Path(blobs.__file__).with_name("kzg_trusted_setup.txt").read_text()
    tampered.write_text(text.replace("a", "b", 1))
    monkeypatch.setattr(blobs, "_SETUP_FILE", tampered)
    monkeypatch.setattr(blobs, "_setup", None)
    with pytest.raises(RuntimeError, match="not the pinned mainnet trusted setup"):
        blobs.make_sidecar((blob_of(3),))


# --- round trips ------------------------------------------------------------------------------------

_addresses = st.binary(min_size=20, max_size=20)
_access = st.lists(
    st.tuples(_addresses, st.lists(st.binary(min_size=32, max_size=32), max_size=3).map(tuple)), max_size=3
).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    key=st.integers(1, SECP256K1N - 1),
    chain_id=st.integers(1, 2**64 - 1),
    nonce=st.integers(0, 2**64 - 2),
    fees=st.tuples(st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1)).map(sorted),
    gas=st.integers(0, 2**64 - 1),
    to=_addresses,
    value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=80),
    access=_access,
    blob_fee=st.integers(0, 2**256 - 1),
    hashes=st.lists(st.binary(min_size=31, max_size=31), min_size=1, max_size=6),
)
def test_type_3_round_trips_and_recovers(
    key: int,
    chain_id: int,
    nonce: int,
    fees: list[int],
    gas: int,
    to: bytes,
    value: int,
    data: bytes,
    access: txs.AccessList,
    blob_fee: int,
    hashes: list[bytes],
) -> None:
    private_key = key.to_bytes(32, "big")
    tx = txs.BlobTransaction(
        chain_id, nonce, fees[0], fees[1], gas, to, value, data, access, blob_fee, tuple(b"\x01" + h for h in hashes)
    )
    signed = txs.sign_transaction(tx, bytearray(private_key), chain_id)
    assert txs.decode_signed(signed.raw) == (tx, signed.v, signed.r, signed.s)
    assert txs.recover_sender(signed.raw) == signed.sender == txs.address_of(private_key)
    assert Account.recover_transaction(signed.raw) == to_checksum_address(signed.sender)
