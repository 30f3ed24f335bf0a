"""TFRecord files of `tf.train.Example`, read without TensorFlow (the confined checker never imports it).

A record is `uint64 length, uint32 masked crc32c(length), data, uint32 masked crc32c(data)`; both
checksums are verified (CRC32C by `google-crc32c`, see `contract.formats`). A wrong length checksum
ends the file (nothing after it can be framed: not a TFRecord, or cut); a wrong data checksum makes
that one record bad (`BadRecord`, counted like a record that does not match the spec) and reading
goes on with the next.
`Example` is parsed by hand from its wire format (features: a map of name to a bytes, float or
int64 list).
"""

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from contract.formats import masked_crc

MAX_RECORD_BYTES = 64 << 20


class RecordError(ValueError):
    """The framing is broken: nothing after this point in the file can be read."""


@dataclass(frozen=True)
class BadRecord:
    """A record whose framing is intact but whose data cannot be used: why."""

    reason: str


def records(f: IO[bytes]) -> Iterator[bytes | BadRecord]:
    """Each record's data in file order, or why it is unusable; RecordError when the framing is cut or damaged."""
    head = f.read(2)
    if head == b"\x1f\x8b":  # GZIP-compressed TFRecord (TFRecordOptions(compression_type="GZIP"))
        f.seek(0)
        f = gzip.GzipFile(fileobj=f)  # type: ignore[assignment]
        head = b""
    index = 0
    while True:
        header = head + f.read(12 - len(head))
        head = b""
        if not header:
            return
        if len(header) < 12:
            raise RecordError(f"record {index}: the file ends inside a record header")
        (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:12])
        if crc != masked_crc(header[:8]):
            raise RecordError(f"record {index}: the length checksum does not match (not a TFRecord, or damaged)")
        if length > MAX_RECORD_BYTES:
            _skip(f, length + 4)
            yield BadRecord(f"record over {MAX_RECORD_BYTES >> 20} MiB")
        else:
            data, footer = f.read(length), b""
            if len(data) == length:
                footer = f.read(4)
            if len(footer) < 4:
                raise RecordError(f"record {index}: the file ends inside the record")
            if struct.unpack("<I", footer)[0] != masked_crc(data):
                yield BadRecord("the data checksum does not match (the record is damaged)")
            else:
                yield data
        index += 1


def _skip(f: IO[bytes], n: int) -> None:
    while n > 0:
        chunk = f.read(min(n, 8 << 20))
        if not chunk:
            raise RecordError("the file ends inside a record")
        n -= len(chunk)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: an int, or bytes for the other wire types."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("message cut short")
        yield number, wire, value


KINDS = {1: "string", 2: "float32", 3: "int64"}


def _values(kind: str, buf: bytes) -> Any:
    if kind == "string":
        return [v for n, w, v in _fields(buf) if n == 1 and w == 2]
    if kind == "float32":
        parts = [np.frombuffer(v, "<f4") for n, w, v in _fields(buf) if n == 1 and w in (2, 5)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    ints: list[int] = []
    for n, w, v in _fields(buf):
        if n != 1:
            continue
        if w == 0:
            ints.append(v)
        else:  # packed
            pos = 0
            while pos < len(v):
                x, pos = _varint(v, pos)
                ints.append(x)
    return np.asarray([x - (1 << 64) if x >= 1 << 63 else x for x in ints], np.int64)


def parse_example(data: bytes) -> dict[str, tuple[str, Any]]:
    """name -> (kind, values) of a serialized `tf.train.Example`; ValueError when it is not one."""
    out: dict[str, tuple[str, Any]] = {}
    for number, wire, features in _fields(data):
        if number != 1 or wire != 2:
            continue
        for n, w, entry in _fields(features):
            if n != 1 or w != 2:
                continue
            name, feature = None, b""
            for k, kw, v in _fields(entry):
                if k == 1 and kw == 2:
                    name = bytes(v).decode("utf-8")
                elif k == 2 and kw == 2:
                    feature = v
            if name is None:
                raise ValueError("a feature without a name")
            kinds = [(KINDS[k], v) for k, kw, v in _fields(feature) if k in KINDS and kw == 2]
            out[name] = (kinds[-1][0], _values(*kinds[-1])) if kinds else ("empty", [])
    return out
