"""Protobuf wire format by hand, for tests that send bodies no SDK would build (millions of
empty items, malformed framing) or that must not depend on generated classes."""

import struct


def varint(n: int) -> bytes:
    """A base-128 varint (n >= 0)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a message, string or bytes."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vfield(num: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(num << 3) + varint(value)


def fixed64(num: int, value: int) -> bytes:
    """A fixed64 field (wire type 1) holding an unsigned integer."""
    return varint(num << 3 | 1) + value.to_bytes(8, "little")


def double(num: int, value: float) -> bytes:
    """A double field (wire type 1)."""
    return varint(num << 3 | 1) + struct.pack("<d", value)
