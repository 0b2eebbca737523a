"""Client shares sealed with HPKE to the signer's sealing key (schemas/sealing.py, signer/sealing.py).

Nothing of Warden's is mocked. The HPKE wire format is checked against an independent base-mode
implementation written here from RFC 9180 §4-§5 with bare primitives (X25519, HMAC-SHA256,
AES-GCM), itself checked against the RFC 9180 Appendix A.1.1 test vector. The signer tests run
``Signer.handle`` in-process on a real client-custody vault (local development root in a temp
dir) with the session stack's Anvil as the chain node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schemas import topics
from schemas.auth import public_key_hex, sign_announcement
from schemas.intent import SealedSecret, TransactionIntent
from schemas.sealing import (
    SUITE_NAME,
    SealingRefused,
    decode_client_share,
    key_id,
    seal_client_share,
    sealing_info,
    usable_keys,
)
from schemas.sealing_key import SealingKey
from sdk.client import ClientKey, new_intent
from signer.custody.errors import InvalidKey
from signer.sealing import NotSealedHere, SealingKeyPair
from tests.sealing_support import AGENT, DEST, NOW, share32

OTHER_AGENT = "agent-other"


def intent_with(
    agent_key: Ed25519PrivateKey,
    *,
    agent_id: str = AGENT,
    intent_id: str | None = None,
    sealed: tuple[SealedSecret, ...] = (),
    client_share: ClientKey | None = None,
    **fields: Any,
) -> TransactionIntent:
    fields.setdefault("value", "0.01")
    if sealed:
        fields["sealed_client_share"] = sealed
    return new_intent(
        agent_key,
        agent_id=agent_id,
        chain="anvil",
        to=DEST,
        intent_id=intent_id,
        now=NOW,
        client_share=client_share,
        **fields,
    )


# ---------------------------------------------------------------------------------------------
# 1-3: sealing and opening, binding, restarted signers
# ---------------------------------------------------------------------------------------------


def test_a_sealed_share_opens_to_the_same_32_bytes() -> None:
    pair = SealingKeyPair()
    announced = pair.announcement("signer-1", "none", NOW)
    assert announced.key_id == pair.key_id == key_id(pair.public_key)
    assert announced.public_key == "0x" + pair.public_key.hex() and announced.suite == SUITE_NAME
    share = share32()
    agent_key = Ed25519PrivateKey.generate()
    intent = intent_with(
        agent_key,
        intent_id="i-round-trip",
        sealed=seal_client_share(share, [announced], agent_id=AGENT, intent_id="i-round-trip"),
    )
    (sealed,) = intent.sealed_client_share
    assert sealed.key_id == pair.key_id
    assert bytes(share) not in base64.b64decode(sealed.sealed)  # not in the clear
    opened = pair.open_client_share(intent)
    assert isinstance(opened, bytearray)
    assert opened == share and len(opened) == 32


def test_sealing_twice_gives_different_envelopes_that_both_open() -> None:
    pair = SealingKeyPair()
    announced = pair.announcement("signer-1", "none", NOW)
    share = share32()
    first = seal_client_share(share, [announced], agent_id=AGENT, intent_id="i-twice")
    second = seal_client_share(share, [announced], agent_id=AGENT, intent_id="i-twice")
    assert first[0].sealed != second[0].sealed  # fresh ephemeral key each time
    key = Ed25519PrivateKey.generate()
    for sealed in (first, second):
        assert pair.open_client_share(intent_with(key, intent_id="i-twice", sealed=sealed)) == share


def _flip(sealed: SealedSecret, at: int) -> tuple[SealedSecret, ...]:
    blob = bytearray(base64.b64decode(sealed.sealed))
    blob[at] ^= 0x01
    return (SealedSecret(key_id=sealed.key_id, sealed=base64.b64encode(bytes(blob)).decode()),)


def test_a_sealed_share_is_bound_to_its_intent_agent_and_bytes() -> None:
    pair = SealingKeyPair()
    announced = pair.announcement("signer-1", "none", NOW)
    share = share32()
    agent_key, other_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    sealed = seal_client_share(share, [announced], agent_id=AGENT, intent_id="i-bound")
    assert pair.open_client_share(intent_with(agent_key, intent_id="i-bound", sealed=sealed)) == share

    blob_len = len(base64.b64decode(sealed[0].sealed))
    assert blob_len == 32 + 32 + 16  # enc || AES-256-GCM(share) || tag
    cases = {
        "copied to another intent of the same agent": intent_with(agent_key, intent_id="i-other", sealed=sealed),
        "copied to the same intent id of another agent": intent_with(
            other_key, agent_id=OTHER_AGENT, intent_id="i-bound", sealed=sealed
        ),
        "flipped byte in enc": intent_with(agent_key, intent_id="i-bound", sealed=_flip(sealed[0], 0)),
        "flipped byte in the ciphertext": intent_with(agent_key, intent_id="i-bound", sealed=_flip(sealed[0], 40)),
        "flipped byte in the tag": intent_with(agent_key, intent_id="i-bound", sealed=_flip(sealed[0], blob_len - 1)),
        "bad base64": intent_with(
            agent_key, intent_id="i-bound", sealed=(SealedSecret(key_id=pair.key_id, sealed="not*base64!"),)
        ),
        "truncated envelope": intent_with(
            agent_key,
            intent_id="i-bound",
            sealed=(
                SealedSecret(
                    key_id=pair.key_id, sealed=base64.b64encode(base64.b64decode(sealed[0].sealed)[:40]).decode()
                ),
            ),
        ),
        "no sealed share": intent_with(agent_key, intent_id="i-bound"),
    }
    messages = {}
    for name, intent in cases.items():
        with pytest.raises(InvalidKey) as caught:
            pair.open_client_share(intent)
        exc = caught.value
        messages[name] = str(exc)
        # Opaque: no chained cause that would tell which failure it was.
        assert exc.__cause__ is None, name
        assert exc.__context__ is None or exc.__suppress_context__, name
    assert len(set(messages.values())) == 1, messages
    text = next(iter(messages.values()))
    assert text  # a message, just the same one every time
    for detail in ("base64", "tag", "decrypt", "info", AGENT, OTHER_AGENT, "i-bound", "i-other", pair.key_id):
        assert detail not in text


def test_a_sealed_cmek_opens_only_as_a_cmek_and_a_sealed_share_only_as_a_share() -> None:
    """The purpose is in the HPKE info: swapping the two fields of an intent opens neither."""
    from schemas.sealing import seal_secret

    pair = SealingKeyPair()
    key = Ed25519PrivateKey.generate()
    announced = [pair.announcement("signer-0", "none", NOW)]
    share, cmek = share32(), share32()
    as_share = seal_secret(share, announced, agent_id=AGENT, intent_id="i-purpose", purpose="client_share")
    as_cmek = seal_secret(cmek, announced, agent_id=AGENT, intent_id="i-purpose", purpose="cmek")
    right = intent_with(key, intent_id="i-purpose", sealed=as_share, sealed_cmek=as_cmek)
    assert pair.open_client_share(right) == share and pair.open_cmek(right) == cmek
    swapped = intent_with(key, intent_id="i-purpose", sealed=as_cmek, sealed_cmek=as_share)
    with pytest.raises(InvalidKey):
        pair.open_client_share(swapped)
    with pytest.raises(InvalidKey):
        pair.open_cmek(swapped)


def test_a_share_sealed_to_a_restarted_signer_is_not_sealed_here_and_both_envelopes_open_with_the_new_key() -> None:
    old, new = SealingKeyPair(), SealingKeyPair()
    assert old.key_id != new.key_id
    share = share32()
    key = Ed25519PrivateKey.generate()
    to_old = seal_client_share(
        share, [old.announcement("signer-1", "none", NOW)], agent_id=AGENT, intent_id="i-restart"
    )
    with pytest.raises(NotSealedHere):
        new.open_client_share(intent_with(key, intent_id="i-restart", sealed=to_old))
    assert old.open_client_share(intent_with(key, intent_id="i-restart", sealed=to_old)) == share

    for order in ((old, new), (new, old)):
        both = seal_client_share(
            share,
            [p.announcement(f"signer-{i}", "none", NOW) for i, p in enumerate(order)],
            agent_id=AGENT,
            intent_id="i-restart",
        )
        assert [s.key_id for s in both] == [p.key_id for p in order]
        intent = intent_with(key, intent_id="i-restart", sealed=both)
        assert new.open_client_share(intent) == share
        assert old.open_client_share(intent) == share


# ---------------------------------------------------------------------------------------------
# 4-5: which keys a client seals to, and reading the share the admin was shown
# ---------------------------------------------------------------------------------------------


# Each signer's service key, as a client pins it (WARDEN_SIGNER_KEYS or the local key files).
SERVICE_KEYS = {signer_id: Ed25519PrivateKey.generate() for signer_id in ("signer-a", "signer-b")}


def _pinned(signer_id: str) -> str | None:
    key = SERVICE_KEYS.get(signer_id)
    return None if key is None else public_key_hex(key)


def _announced(signer_id: str, tee: str) -> SealingKey:
    """An announcement as a signer makes it: signed with its service key, when it has one here."""
    announced = SealingKeyPair().announcement(signer_id, tee, NOW)
    key = SERVICE_KEYS.get(signer_id)
    return announced if key is None else sign_announcement(announced, key, signer_id)


def test_usable_keys_refuses_no_keys_unattested_without_consent_and_unverifiable_attestation() -> None:
    with pytest.raises(SealingRefused) as none:
        usable_keys([], allow_unattested=True)
    assert "signer" in str(none.value) and topics.SIGNER_SEALING in str(none.value)

    plain = [_announced("signer-a", "none"), _announced("signer-b", "none")]
    with pytest.raises(SealingRefused) as unattested:
        usable_keys(plain, allow_unattested=False, service_key=_pinned)
    assert "WARDEN_ALLOW_UNATTESTED_SIGNER" in str(unattested.value)
    assert "signer-a" in str(unattested.value) and "signer-b" in str(unattested.value)

    assert usable_keys(plain, allow_unattested=True, service_key=_pinned) == plain

    # A key claiming a TEE with nothing to verify it by is left out; alone, it is a refusal.
    snp = _announced("signer-snp", "sev-snp")
    for keys in ([snp], [plain[0], snp]):
        with pytest.raises(SealingRefused) as attested:
            usable_keys(keys, allow_unattested=False)
        assert "signer-snp" in str(attested.value) and "sev-snp" in str(attested.value)
        assert "attestation" in str(attested.value)
    assert usable_keys([plain[0], snp], allow_unattested=True, service_key=_pinned) == [plain[0]]
    assert usable_keys([snp], allow_unattested=True, attestation_problems=lambda key: []) == [snp]
    with pytest.raises(SealingRefused, match="report_data: no"):
        usable_keys([snp], allow_unattested=True, attestation_problems=lambda key: ["report_data: no"])


def test_an_unattested_key_is_sealed_to_only_when_its_signers_pinned_service_key_signed_it() -> None:
    """With the development opt-in, a tee=none key taken as announced would let anyone who can
    write to warden.signer.sealing announce one under a signer's name (or a new name) and collect
    every client share sealed to it. Only the signer's pinned service key ties it."""
    honest = _announced("signer-a", "none")
    assert usable_keys([honest], allow_unattested=True, service_key=_pinned) == [honest]
    attacker = Ed25519PrivateKey.generate()
    pair = SealingKeyPair()
    forgeries = {
        "unsigned": pair.announcement("signer-a", "none", NOW),
        "another key": sign_announcement(pair.announcement("signer-a", "none", NOW), attacker, "signer-a"),
        "the honest signature on another key": pair.announcement("signer-a", "none", NOW).model_copy(
            update={"signed_by": honest.signed_by, "service_signature": honest.service_signature}
        ),
        "signed as another signer": sign_announcement(
            pair.announcement("signer-a", "none", NOW), SERVICE_KEYS["signer-b"], "signer-b"
        ),
        "changed after signing": honest.model_copy(update={"announced_at": datetime(2031, 1, 1, tzinfo=timezone.utc)}),
    }
    for name, forged in forgeries.items():
        with pytest.raises(SealingRefused) as refused:
            usable_keys([forged], allow_unattested=True, service_key=_pinned)
        assert "signer-a: runs with tee=none and its announcement is not signed by its pinned service key" in str(
            refused.value
        ), name
        # Beside the honest one it is left out, whichever is newer.
        assert usable_keys([forged, honest], allow_unattested=True, service_key=_pinned) == [honest], name
    # A signer nobody pinned a key for, or a client that pins none: nothing ties the key to it.
    stranger = sign_announcement(SealingKeyPair().announcement("signer-evil", "none", NOW), attacker, "signer-evil")
    for keys, service_key in (([stranger], _pinned), ([honest], None)):
        with pytest.raises(SealingRefused, match="no service key is pinned for it"):
            usable_keys(keys, allow_unattested=True, service_key=service_key)
    assert usable_keys([honest, stranger], allow_unattested=True, service_key=_pinned) == [honest]


def test_decode_client_share_reads_base64_32_bytes_and_says_what_is_wrong_otherwise() -> None:
    share = share32()
    text = base64.b64encode(share).decode()
    assert len(text) == 44
    decoded = decode_client_share(f"  {text}\n")
    assert isinstance(decoded, bytearray) and decoded == share

    for short in (bytes(31), bytes(33), b""):
        with pytest.raises(ValueError) as wrong_length:
            decode_client_share(base64.b64encode(short).decode())
        assert "32 bytes" in str(wrong_length.value) and f"this one is {len(short)} bytes" in str(wrong_length.value)

    for junk in ("not a share!", text[:-1] + "*", "é" * 44, text[:43]):
        with pytest.raises(ValueError) as not_base64:
            decode_client_share(junk)
        assert "base64" in str(not_base64.value) and "vault was created" in str(not_base64.value)


def test_sealing_info_is_the_documented_length_prefixed_layout() -> None:
    assert sealing_info("a", "bc", "0123456789abcdef") == (
        b"warden client share v1" + b"\x00\x00\x00\x01a" + b"\x00\x00\x00\x02bc" + b"\x00\x00\x00\x100123456789abcdef"
    )
    # Length prefixes keep the parts apart: ("ab", "c") is not ("a", "bc").
    assert sealing_info("ab", "c", "k") != sealing_info("a", "bc", "k")
    assert sealing_info("é", "i", "k")[22:28] == b"\x00\x00\x00\x02\xc3\xa9"  # UTF-8 byte length


# ---------------------------------------------------------------------------------------------
# 6: the wire format, against an independent RFC 9180 base-mode implementation
# ---------------------------------------------------------------------------------------------


def _i2osp(n: int, length: int) -> bytes:
    return n.to_bytes(length, "big")


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _hkdf_expand(prk, _i2osp(length, 2) + b"HPKE-v1" + suite_id + label + info, length)


KEM_X25519 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM, AEAD_AES_256_GCM = 0x0001, 0x0002
NK = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}
NN = 12
NSECRET = 32
KEM_SUITE_ID = b"KEM" + _i2osp(KEM_X25519, 2)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _dhkem_shared_secret(dh: bytes, enc: bytes, pk_rm: bytes) -> bytes:
    """RFC 9180 §4.1 ExtractAndExpand with kem_context = enc || pkRm."""
    eae_prk = _labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return _labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_rm, NSECRET)


@dataclass
class _Context:
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes


def _key_schedule_base(shared_secret: bytes, info: bytes, aead_id: int) -> _Context:
    """RFC 9180 §5.1, mode_base (psk and psk_id empty)."""
    suite_id = b"HPKE" + _i2osp(KEM_X25519, 2) + _i2osp(KDF_HKDF_SHA256, 2) + _i2osp(aead_id, 2)
    psk_id_hash = _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite_id, shared_secret, b"secret", b"")
    return _Context(
        context,
        secret,
        _labeled_expand(suite_id, secret, b"key", context, NK[aead_id]),
        _labeled_expand(suite_id, secret, b"base_nonce", context, NN),
    )


def hpke_open_base(
    sk_r: X25519PrivateKey, blob: bytes, info: bytes, aad: bytes = b"", aead_id: int = AEAD_AES_256_GCM
) -> bytes:
    """Single-shot base-mode open of enc (32 bytes) || ciphertext, sequence 0."""
    enc, ciphertext = blob[:32], blob[32:]
    dh = sk_r.exchange(X25519PublicKey.from_public_bytes(enc))
    shared = _dhkem_shared_secret(dh, enc, _raw(sk_r.public_key()))
    ctx = _key_schedule_base(shared, info, aead_id)
    return AESGCM(ctx.key).decrypt(ctx.base_nonce, ciphertext, aad)  # nonce = base_nonce xor 0


def hpke_seal_base(
    pk_r: bytes,
    plaintext: bytes,
    info: bytes,
    aad: bytes = b"",
    aead_id: int = AEAD_AES_256_GCM,
    sk_e: X25519PrivateKey | None = None,
) -> bytes:
    sk_e = sk_e or X25519PrivateKey.generate()
    enc = _raw(sk_e.public_key())
    dh = sk_e.exchange(X25519PublicKey.from_public_bytes(pk_r))
    ctx = _key_schedule_base(_dhkem_shared_secret(dh, enc, pk_r), info, aead_id)
    return enc + AESGCM(ctx.key).encrypt(ctx.base_nonce, plaintext, aad)


# RFC 9180 Appendix A.1.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode.
A11 = {
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "pkEm": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "skEm": "52c4a758a802cd8b936eceea314432798d5baf2d7e9235dc084ab1b9cfa2f736",
    "pkRm": "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d",
    "skRm": "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8",
    "enc": "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
    "shared_secret": "fe0e18c9f024ce43799ae393c7e8fe8fce9d218875e8227b0187c04e7d2ea1fc",
    "key_schedule_context": "00725611c9d98c07c03f60095cd32d400d8347d45ed67097bbad50fc56da742d07cb6cffde367bb0565ba"
    "28bb02c90744a20f5ef37f30523526106f637abb05449",
    "secret": "12fff91991e93b48de37e7daddb52981084bd8aa64289c3788471d9a9712f397",
    "key": "4531685d41d65f03dc48f6b8302c05b0",
    "base_nonce": "56d890e5accaaf011cff4b7d",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad": "436f756e742d30",
    "ct": "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
}


def test_the_independent_hpke_reproduces_rfc9180_a_1_1() -> None:
    v = {k: bytes.fromhex(x) for k, x in A11.items()}
    sk_e = X25519PrivateKey.from_private_bytes(v["skEm"])
    sk_r = X25519PrivateKey.from_private_bytes(v["skRm"])
    assert _raw(sk_e.public_key()) == v["pkEm"] == v["enc"]
    assert _raw(sk_r.public_key()) == v["pkRm"]

    # Sender side (Encap with the vector's ephemeral key), then the key schedule.
    shared = _dhkem_shared_secret(sk_e.exchange(X25519PublicKey.from_public_bytes(v["pkRm"])), v["enc"], v["pkRm"])
    assert shared == v["shared_secret"]
    ctx = _key_schedule_base(shared, v["info"], AEAD_AES_128_GCM)
    assert ctx.key_schedule_context == v["key_schedule_context"]
    assert ctx.secret == v["secret"]
    assert ctx.key == v["key"]
    assert ctx.base_nonce == v["base_nonce"]
    assert AESGCM(ctx.key).encrypt(ctx.base_nonce, v["pt"], v["aad"]) == v["ct"]
    assert hpke_seal_base(v["pkRm"], v["pt"], v["info"], v["aad"], AEAD_AES_128_GCM, sk_e) == v["enc"] + v["ct"]

    # Recipient side: the open used below on Warden's envelopes opens the RFC's.
    assert hpke_open_base(sk_r, v["enc"] + v["ct"], v["info"], v["aad"], AEAD_AES_128_GCM) == v["pt"]


def test_seal_client_share_output_opens_with_an_independent_rfc9180_implementation() -> None:
    recipient = X25519PrivateKey.generate()
    public = _raw(recipient.public_key())
    announced = SealingKey(
        signer_id="signer-x",
        key_id=key_id(public),
        public_key="0x" + public.hex(),
        suite=SUITE_NAME,
        tee="none",
        announced_at=NOW,
    )
    share = share32()
    (sealed,) = seal_client_share(share, [announced], agent_id=AGENT, intent_id="i-wire")
    assert sealed.key_id == announced.key_id
    blob = base64.b64decode(sealed.sealed, validate=True)
    info = sealing_info(AGENT, "i-wire", announced.key_id)
    assert hpke_open_base(recipient, blob, info) == share
    # Each binding is in the info: any other agent, intent or key id does not open it.
    for wrong in (
        sealing_info(OTHER_AGENT, "i-wire", announced.key_id),
        sealing_info(AGENT, "i-other", announced.key_id),
        sealing_info(AGENT, "i-wire", "0" * 16),
    ):
        with pytest.raises(InvalidTag):
            hpke_open_base(recipient, blob, wrong)
    # The AEAD really is AES-256-GCM: the AES-128 schedule does not open it.
    with pytest.raises(InvalidTag):
        hpke_open_base(recipient, blob, info, aead_id=AEAD_AES_128_GCM)


def test_the_signer_opens_a_share_sealed_by_an_independent_rfc9180_implementation() -> None:
    pair = SealingKeyPair()
    share = share32()
    blob = hpke_seal_base(pair.public_key, bytes(share), sealing_info(AGENT, "i-foreign", pair.key_id))
    sealed = (SealedSecret(key_id=pair.key_id, sealed=base64.b64encode(blob).decode()),)
    key = Ed25519PrivateKey.generate()
    assert pair.open_client_share(intent_with(key, intent_id="i-foreign", sealed=sealed)) == share
    # Sealed by a foreign producer with the wrong info: the same opaque "no".
    wrong = hpke_seal_base(pair.public_key, bytes(share), sealing_info(AGENT, "i-foreign", "f" * 16))
    with pytest.raises(InvalidKey):
        pair.open_client_share(
            intent_with(
                key,
                intent_id="i-foreign",
                sealed=(SealedSecret(key_id=pair.key_id, sealed=base64.b64encode(wrong).decode()),),
            )
        )
