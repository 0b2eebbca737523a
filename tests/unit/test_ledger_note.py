"""C2SP signed notes, checkpoints and cosignatures (`ledger.note`), against the published vectors
of golang.org/x/mod/sumdb/note (the reference the specs came from) and against forgeries."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.note import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteCheckpoint,
    NoteError,
    NoteKey,
    cosign,
    sign,
    verified_by,
)

# golang.org/x/mod/sumdb/note's own test key and signed note (note_test.go, TestSign / TestNewVerifier).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNED = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[-1])
    assert raw[0] == ED25519
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_the_go_reference_vector_signs_and_verifies_as_published() -> None:
    key = go_key()
    assert NoteKey.of("PeterNeumann", ED25519, key).vkey == GO_VKEY
    assert Note(GO_TEXT, (sign(GO_TEXT, "PeterNeumann", key),)).to_bytes().decode() == GO_SIGNED
    note = Note.parse(GO_SIGNED)
    assert note.text == GO_TEXT
    assert verified_by(note, [NoteKey.from_vkey(GO_VKEY)]) == {NoteKey.from_vkey(GO_VKEY): None}


@pytest.mark.parametrize(
    "vkey, why",
    [
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "32 bytes"),  # Go's own bad keys
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "not supported"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key ID"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "without spaces"),
        ("PeterNeumann+c74f20a3", r"<name>\+<key ID hex>\+<base64 key>"),
    ],
)
def test_a_malformed_verifier_key_is_refused_with_why(vkey: str, why: str) -> None:
    with pytest.raises(NoteError, match=why):
        NoteKey.from_vkey(vkey)


def test_unknown_signatures_are_ignored_and_a_known_bad_one_rejects_the_note() -> None:
    key, other = go_key(), Ed25519PrivateKey.generate()
    trusted = NoteKey.of("PeterNeumann", ED25519, key)
    stranger = sign(GO_TEXT, "someone.example/else", other)
    note = Note.parse(GO_SIGNED).with_signatures(stranger)
    assert list(verified_by(note, [trusted])) == [trusted]
    # The same name and key ID as the trusted key, another key's signature: the note is rejected.
    forged = Note(GO_TEXT, (sign(GO_TEXT, "PeterNeumann", other),))
    forged = Note(
        GO_TEXT, (type(forged.signatures[0])("PeterNeumann", trusted.key_id, forged.signatures[0].signature),)
    )
    with pytest.raises(NoteError, match="does not verify"):
        verified_by(forged, [trusted])
    # The text altered under a good signature.
    altered = Note(GO_TEXT.replace("answer", "question"), Note.parse(GO_SIGNED).signatures)
    with pytest.raises(NoteError, match="altered"):
        verified_by(altered, [trusted])
    with pytest.raises(NoteError, match="no signature on the note is by a trusted key"):
        verified_by(Note(GO_TEXT, (stranger,)), [trusted])


@pytest.mark.parametrize(
    "raw, why",
    [
        (GO_TEXT.encode(), "blank line"),
        (GO_TEXT + "\n", "at least one signature"),
        ((GO_TEXT + "\n\u2014 PeterNeumann x08g\n").encode(), "3 bytes"),
        ((GO_TEXT + "\n- PeterNeumann AAAAAAAA\n").encode(), "starts with"),
        (b"\xff\xfe\n\n", "UTF-8"),
        (("a\tb\n\n" + GO_SIGNED.splitlines()[-1] + "\n").encode(), "control characters"),
        (GO_SIGNED.removesuffix("\n"), "ends with a newline"),
    ],
)
def test_a_malformed_note_is_refused_with_why(raw: str | bytes, why: str) -> None:
    with pytest.raises(NoteError, match=why):
        Note.parse(raw)


def test_a_checkpoint_reads_back_and_a_malformed_one_says_which_line() -> None:
    checkpoint = NoteCheckpoint("warden.example/audit/0", 20852163, bytes(range(32)))
    assert checkpoint.text == "warden.example/audit/0\n20852163\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert NoteCheckpoint.parse(checkpoint.text) == checkpoint
    for text, why in (
        ("o\n012\nAAAA\n", "no leading zero"),
        ("o\n12\nAAAA\n", "32 bytes"),
        ("o\n12\n", "one non-empty line each"),
        ("o\n-1\n" + checkpoint.text.split("\n")[2] + "\n", "decimal"),
    ):
        with pytest.raises(NoteError, match=why):
            NoteCheckpoint.parse(text)


def test_a_cosignature_verifies_with_its_time_and_commits_to_it() -> None:
    witness = Ed25519PrivateKey.generate()
    text = NoteCheckpoint("warden.example/audit/0", 5, bytes(32)).text
    signature = cosign(text, "witness.example/w1", witness, 1_679_315_147)
    key = NoteKey.of("witness.example/w1", COSIGNATURE_V1, witness)
    assert signature.key_id == key.key_id != NoteKey.of("witness.example/w1", ED25519, witness).key_id
    assert verified_by(Note(text, (signature,)), [key]) == {key: 1_679_315_147}
    # Another time in front of the same signature: the signed message differs, so it fails.
    moved = type(signature)(
        signature.name, signature.key_id, (1_679_315_148).to_bytes(8, "big") + signature.signature[8:]
    )
    with pytest.raises(NoteError, match="does not verify"):
        verified_by(Note(text, (moved,)), [key])
    # A cosignature is not a log signature: under a type-0x01 key of the same name it is unknown.
    with pytest.raises(NoteError, match="no signature"):
        verified_by(Note(text, (signature,)), [NoteKey.of("witness.example/w1", ED25519, witness)])
