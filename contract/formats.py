"""Telling a file's format from its first bytes, before any parser reads it (the API's upload checks and the
engine's converter alike)."""

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


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def looks_like_tfrecord(head: bytes) -> bool:
    """The first record's length and its checksum agree (or the head is gzip: a compressed TFRecord)."""
    if len(head) < 12:
        return False
    return bool(struct.unpack("<I", head[8:12])[0] == masked_crc(head[:8]))
