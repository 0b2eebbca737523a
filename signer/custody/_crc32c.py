"""CRC32C (Castagnoli), for Cloud KMS's end-to-end integrity fields.

Google asks callers to send and check CRC32C of every plaintext, ciphertext and
AAD so corruption in transit is caught. The ``google-crc32c`` package is not a
dependency here; the inputs are tens of bytes, so a table-driven version is fast enough.
"""

from __future__ import annotations


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_TABLE = _table()


def crc32c(data: bytes | bytearray) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
