"""btc.dust: the dust threshold of each kind of output script, against the figures Bitcoin Core's
src/policy/policy.cpp states beside `GetDustThreshold` (546 satoshis to P2PKH, 294 to P2WPKH) and
what its formula gives for the rest, counted by hand here."""

from __future__ import annotations

import pytest

from btc import dust

P2PKH = bytes.fromhex("76a914") + bytes(20) + bytes.fromhex("88ac")
P2SH = bytes.fromhex("a914") + bytes(20) + bytes.fromhex("87")
P2WPKH = bytes.fromhex("0014") + bytes(20)
P2WSH = bytes.fromhex("0020") + bytes(32)
P2TR = bytes.fromhex("5120") + bytes(32)


@pytest.mark.parametrize(
    ("script", "least"),
    [
        (P2PKH, 546),  # 3 × (34 + 148)
        (P2SH, 540),  # 3 × (32 + 148)
        (P2WPKH, 294),  # 3 × (31 + 67)
        (P2WSH, 330),  # 3 × (43 + 67)
        (P2TR, 330),
        (bytes.fromhex("6002") + b"\x01\x02", 3 * (8 + 1 + 4 + 67)),  # witness v16, a 2-byte program
        (bytes.fromhex("0029") + bytes(41), 3 * (8 + 1 + 43 + 148)),  # a 41-byte push is no witness program
        (bytes.fromhex("5220") + bytes(32) + b"\x00", 3 * (8 + 1 + 35 + 148)),  # bytes after the program
        (bytes(300), 3 * (8 + 3 + 300 + 148)),  # its length takes three bytes (0xfd and two)
        (bytes.fromhex("6a04") + b"abcd", 0),  # OP_RETURN: nobody spends it, it is never dust
        (bytes(10_001), 0),  # longer than a script may be: nobody spends it either
    ],
)
def test_the_threshold_is_the_dust_relay_fee_on_the_output_and_the_input_that_spends_it(
    script: bytes, least: int
) -> None:
    assert dust.threshold(script) == least
