"""Byte mutations of real files for the fuzz tests: overwrite a byte, cut the file, or write
a 32-bit value, at a position drawn by hypothesis."""
from __future__ import annotations

import struct

from hypothesis import strategies as st

mutation = st.tuples(st.sampled_from(["flip", "cut", "int"]), st.integers(0, 10**9),
                     st.integers(0, 2**32 - 1))


def mutate(data: bytes, kind: str, where: int, value: int) -> bytes:
    at = where % max(len(data), 1)
    if kind == "cut":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([value & 0xFF]) + data[at + 1:]
    return data[:at] + struct.pack("<I", value) + data[at + 4:]
