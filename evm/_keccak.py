"""Keccak-256 on pycryptodome's C sponge, reused per thread.

``eth_hash``'s pycryptodome backend allocates a hash object and a destructor
wrapper per call, which costs twice the hashing itself; a signature needs three
hashes. Any surprise in pycryptodome's internals falls back to ``eth_hash``;
tests/unit/test_evm_fast_paths.py compares both on inputs around the sponge rate.
"""

from __future__ import annotations

from eth_hash.auto import keccak as _eth_hash_keccak


def _make_keccak():
    """
    Build keccak-256 on pycryptodome's C sponge, reusing one sponge per
    thread.

    ``eth_hash``'s pycryptodome backend allocates a hash object and a
    destructor wrapper per call, which costs twice the hashing itself; a
    signature needs three hashes, so this saves about a sixth of the signing
    time. The reused sponge is per thread because cffi releases the GIL
    during each call. Any surprise in pycryptodome's internals falls back to
    ``eth_hash``; the tests compare both on inputs around the sponge rate.
    """
    try:
        import threading

        from Crypto.Hash.keccak import _raw_keccak_lib as raw
        from Crypto.Util import _raw_api

        if _raw_api.backend != "cffi":
            return _eth_hash_keccak
        kffi = _raw_api.ffi
        local = threading.local()

        def new_sponge():
            handle = kffi.new("void **")
            # capacity 64 bytes, 24 rounds: Keccak-256.
            if raw.keccak_init(handle, 64, 24):
                raise MemoryError("keccak_init failed")
            sponge = kffi.gc(handle[0], raw.keccak_destroy)
            local.sponge = sponge
            local.out = kffi.new("uint8_t[32]")
            return sponge

        absorb, digest, reset = raw.keccak_absorb, raw.keccak_digest, raw.keccak_reset
        buffer = kffi.buffer

        def keccak(data: bytes) -> bytes:
            try:
                sponge = local.sponge
            except AttributeError:
                sponge = new_sponge()
            out = local.out
            # A failed call would leave the previous digest in ``out``; a
            # stale hash must never be signed.
            # 0x01 is Keccak's original domain padding (SHA3 uses 0x06).
            if reset(sponge) or absorb(sponge, data, len(data)) or digest(sponge, out, 32, 0x01):
                raise RuntimeError("keccak-256 failed")
            return buffer(out)[:]

        if keccak(b"") != _eth_hash_keccak(b""):
            return _eth_hash_keccak
        return keccak
    except (ImportError, AttributeError, TypeError, MemoryError):
        return _eth_hash_keccak


keccak = _make_keccak()
