"""MPC custody modes (XOR 2-of-2, Shamir 2-of-3) and customer-managed keys (CMEK)."""

from __future__ import annotations

import base64
import itertools
import os
import random
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from signer.custody import (
    CLIENT_MODES,
    MODES,
    Conflict,
    CustodyError,
    InvalidKey,
    ProviderUnavailable,
    Vaults,
    fingerprint,
    parse_event,
    shamir,
)
from signer.custody.events import CmekSet, ModeSet, SecretVersionWritten, VaultEvent
from signer.custody.modes import REGISTRY, Mode, custody_mode
from signer.custody.roots import RootOfTrust
from tests.custody_support import ADMIN, SIGNER, T0, CountingRoot, dev_root, make_vaults

# ---- the sharing schemes ---------------------------------------------------


def test_every_pair_of_shamir_shares_rebuilds_the_secret() -> None:
    for _ in range(50):
        secret = os.urandom(32)
        shares = shamir.split(secret, 2, 3)
        assert [x for x, _ in shares] == [1, 2, 3]
        for pair in itertools.permutations(shares, 2):
            assert shamir.combine(list(pair)) == secret
    secret = os.urandom(32)
    shares = shamir.split(secret, 3, 5)
    for triple in itertools.combinations(shares, 3):
        assert shamir.combine(list(triple)) == secret


def test_gf256_arithmetic() -> None:
    # The AES field: 0x53 · 0xCA = 0x01 (FIPS-197 §4.2 example of an inverse pair).
    assert shamir._gf_mul(0x53, 0xCA) == 0x01
    assert shamir._gf_mul(0x57, 0x83) == 0xC1  # FIPS-197 §4.2
    for a in range(1, 256):
        assert shamir._gf_mul(a, shamir._gf_inv(a)) == 1


def _chi_square(counts: list[int]) -> float:
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


# 255 degrees of freedom: mean 255, sd ≈ 22.6. 400 is > 6 sd out (p < 1e-9), so
# a uniform share essentially never fails it; a share that leaks the secret
# (all mass on one value) scores ~6.5 million.
CHI2_LIMIT = 400.0
SPLITS = 256 * 64


@pytest.mark.parametrize("secret_byte", [0x00, 0xA5, 0xFF])
def test_one_shamir_share_alone_is_uniform(secret_byte: int) -> None:
    for x in (1, 2, 3):
        counts = [0] * 256
        for _ in range(SPLITS):
            counts[shamir.split(bytes([secret_byte]), 2, 3)[x - 1][1][0]] += 1
        assert _chi_square(counts) < CHI2_LIMIT, (x, counts)


@pytest.mark.parametrize("secret_byte", [0x00, 0xFF])
def test_one_xor_share_alone_is_uniform(secret_byte: int) -> None:
    server_counts, client_counts = [0] * 256, [0] * 256
    for _ in range(SPLITS):
        server, client = shamir.xor_split(bytes([secret_byte]))
        server_counts[server[0]] += 1
        client_counts[client[0]] += 1
        assert server[0] ^ client[0] == secret_byte
    assert _chi_square(server_counts) < CHI2_LIMIT
    assert _chi_square(client_counts) < CHI2_LIMIT


def test_the_chi_square_check_catches_a_leaky_share() -> None:
    counts = [0] * 256
    counts[0x42] = SPLITS
    assert _chi_square(counts) > CHI2_LIMIT


# ---- custody modes on vaults --------------------------------------------------


@pytest.mark.parametrize("name", MODES)
def test_each_mode_rebuilds_its_kek_from_any_threshold_of_its_pieces(name: str) -> None:
    mode = custody_mode(name)
    assert mode.name == name and (name in CLIENT_MODES) == mode.client_custody
    kek = os.urandom(32)
    server, client = mode.split(kek)
    assert len(server) == mode.roots
    pieces = list(server)
    if client is not None:
        assert mode.client_x is not None  # a mode with a client share places it
        pieces.append((mode.client_x, client))
    for chosen in itertools.combinations(pieces, mode.threshold):
        assert mode.rebuild(chosen) == kek


def test_the_mode_registry_is_the_list_of_modes() -> None:
    assert tuple(REGISTRY) == MODES
    with pytest.raises(CustodyError, match="unknown custody mode 'solo'; choose one of standard"):
        custody_mode("solo")


@pytest.fixture
def three_roots(tmp_path: Path) -> dict[str, CountingRoot]:
    return {name: CountingRoot(dev_root(tmp_path, name)) for name in ("hsm-a", "hsm-b", "hsm-c")}


def _events(tmp_path: Path) -> list[VaultEvent]:
    return [parse_event(line) for line in (tmp_path / "vault" / "events.jsonl").read_bytes().splitlines()]


def _reader(tmp_path: Path, roots: RootOfTrust | Mapping[str, RootOfTrust]) -> Vaults:
    """A fresh process's view: only the given roots, state rebuilt from the log."""
    vaults = Vaults(roots, lambda e: None)
    vaults.replay(_events(tmp_path))
    return vaults


def test_2of3_multi_hsm_survives_any_one_provider_loss(tmp_path: Path, three_roots: dict[str, CountingRoot]) -> None:
    vaults = make_vaults(tmp_path, roots=three_roots)
    assert vaults.create_vault("acme", "cold", actor=ADMIN, mode="2of3_multi_hsm", now=T0) is None
    vaults.write_secret("acme", "cold", "treasury", b"the-treasury-key", "private_key", actor=ADMIN, now=T0)
    mode = next(e for e in _events(tmp_path) if isinstance(e, ModeSet))
    assert [(s.x, s.provider) for s in mode.slots] == [(1, "hsm-a"), (2, "hsm-b"), (3, "hsm-c")]
    for pair in itertools.combinations(three_roots, 2):
        reader = _reader(tmp_path, {name: three_roots[name] for name in pair})
        with reader.open_secret("acme", "cold", "treasury", actor=SIGNER, now=T0) as value:
            assert value == bytearray(b"the-treasury-key")
    # A provider that is configured but down: the other two carry the read.
    three_roots["hsm-a"].down = True
    reader = _reader(tmp_path, three_roots)
    with reader.open_secret("acme", "cold", "treasury", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"the-treasury-key")
    # One provider alone is not enough, and says so (an outage, not a forgery).
    with pytest.raises(ProviderUnavailable, match="two of its three"):
        _reader(tmp_path, {"hsm-c": three_roots["hsm-c"]}).read_secret("acme", "cold", "treasury", actor=SIGNER, now=T0)


def test_2of3_multi_hsm_skips_a_share_that_does_not_authenticate(
    tmp_path: Path, three_roots: dict[str, CountingRoot]
) -> None:
    vaults = make_vaults(tmp_path, roots=three_roots)
    vaults.create_vault("acme", "cold", actor=ADMIN, mode="2of3_multi_hsm", now=T0)
    vaults.write_secret("acme", "cold", "k", b"value", "api_key", actor=ADMIN, now=T0)
    events = _events(tmp_path)
    mode = next(e for e in events if isinstance(e, ModeSet))
    # Share 1's envelope replaced by share 2's: bound to x=2, so hsm-a refuses it.
    bad = mode.model_copy(
        update={"slots": (mode.slots[0].model_copy(update={"wrapped": mode.slots[1].wrapped}), *mode.slots[1:])}
    )
    reader = Vaults(three_roots, lambda e: None)
    reader.replay([bad if isinstance(e, ModeSet) else e for e in events])
    with reader.open_secret("acme", "cold", "k", actor=SIGNER, now=T0) as value:
        assert value == bytearray(b"value")


def test_2of2_client_custody_needs_the_client_share_every_time(tmp_path: Path) -> None:
    root = CountingRoot(dev_root(tmp_path))
    vaults = make_vaults(tmp_path, roots=root)
    share = vaults.create_vault("acme", "mine", actor=ADMIN, mode="2of2_client_custody", now=T0)
    assert isinstance(share, str) and len(base64.b64decode(share, validate=True)) == 32
    vaults.write_secret("acme", "mine", "k", b"value", "private_key", actor=ADMIN, client_share=share, now=T0)
    with vaults.open_secret("acme", "mine", "k", actor=SIGNER, client_share=share, now=T0) as value:
        assert value == bytearray(b"value")
    wrong = base64.b64encode(os.urandom(32)).decode()
    flipped = bytearray(base64.b64decode(share))
    flipped[0] ^= 1
    errors = []
    for bad in (None, wrong, base64.b64encode(bytes(flipped)).decode(), "not base64!", share[:-4], ""):
        with pytest.raises(InvalidKey) as exc:
            vaults.read_secret("acme", "mine", "k", actor=SIGNER, client_share=bad, now=T0)
        errors.append(str(exc.value))
    with pytest.raises(InvalidKey):
        vaults.write_secret("acme", "mine", "k", b"v2", "private_key", actor=ADMIN, client_share=wrong, now=T0)
    assert set(errors) == {"custody: authentication failed"}  # one opaque error, whatever was wrong
    # The server side of the KEK is cached, not the KEK: a warm cache still needs the share.
    assert root.unwraps == 1
    # The share is not in any event.
    log = (tmp_path / "vault" / "events.jsonl").read_bytes()
    assert share.encode() not in log and base64.b64decode(share) not in log


def test_2of3_client_custody(tmp_path: Path, three_roots: dict[str, CountingRoot]) -> None:
    vaults = make_vaults(tmp_path, roots=three_roots)
    share = vaults.create_vault(
        "acme", "joint", actor=ADMIN, mode="2of3_client_custody", providers=["hsm-b", "hsm-c"], now=T0
    )
    vaults.write_secret("acme", "joint", "k", b"joint-value", "ssh_key", actor=ADMIN, client_share=share, now=T0)
    mode = next(e for e in _events(tmp_path) if isinstance(e, ModeSet))
    assert [(s.x, s.provider) for s in mode.slots] == [(1, "hsm-b"), (2, "hsm-c")]
    # Client share + either provider.
    for name in ("hsm-b", "hsm-c"):
        reader = _reader(tmp_path, {name: three_roots[name]})
        with reader.open_secret("acme", "joint", "k", actor=SIGNER, client_share=share, now=T0) as value:
            assert value == bytearray(b"joint-value")
        # Provider shares without the client: refused, opaquely.
        with pytest.raises(InvalidKey):
            reader.read_secret("acme", "joint", "k", actor=SIGNER, now=T0)
    with pytest.raises(InvalidKey):
        vaults.read_secret(
            "acme", "joint", "k", actor=SIGNER, client_share=base64.b64encode(os.urandom(32)).decode(), now=T0
        )
    # Both providers alone (no client share) cannot rebuild it either: both are the same side.
    with pytest.raises(InvalidKey):
        _reader(tmp_path, three_roots).read_secret("acme", "joint", "k", actor=SIGNER, now=T0)


@pytest.mark.parametrize("mode", ["standard", "2of2_client_custody", "2of3_multi_hsm", "2of3_client_custody"])
def test_setting_a_mode_twice_is_refused(tmp_path: Path, three_roots: dict[str, CountingRoot], mode: Mode) -> None:
    vaults = make_vaults(tmp_path, roots=three_roots)
    vaults.create_vault("acme", "v", actor=ADMIN, mode=None, now=T0)
    vaults.set_mode("acme", "v", mode, actor=ADMIN, now=T0)
    for again in ("standard", mode):
        with pytest.raises(Conflict, match="immutable"):
            vaults.set_mode("acme", "v", again, actor=ADMIN, now=T0)
    assert vaults.mode("acme", "v") == mode
    # A forged second mode event on the log changes nothing either.
    forged = next(e for e in _events(tmp_path) if isinstance(e, ModeSet)).model_copy(
        update={"event_id": "forged", "mode": "standard"}
    )
    assert not vaults.apply(forged)
    assert vaults.mode("acme", "v") == mode


def test_modes_need_distinct_configured_providers(tmp_path: Path, three_roots: dict[str, CountingRoot]) -> None:
    single = make_vaults(tmp_path, roots=dev_root(tmp_path))
    single.create_vault("acme", "v", actor=ADMIN, mode=None, now=T0)
    with pytest.raises(CustodyError, match="needs 3 distinct root provider"):
        single.set_mode("acme", "v", "2of3_multi_hsm", actor=ADMIN, now=T0)
    many = Vaults(three_roots, lambda e: None)
    many.create_vault("acme", "w", actor=ADMIN, mode=None, now=T0)
    with pytest.raises(CustodyError, match="distinct"):
        many.set_mode("acme", "w", "2of3_multi_hsm", actor=ADMIN, providers=["hsm-a", "hsm-a", "hsm-b"], now=T0)
    with pytest.raises(ProviderUnavailable, match="not configured"):
        many.set_mode("acme", "w", "2of3_multi_hsm", actor=ADMIN, providers=["hsm-a", "hsm-b", "aws-kms"], now=T0)
    with pytest.raises(CustodyError, match="has no custody mode yet"):
        single.write_secret("acme", "v", "k", b"v", "token", actor=ADMIN, now=T0)
    single.set_mode("acme", "v", "standard", actor=ADMIN, now=T0)
    with pytest.raises(CustodyError, match="takes no client share"):
        single.write_secret("acme", "v", "k", b"v", "token", actor=ADMIN, client_share="x", now=T0)


# ---- CMEK -----------------------------------------------------------------------


def test_cmek_layer_only_fingerprint_stored(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.write_secret("acme", "ops", "before", b"old-value", "api_key", actor=ADMIN, now=T0)
    cmek = os.urandom(32)
    fp = vaults.set_cmek("acme", "ops", cmek, actor=ADMIN, now=T0)
    assert fp == fingerprint(cmek) and len(fp) == 64
    vaults.write_secret("acme", "ops", "after", b"new-value", "api_key", actor=ADMIN, now=T0)
    events = _events(tmp_path)
    assert {e.cmek_fingerprint for e in events if isinstance(e, SecretVersionWritten)} >= {fp}
    log = (tmp_path / "vault" / "events.jsonl").read_bytes()
    for form in (cmek, cmek.hex().encode(), base64.b64encode(cmek)):
        assert form not in log
    # Another process: reads need the CMEK handed over; a wrong one is the opaque error.
    other = _reader(tmp_path, vaults.primary)
    with pytest.raises(CustodyError, match="load_cmek"):
        other.read_secret("acme", "ops", "after", actor=SIGNER, now=T0)
    with pytest.raises(InvalidKey):
        other.load_cmek("acme", "ops", os.urandom(32))
    other.load_cmek("acme", "ops", cmek)
    for path, value in (("before", b"old-value"), ("after", b"new-value")):
        with other.open_secret("acme", "ops", path, actor=SIGNER, now=T0) as got:
            assert got == bytearray(value)
    # The CMEK layer is real: with it stripped off, the KEK layer alone does not open.
    secret = next(e for e in events if isinstance(e, SecretVersionWritten) and e.path == "after")
    other.apply(secret.model_copy(update={"event_id": "x", "cmek_fingerprint": None, "version": 2}))
    with pytest.raises(InvalidKey):
        other.read_secret("acme", "ops", "after", 2, actor=SIGNER, now=T0)


def test_cmek_rotation_in_batches_with_concurrent_reads_and_writes(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "big", actor=ADMIN, now=T0)
    old = os.urandom(32)
    vaults.set_cmek("acme", "big", old, actor=ADMIN, now=T0)
    values = {f"s/{i:03d}": os.urandom(16) for i in range(250)}
    for path, value in values.items():
        vaults.write_secret("acme", "big", path, value, "api_key", actor=ADMIN, now=T0)

    stop = threading.Event()
    reads, failures, written = [0], [], {}
    batches: list[int] = []
    rng = random.Random(7)

    def reader() -> None:
        while not stop.is_set():
            path = rng.choice(list(values))
            try:
                with vaults.open_secret("acme", "big", path, 1, actor=SIGNER, now=T0) as got:
                    if got != bytearray(values[path]):
                        failures.append(("wrong value", path))
                reads[0] += 1
            except Exception as exc:  # any failure at all is what this test is about
                failures.append((type(exc).__name__, path))

    def writer() -> None:
        i = 0
        while not stop.is_set():
            path, value = f"w/{i}", os.urandom(8)
            try:
                vaults.write_secret("acme", "big", path, value, "token", actor=ADMIN, now=T0)
                written[path] = value
            except Exception as exc:
                failures.append((type(exc).__name__, path))
            i += 1

    def between_batches(done: int) -> None:
        batches.append(done)
        # Let the reader and writer run between batches, so the rotation is
        # really interleaved with them rather than racing past.
        target = reads[0] + 20
        while reads[0] < target and not failures:
            threading.Event().wait(0.001)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        new = os.urandom(32)
        new_fp = vaults.set_cmek("acme", "big", new, actor=ADMIN, between_batches=between_batches, now=T0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert reads[0] > 60
    # Batches of 100; the last also holds what the writer added before the new key was announced.
    assert batches[:2] == [100, 200] and 250 <= batches[-1] < 300
    assert all(0 < b - a <= 100 for a, b in zip([0, *batches], batches, strict=False))
    assert len(written) > 0
    state = vaults.book.state("acme", "big")
    assert state.cmek is not None
    assert state.cmek.fingerprint == new_fp and state.cmek.retiring is None
    assert {s.cmek_fingerprint for vs in state.secrets.values() for s in vs.values()} == {new_fp}
    # After the rotation only the new key opens the vault, in another process too.
    other = _reader(tmp_path, vaults.primary)
    with pytest.raises(InvalidKey):
        other.load_cmek("acme", "big", old)
    other.load_cmek("acme", "big", new)
    for path, value in list(values.items())[:5] + list(written.items())[:5]:
        with other.open_secret("acme", "big", path, actor=SIGNER, now=T0) as got:
            assert got == bytearray(value)
    cmek_events = [e for e in _events(tmp_path) if isinstance(e, CmekSet)]
    assert [(e.seq, e.retiring is None) for e in cmek_events] == [(1, True), (2, False), (3, True)]


def test_cmek_rotation_needs_the_current_key(tmp_path: Path) -> None:
    vaults = make_vaults(tmp_path)
    vaults.create_vault("acme", "ops", actor=ADMIN, now=T0)
    vaults.set_cmek("acme", "ops", os.urandom(32), actor=ADMIN, now=T0)
    other = _reader(tmp_path, vaults.primary)
    with pytest.raises(CustodyError, match="load the vault's current customer-managed key"):
        other.set_cmek("acme", "ops", os.urandom(32), actor=ADMIN, now=T0)
    with pytest.raises(CustodyError, match="32 bytes"):
        vaults.set_cmek("acme", "ops", b"short", actor=ADMIN, now=T0)
