"""Telling a file's format from its first bytes, before any parser reads it (the API's upload checks and the
engine's converter alike); and the CRC32C of TFRecord framing.

CRC32C comes from `google-crc32c` (a C extension, a server dependency); if it cannot be imported the
table-driven pure-Python version below is used, correct but a few MB/s (`CRC32C_IMPLEMENTATION` says which).
"""

import struct


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:
    import google_crc32c

    CRC32C_IMPLEMENTATION = f"google-crc32c ({google_crc32c.implementation})"
except ImportError:  # pragma: no cover - a server dependency; kept for a checkout without it
    google_crc32c = None  # type: ignore[assignment]
    CRC32C_IMPLEMENTATION = "pure Python"


def crc32c(data: bytes) -> int:
    if google_crc32c is None:
        return _crc32c_python(data)
    return int(google_crc32c.value(data))


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def looks_like_tfrecord(head: bytes) -> bool:
    """The first record's length and its checksum agree (or the head is gzip: a compressed TFRecord)."""
    if len(head) < 12:
        return False
    return bool(struct.unpack("<I", head[8:12])[0] == masked_crc(head[:8]))
